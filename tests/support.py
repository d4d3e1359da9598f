"""Helpers only tests use: the skip reason of a server-build gap, a reactor in a thread,
a tshark capture that knows when it is live.

Free ports, child processes and private reactors are the lab's (:mod:`lab.processes`,
:mod:`lab.reactors`); tests import them from there.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from twisted.internet import threads
from twisted.internet.selectreactor import SelectReactor

from lab.processes import POLL_INTERVAL, STOP_TIMEOUT, free_port, stop_process

# Starts the reason of a skip for a feature the installed server build lacks: a fact of the
# distribution's package, not a missing install step, so tests/conftest.py lets it pass in CI.
SERVER_BUILD_GAP = "not in this server build: "


CAPTURE_LIMIT = 120  # seconds tshark captures at most, whatever happens to the test
MARK_LIMIT = 30.0  # seconds to wait for a marker packet to reach the capture file
READ_LIMIT = 60  # seconds for one ``tshark -r`` of the capture file


class ReactorThread:
    """A private reactor in a daemon thread; the test thread calls into it and waits."""

    def __init__(self):
        self.reactor = SelectReactor()
        self._thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
        self._thread.start()

    def call(self, function, *args):
        """Run ``function(*args)`` in the reactor; return its (Deferred's) result."""
        return threads.blockingCallFromThread(self.reactor, function, *args)

    def stop(self) -> None:
        self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(STOP_TIMEOUT)


class Capture:
    """``tshark -i lo`` writing pcapng through a pipe (so each packet is flushed) into
    ``path``. tshark says "Capturing on" before the kernel filter is live, so
    :meth:`mark` sends datagrams to a port of the filter until the file holds one more
    than before the call: after the first mark the capture is live, after the last one
    every packet sent before it is in the file."""

    def __init__(self, path: Path, capture_filter: str):
        self.path = path
        self._marker = free_port("127.0.0.1", socket.SOCK_DGRAM)
        self._file = path.open("wb")
        self._process = subprocess.Popen(
            ["tshark", "-i", "lo", "-f", f"{capture_filter} or udp port {self._marker}",
             "-w", "-", "-a", f"duration:{CAPTURE_LIMIT}"],
            stdout=self._file, stderr=subprocess.DEVNULL)

    def mark(self) -> None:
        # Counted before sending: a call that sent several marks before the file showed
        # the first must not let the next call pass on one of those.
        before = self._marks_seen()
        deadline = time.monotonic() + MARK_LIMIT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while time.monotonic() < deadline:
                sender.sendto(b"mark", ("127.0.0.1", self._marker))
                if self._marks_seen() > before:
                    return
                time.sleep(POLL_INTERVAL)
        raise AssertionError(f"the capture did not show a new marker after {before}")

    def _marks_seen(self) -> int:
        shown = subprocess.run(
            ["tshark", "-r", str(self.path), "-Y", f"udp.dstport == {self._marker}"],
            capture_output=True, text=True, timeout=READ_LIMIT)
        return len(shown.stdout.splitlines())

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            stop_process(self._process)
        self._file.close()
