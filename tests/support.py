"""Helpers shared by unit and integration tests: free ports, child processes, private reactors.

Every server a test starts gets a port the kernel just handed out (:func:`free_port`),
so parallel runs do not collide; every child process is stopped with
:func:`stop_process`; every Twisted scenario runs on a reactor of its own
(:func:`run_on_fresh_reactor`, :class:`ReactorThread`), so tests neither share nor
leak reactor state (pass ``clock=reactor`` to Twisted's TLS wrappers).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

from twisted.internet import defer, threads
from twisted.internet.selectreactor import SelectReactor
from twisted.python.failure import Failure

from aaa_mip6 import pki

STOP_TIMEOUT = 10.0  # seconds for a SIGTERM before SIGKILL
POLL_INTERVAL = 0.05
# Starts the reason of a skip for a feature the installed server build lacks: a fact of the
# distribution's package, not a missing install step, so tests/conftest.py lets it pass in CI.
SERVER_BUILD_GAP = "not in this server build: "


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port that is free on ``host`` now (TCP by default; ``socket.SOCK_DGRAM`` for UDP).

    Someone else may take it before the server binds it: callers that start a
    program on it retry on a new port when the bind fails.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def quoted(value: str) -> str:
    """``value`` double-quoted for a server's config file (FreeRADIUS, hostapd,
    freeDiameter); test values never need escapes, so quotes and backslashes are refused."""
    if '"' in value or "\\" in value:
        raise ValueError("test config values must not contain quotes or backslashes")
    return f'"{value}"'


def eap_server_pki(certs: Path, ca_name: str, server_name: str, client_name: str
                   ) -> tuple[pki.Identity, pki.Identity, pki.Identity]:
    """A CA, an RSA server certificate for ``server_name`` and an EAP-TLS client
    certificate with common name ``client_name``, all in ``certs``: (ca, server, client)."""
    ca = pki.make_ca(certs, common_name=ca_name)
    server = pki.make_cert(certs, ca, "server", common_name=server_name,
                           dns_names=(server_name,), key_type="rsa")
    client = pki.make_cert(certs, ca, "client", common_name=client_name, client=True)
    return ca, server, client


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit status (at once if it has exited)."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def wait_for_log_line(process: subprocess.Popen, log_path: Path, line: str, *,
                      timeout: float, what: str) -> bool:
    """True once ``log_path`` holds ``line``; False if ``process`` exited first.

    RuntimeError naming ``what`` and the log when neither happens within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.exists() and line in log_path.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"{what} not ready after {timeout} s; see {log_path}")


def wait_listening(process: subprocess.Popen, host: str, port: int, timeout: float) -> bool:
    """True once ``host:port`` accepts TCP connections; False if ``process`` exited first
    or ``timeout`` passed (the process is left as it is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(POLL_INTERVAL)
    return False


def run_on_fresh_reactor(scenario, limit: float = 30.0):
    """Run ``scenario(reactor)`` (a coroutine function) on a new reactor; return its result.

    ``limit`` stops a hung scenario (TimeoutError): a safety net, not a timing assertion.
    """
    reactor = SelectReactor()
    outcome: list = []

    def start() -> None:
        running = defer.ensureDeferred(scenario(reactor))
        running.addBoth(outcome.append)
        running.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.callLater(limit, reactor.stop)
    reactor.run(installSignalHandlers=False)
    if not outcome:
        raise TimeoutError(f"the scenario did not finish within {limit:g} s")
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


async def sleep(reactor, seconds: float) -> None:
    """Let ``reactor`` run for ``seconds`` inside a scenario."""
    waiting = defer.Deferred()
    reactor.callLater(seconds, waiting.callback, None)
    await waiting


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
