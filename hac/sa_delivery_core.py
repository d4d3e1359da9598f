"""The HAC's SA delivery queue, sans-I/O: which SA-Push or SA-Revoke goes to which HA, when.

:class:`DeliveryQueue` takes the events (an SA ``provisioned``, an SA ``revoked``, a
send ``acked`` or ``failed``, the timer) and returns actions: :class:`SendPush` and
:class:`SendRevoke` for the shell (:mod:`hac.sa_delivery`) to put on the Diameter node,
:class:`Done` and :class:`Retrying` for its log. The rules:

- An SA goes to the HA the HAC assigned it, found by the HA's address in
  ``home_agents``; an SA whose HA is not listed is not pushed (the HA must query it).
- A push or revocation is retried until the HA acknowledges it, waiting ``backoff``
  (doubling, with jitter) between tries; a push stops when its SA expires. A new push or
  revocation of an SPI replaces the one still owed. At most ``max_in_flight`` are
  outstanding at once; the others wait in order.
- Keys cross Diameter only inside TLS: unless ``insecure_tcp``, a push is not sent while
  any connection it could take is not TLS, or none is open. A push is only sent with an
  open route, so it never waits in the node for whatever connection opens next; without
  one it is :class:`Released` back to the store's outbox, for whichever HAC has a route
  (this one too, once it has). Revocations carry no keys.

The outbox (the store's, shared by every HAC process and host): what is owed stays there
until its HA acknowledges it. A delivering HAC claims owed messages only for the HAs it
has a usable route to (:meth:`DeliveryQueue.usable_destinations`), at most
:meth:`DeliveryQueue.room` at a time, for :func:`claim_lease` seconds that it renews at
every poll; a HAC that dies leaves its claims to lapse, and another takes them over.

The shell reads the clock and keeps one timer: :meth:`DeliveryQueue.timer` says when
:meth:`DeliveryQueue.handle_timer` is due.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from aaa_mip6.backoff import Backoff
from aaa_mip6.sa import HomeAgent, IPAddress
from aaa_mip6.store.base import SARecord

MAX_IN_FLIGHT = 64  # pushes and revocations outstanding at once
MAX_PENDING = 1024  # claimed from the outbox and not yet acknowledged, per process
MIN_CLAIM_LEASE = 10.0  # seconds


def claim_lease(poll_interval: float) -> float:
    """How long a claim on an owed message lasts: several polls (each renews it), so one
    slow store round trip never lets it lapse while its HAC lives."""
    return max(MIN_CLAIM_LEASE, 5 * poll_interval)


class Routes(NamedTuple):
    """The Diameter connections a message to one HA could take now, and how many are TLS."""

    open: int
    tls: int


class SendPush(NamedTuple):
    """Send SA-Push of ``record`` to the HA ``host``; report back under ``token``."""

    token: int
    record: SARecord
    host: str


class SendRevoke(NamedTuple):
    """Send SA-Revoke of ``record`` to the HA ``host``; report back under ``token``."""

    token: int
    record: SARecord
    host: str


class Done(NamedTuple):
    """Nothing more is owed for ``record``: ``outcome`` is pushed, revoked, expired or
    no-destination (its HA has no Origin-Host in ``home_agents``)."""

    record: SARecord
    outcome: str


class Retrying(NamedTuple):
    """A push or revocation will be tried again: ``reason`` is not-acknowledged (``detail``
    says why; ``attempt`` counts the tries). (No route, or no TLS one: :class:`Released`.)"""

    record: SARecord
    revoke: bool
    reason: str
    attempt: int
    detail: str = ""


class Released(NamedTuple):
    """Give ``record``'s owed push back to the outbox: no usable route to its HA from
    here (``reason``: no-route or refused-insecure); a HAC with one will claim it."""

    record: SARecord
    reason: str


def ha_addresses(agent: HomeAgent | None) -> tuple[IPAddress, ...]:
    """The HA's addresses, IPv6 first (none for an SA without an HA)."""
    if agent is None:
        return ()
    return tuple(address for address in (agent.address6, agent.address4) if address is not None)


def destination_of(home_agents: Mapping[IPAddress, str], agent: HomeAgent | None) -> str | None:
    """The Origin-Host of the HA ``agent`` in ``home_agents`` (found by address), or None."""
    for address in ha_addresses(agent):
        if address in home_agents:
            return home_agents[address]
    return None


@dataclass
class _Job:
    """One SA-Push or SA-Revoke still owed to an HA."""

    record: SARecord
    revoke: bool
    attempts: int = 0  # retries so far (they double the backoff)
    retry_at: float | None = None  # waiting for a retry until then
    sending: bool = False


