"""Bootstrap load for the failover test and ``mip6-lab cluster``: N MNs, each bootstrapping
(and optionally registering with the HA it is given) in a loop, from one process.

Each MN tries the HACs in order (the next one when a HAC is out of reach), and waits
out a 503's ``retry-after`` as ``mip6-mn`` does. Every step is reported to ``on_event``
as one dict with ``t`` (when, Unix time), ``mn`` and ``started`` (when this MN's
bootstrap began), the facts a verdict needs:

- ``ack``: the HAC acknowledged an SA to this MN (``spi``, ``mn``, ``hac``, ``key``: a
  short SHA-256 of the MN-to-HA integrity key, to check the stored row is this SA
  without printing a key), with the time the bootstrap took;
- ``fail``: a bootstrap without an SA (``status``, ``reason``: ``timeout`` is a HAC
  that did not answer in time — a hang; ``retry_after``: whether the HAC sent one);
- ``registered`` / ``unregistered``: the HA accepted the SA's Binding Update, or not.

``python -m lab.cluster_load`` runs it as a program (one JSON object a line on stdout)
for the namespace lab, where the MNs run on their own host. It stops after
``--duration`` seconds or when its standard input closes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from twisted.internet import defer, task

BOOTSTRAP_TIMEOUT = 10.0  # seconds: a bootstrap still unanswered then counts as hung
REGISTER_TIMEOUT = 8.0  # seconds for the HA's Binding Acknowledgement
PAUSE = 0.05  # seconds between one MN's cycles
FAILED_PAUSE = 0.5  # seconds after a failure without a retry-after
MAX_WAIT = 10.0  # seconds: the longest retry-after waited out


def key_digest(key: bytes) -> str:
    """A short digest of a key, to match an acknowledged SA with its stored row."""
    return hashlib.sha256(key).hexdigest()[:16]


def read_psks(path: Path) -> dict[str, bytes]:
    """``NAI HEX`` lines, as the HAC's PSK file."""
    psks = {}
    for line in path.read_text().splitlines():
        if line.strip():
            nai, key = line.split()
            psks[nai] = bytes.fromhex(key)
    return psks


class LoadRun:
    """The MNs' loops on one reactor; :meth:`run` until ``stopped()`` or the duration."""

    def __init__(self, reactor, hacs: list[tuple[str, int]], ca: Path, psks: dict[str, bytes],
                 on_event: Callable[[dict], None], *, register: bool = False,
                 stopped: Callable[[], bool] = lambda: False):
        from aaa_mip6.twisted.tls import ClientTLS

        self.reactor = reactor
        self.hacs = [(ClientTLS(host, ca), port) for host, port in hacs]
        self.psks = psks
        self.on_event = on_event
        self.register = register
        self.stopped = stopped
        self._clock = time.time

    def emit(self, event: str, **fields) -> None:
        self.on_event({"event": event, "t": round(self._clock(), 3), **fields})

    async def run(self, duration: float) -> None:
        end = self.reactor.seconds() + duration
        await defer.gatherResults([defer.ensureDeferred(self._mn(mn_id, end))
                                   for mn_id in self.psks], consumeErrors=True)

    def _running(self, end: float) -> bool:
        return self.reactor.seconds() < end and not self.stopped()

    async def _mn(self, mn_id: str, end: float) -> None:
        while self._running(end):
            pause = await self._cycle(mn_id)
            await task.deferLater(self.reactor, pause, lambda: None)

    async def _cycle(self, mn_id: str) -> float:
        """One bootstrap (and registration); the pause before the next."""
        from mn.bootstrap import BootstrapFailed
        from mn.rebootstrap import retry_wait

        started, began = self.reactor.seconds(), round(self._clock(), 3)
        try:
            hac, result = await self._bootstrap(mn_id)
        except BootstrapFailed as error:
            self.emit("fail", mn=mn_id, started=began, status=error.status,
                      reason=error.reason, step=error.step, retry_after=error.retry_after is not None,
                      seconds=round(self.reactor.seconds() - started, 3))
            if error.reason == "status" and error.status == 503:
                wait = retry_wait(error, datetime.now(timezone.utc)) or FAILED_PAUSE
                return min(MAX_WAIT, max(FAILED_PAUSE, wait))
            return FAILED_PAUSE
        sa = result.sa
        home_agent = result.bootstrap.home_agent if result.bootstrap else None
        self.emit("ack", mn=mn_id, started=began, spi=sa.spi, hac=hac,
                  key=key_digest(sa.mn_to_ha_ikey), ha=_agent_text(home_agent),
                  seconds=round(self.reactor.seconds() - started, 3))
        if self.register and home_agent is not None:
            await self._register(mn_id, began, sa, home_agent)
        return PAUSE

    async def _bootstrap(self, mn_id: str):
        """Bootstrap with the first HAC that can be reached: (its "host:port", result)."""
        from aaa_mip6.addresses import format_host_port
        from mn import client
        from mn.bootstrap import BootstrapFailed, PskBootstrap

        last = None
        for tls, port in self.hacs:
            try:
                result = await client.bootstrap(self.reactor, tls, port,
                                                PskBootstrap(mn_id, self.psks[mn_id]),
                                                timeout=BOOTSTRAP_TIMEOUT)
                return format_host_port(tls.host, port), result
            except BootstrapFailed as error:
                if error.reason not in ("connect", "closed") or error.step not in (
                        "connect", "tls"):
                    raise
                last = error
        raise last

    async def _register(self, mn_id: str, began: float, sa, home_agent) -> None:
        from mn.mobility import MobilityMachine
        from mn.session import MobileSession, RegistrationError

        session = MobileSession(self.reactor, MobilityMachine(sa, home_agent, lifetime=60))
        started = self.reactor.seconds()
        try:
            await session.start().addTimeout(REGISTER_TIMEOUT, self.reactor)
            self.emit("registered", mn=mn_id, started=began, spi=sa.spi,
                      ha=_agent_text(home_agent),
                      seconds=round(self.reactor.seconds() - started, 3))
        except (RegistrationError, defer.TimeoutError) as error:
            self.emit("unregistered", mn=mn_id, started=began, spi=sa.spi,
                      ha=_agent_text(home_agent), reason=getattr(error, "reason", "timeout"))
        finally:
            await session.stop(deregister=False)


def _agent_text(agent) -> str | None:
    if agent is None:
        return None
    from aaa_mip6.addresses import format_host_port

    return format_host_port(agent.address6 or agent.address4, agent.port)


def _parse_hac(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.cluster_load",
                                     description="Bootstrap load for mip6-lab cluster.")
    parser.add_argument("--hac", action="append", required=True, type=_parse_hac,
                        metavar="HOST:PORT", help="a HAC, tried in the order given")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--psk-file", type=Path, required=True, help="NAI HEX lines")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--register", action="store_true")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    closed = []

    def stdin_closed() -> None:
        closed.append(True)

    def write(event: dict) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    threading.Thread(target=lambda: (sys.stdin.read(), reactor.callFromThread(stdin_closed)),
                     daemon=True).start()
    run = LoadRun(reactor, args.hac, args.ca, read_psks(args.psk_file), write,
                  register=args.register, stopped=lambda: bool(closed))

    from .reactors import run_on_reactor

    run_on_reactor(lambda _: run.run(args.duration))
    write({"event": "end", "t": round(time.time(), 3)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
