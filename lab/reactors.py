"""Twisted scenarios as the lab, the tests and the benchmarks run them.

``mip6-lab`` runs its scenario on the global reactor (:func:`run_on_reactor`); tests and
benchmarks run each on a new reactor (:func:`run_on_fresh_reactor`), so scenarios neither
share nor leak reactor state (pass ``clock=reactor`` to Twisted's TLS wrappers).
"""

from __future__ import annotations

import time

from twisted.internet import defer
from twisted.internet.selectreactor import SelectReactor
from twisted.python.failure import Failure


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


async def until(reactor, condition, what: str, limit: float) -> None:
    """Let ``reactor`` run until ``condition()`` holds; AssertionError naming ``what``
    after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit:g} s: {what}")
        await sleep(reactor, 0.05)


def run_on_reactor(scenario):
    """Run ``scenario(reactor)`` on the global reactor; its result, or raise its error.

    Ctrl-C stops the reactor; the scenario's ``finally`` blocks then still run their
    clean-up before the reactor shuts down.
    """
    from twisted.internet import defer, reactor

    outcome = []

    def start():
        running = defer.ensureDeferred(scenario(reactor))
        running.addBoth(outcome.append)
        running.addBoth(lambda _: reactor.running and reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        raise KeyboardInterrupt
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]