class DeliveryQueue:
    """The pushes and revocations owed to HAs, in order, with their retries.

    ``routes(host)`` reads the Diameter node's open connections toward the HA ``host``
    (no I/O); ``rng`` draws the jitter. Times are seconds on the clock of
    ``SAStore`` validity ends (``time.time()``).
    """

    def __init__(self, home_agents: Mapping[IPAddress, str], backoff: Backoff, *,
                 insecure_tcp: bool, routes: Callable[[str], Routes],
                 rng: random.Random | None = None, max_in_flight: int = MAX_IN_FLIGHT):
        self.home_agents = home_agents
        self.backoff = backoff
        self.insecure_tcp = insecure_tcp
        self.counters: dict[str, int] = {}
        # (the HA's Origin-Host, or "none": not listed; outcome) -> count, for the metrics
        self.by_home_agent: dict[tuple[str, str], int] = {}
        self._routes = routes
        self._rng = rng or random.SystemRandom()
        self._max_in_flight = max_in_flight
        self._jobs: dict[int, _Job] = {}  # SPI -> what is owed for it
        self._ready: deque[int] = deque()  # SPIs to send, in order
        self._sending: dict[int, _Job] = {}  # token -> job
        self._next_token = 0
        # (retry_at, order, job) of jobs waiting for a retry; an entry whose job was
        # replaced, or no longer waits, is dropped when it reaches the top
        self._retries: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()
        self._stopped = False

    def __repr__(self) -> str:
        return f"DeliveryQueue(pending={len(self._jobs)}, in_flight={len(self._sending)})"

    @property
    def pending(self) -> int:
        """SAs (and revocations) not yet acknowledged by their HA."""
        return len(self._jobs)

    def is_pending(self, spi: int) -> bool:
        return spi in self._jobs

    def pending_spis(self) -> list[int]:
        """The SPIs of what is owed and held here (whose outbox claims are renewed)."""
        return list(self._jobs)

    @property
    def room(self) -> int:
        """How many more owed messages this process may claim now."""
        return 0 if self._stopped else max(0, MAX_PENDING - len(self._jobs))

    def usable_destinations(self) -> list[str]:
        """The HAs (Origin-Hosts) a push could go to now: those to claim owed messages for."""
        return sorted(host for host in set(self.home_agents.values())
                      if self._refusal(self._routes(host)) is None)

    # --- inputs ---------------------------------------------------------------------

    def provisioned(self, record: SARecord, now: float) -> list:
        """Push ``record`` (replacing whatever is owed for its SPI)."""
        return self._queue(_Job(record, revoke=False), now)

    def revoked(self, record: SARecord, now: float) -> list:
        """Tell ``record``'s HA that it is revoked (replacing a push still owed)."""
        return self._queue(_Job(record, revoke=True), now)

    def acked(self, token: int, now: float) -> list:
        """The HA answered 2001 to the send ``token``."""
        job = self._sending.pop(token, None)
        if job is None:
            return []
        job.sending = False
        return self._done(job, "revoked" if job.revoke else "pushed") + self._pump(now)

    def failed(self, token: int, detail: str, now: float) -> list:
        """The send ``token`` got no acknowledgement (``detail``: why, for the log)."""
        job = self._sending.pop(token, None)
        if job is None:
            return []
        job.sending = False
        self._count("retries")
        self._count_for(job.record, "not-acknowledged")
        retrying = Retrying(job.record, job.revoke, "not-acknowledged", job.attempts + 1, detail)
        self._retry(job, now)
        return [retrying, *self._pump(now)]

    def timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (None: nothing waits)."""
        if self._stopped:
            return None
        self._drop_stale_retries()
        return self._retries[0][0] if self._retries else None

    def handle_timer(self, now: float) -> list:
        """Send again what waited its retry out."""
        self._drop_stale_retries()
        while self._retries and self._retries[0][0] <= now:
            _, _, job = heapq.heappop(self._retries)
            job.retry_at = None
            self._ready.append(job.record.sa.spi)
            self._drop_stale_retries()
        return self._pump(now)

    def stop(self) -> None:
        """Send nothing more (the HAC is stopping); what is owed stays in the store."""
        self._stopped = True

    # --- internals ------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _count_for(self, record: SARecord, outcome: str) -> None:
        key = (self._destination(record) or "none", outcome)
        self.by_home_agent[key] = self.by_home_agent.get(key, 0) + 1

    def _queue(self, job: _Job, now: float) -> list:
        spi = job.record.sa.spi
        self._jobs[spi] = job
        self._ready.append(spi)
        return self._pump(now)

    def _pump(self, now: float) -> list:
        actions = []
        while self._ready and len(self._sending) < self._max_in_flight and not self._stopped:
            job = self._jobs.get(self._ready.popleft())
            if job is not None and not job.sending and job.retry_at is None:
                actions += self._send(job, now)
        return actions

    def _destination(self, record: SARecord) -> str | None:
        return destination_of(self.home_agents, record.home_agent)

    def _send(self, job: _Job, now: float) -> list:
        record = job.record
        if not job.revoke and record.sa.validity_end.timestamp() <= now:
            return self._done(job, "expired")
        host = self._destination(record)
        if host is None:
            return self._done(job, "no-destination")
        if not job.revoke:
            refusal = self._refusal(self._routes(host))
            if refusal is not None:
                self._count(refusal)
                self._count_for(record, refusal)
                del self._jobs[record.sa.spi]
                return [Released(record, refusal)]
        token = self._next_token
        self._next_token += 1
        self._sending[token] = job
        job.sending = True
        return [(SendRevoke if job.revoke else SendPush)(token, record, host)]

    def _refusal(self, routes: Routes) -> str | None:
        """Why keys may not go now: no route, or a route that is not TLS."""
        if routes.open == 0:
            return "no-route"
        if routes.tls < routes.open and not self.insecure_tcp:
            return "refused-insecure"
        return None

    def _retry(self, job: _Job, now: float) -> None:
        if self._stopped or self._jobs.get(job.record.sa.spi) is not job:
            return
        job.retry_at = now + self.backoff.delay(job.attempts, self._rng.random())
        job.attempts += 1
        heapq.heappush(self._retries, (job.retry_at, next(self._order), job))

    def _drop_stale_retries(self) -> None:
        while self._retries:
            retry_at, _, job = self._retries[0]
            if job.retry_at == retry_at and self._jobs.get(job.record.sa.spi) is job:
                return
            heapq.heappop(self._retries)

    def _done(self, job: _Job, outcome: str) -> list:
        self._count(outcome)
        self._count_for(job.record, outcome)
        if self._jobs.get(job.record.sa.spi) is job:
            del self._jobs[job.record.sa.spi]
        return [Done(job.record, outcome)]
