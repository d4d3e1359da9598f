"""Helpers only tests use: the skip reason of a server-build gap, a reactor in a thread.

Free ports, child processes and private reactors are the lab's (:mod:`lab.processes`,
:mod:`lab.reactors`); tests import them from there.
"""

from __future__ import annotations

import threading

from twisted.internet import threads
from twisted.internet.selectreactor import SelectReactor

from lab.processes import STOP_TIMEOUT

# Starts the reason of a skip for a feature the installed server build lacks: a fact of the
# distribution's package, not a missing install step, so tests/conftest.py lets it pass in CI.
SERVER_BUILD_GAP = "not in this server build: "


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
