"""The HA's SAs over Diameter: pushes and revocations from the HAC, queries by SPI.

:class:`DiameterSASource` is the :class:`~ha.sasource.SASource` of an HA that is not
co-located with the HAC's store. It runs the SA delivery application
(:mod:`aaa_mip6.diameter.sa_app`, docs/diameter.md) on a Diameter node:

- **SA-Push** from the HAC: the SA is kept and reported through ``on_change``, so the
  first Binding Update under it needs no round trip.
- **SA-Revoke** from the HAC: the kept copy is marked revoked and reported; the core
  then answers the MN's Binding Updates with 176 (REINIT_SA_WITH_HAC).
- An SPI the source does not hold (never pushed, or the HA restarted and lost its
  copies) is asked for with **SA-Query**; the HAC answers from its durable store.

A lookup that fails (no peer, timeout, a bad answer) fails with that error: the HA
drops the MN's packet as ``lookup-failed`` and its next Binding Update asks again. An
answer that the HAC has no such SA fires with None: the HA drops the packet as an
unknown SPI and does not ask again for a while (its negative cache, :mod:`ha.admission`),
unless the SA is pushed meanwhile.

Pushed and queried SAs are kept until they are past their validity end: every
``EXPIRED_SWEEP_EVERY`` SAs kept, the expired ones are forgotten.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from diameter.message import Message
from twisted.internet import defer
from twisted.python.failure import Failure

from aaa_mip6.diameter import codec, sa_app
from aaa_mip6.diameter.codec import DiameterError
from aaa_mip6.diameter.sa_app import NodeSettings
from aaa_mip6.sa import IPAddress, SecurityAssociation

from .sasource import SASource

log = logging.getLogger("mip6.ha.diameter")

EXPIRED_SWEEP_EVERY = 1024  # SAs kept (pushed or queried) between sweeps of expired ones


class DiameterSASource(SASource):
    """SAs pushed by, revoked by and queried from the HAC over Diameter.

    ``node`` is a started :class:`~aaa_mip6.twisted.diameter_node.DiameterNode` that
    advertises the application (:func:`aaa_mip6.twisted.sa_node.start_node`);
    ``home_agents`` are this HA's addresses: a push naming other HAs is refused.
    """

    def __init__(self, node, settings: NodeSettings, *, home_agents: Iterable[IPAddress] = (),
                 clock: Callable[[], float] = time.time):
        self.node = node
        self.settings = settings
        self.application = settings.application
        self.home_agents = frozenset(home_agents)
        self.counters: Counter[str] = Counter()
        self._clock = clock
        self._sas: dict[int, SecurityAssociation] = {}
        self._kept = 0  # SAs kept since the last sweep
        self._queries: dict[int, list[defer.Deferred]] = {}
        self._session_ids = codec.SessionIds(settings.origin_host, clock())
        for command, handler in ((sa_app.SA_PUSH, self._pushed),
                                 (sa_app.SA_REVOKE, self._revoked)):
            node.register_handler(self.application.application_id, command, handler)

    def __repr__(self) -> str:
        return (f"DiameterSASource({self.settings.origin_host} <- "
                f"{self.settings.destination_realm}, sas={len(self._sas)})")

    # --- SASource -----------------------------------------------------------------

    def lookup(self, spi: int) -> SecurityAssociation | defer.Deferred:
        known = self._sas.get(spi)
        if known is not None:
            return known
        waiting = defer.Deferred()
        if spi in self._queries:
            self._queries[spi].append(waiting)
            return waiting
        self._queries[spi] = [waiting]
        self.counters["queries"] += 1
        local = self.node.local
        request = self.application.query_request(
            self._session_ids.new(), local.origin_host,
            local.origin_realm, self.settings.destination_realm, self.settings.destination_host,
            spi)
        self.node.send_request(request).addCallbacks(
            self._query_answered, self._query_failed, callbackArgs=(spi,), errbackArgs=(spi,))
        return waiting

    def close(self) -> defer.Deferred:
        """Fail nothing (lookups already sent settle when their requests do) and stop
        the node."""
        return self.node.stop()

    # --- queries ------------------------------------------------------------------

    def _query_answered(self, answer: Message, spi: int) -> None:
        try:
            found = self.application.decode_query_answer(answer)
        except DiameterError as error:
            self._query_failed(Failure(error), spi)
            return
        sa = None
        if found is not None and found.sa.spi == spi:
            sa = found.sa
            self._remember(sa)
        self.counters["query-found" if sa is not None else "query-unknown"] += 1
        self._settle(spi, sa)

    def _query_failed(self, failure: Failure, spi: int) -> None:
        """Fail the lookups with the error (the HA logs it once per lookup)."""
        self.counters["query-failed"] += 1
        self._settle(spi, failure)

    def _settle(self, spi: int, outcome: SecurityAssociation | Failure | None) -> None:
        for waiting in self._queries.pop(spi, []):
            if isinstance(outcome, Failure):
                waiting.errback(outcome)
            else:
                waiting.callback(outcome)

    # --- pushes and revocations -----------------------------------------------------

    def _pushed(self, message: Message) -> Message:
        try:
            request = self.application.decode_request(message)
        except DiameterError as error:
            return self._refuse(message, "push", error)
        sa = request.sa.sa
        agents = request.sa.home_agents
        if self.home_agents and agents and not self.home_agents.intersection(agents):
            self.counters["push-not-ours"] += 1
            log.warning("SA-Push for SPI %d names other home agents; refused", sa.spi)
            return self.node.answer(message, codec.UNABLE_TO_COMPLY,
                                    self.application.application_avps(),
                                    error_message="the SA names another home agent")
        self.counters["pushed"] += 1
        self._keep(sa)
        return self._accept(message)

    def _revoked(self, message: Message) -> Message:
        try:
            request = self.application.decode_request(message)
        except DiameterError as error:
            return self._refuse(message, "revoke", error)
        self.counters["revoked"] += 1
        known = self._sas.get(request.spi)
        if known is not None:
            self._keep(known.replace(revoked=True))
        # Not held here: a later lookup asks the HAC, which answers with the revoked SA.
        log.info("SA %d revoked by %s", request.spi, request.origin_host)
        return self._accept(message)

    def _keep(self, sa: SecurityAssociation) -> None:
        """Hold ``sa`` and tell the HA (a push also ends its SPI's negative caching)."""
        self._remember(sa)
        if self.on_change is not None:
            self.on_change(sa)

    def _remember(self, sa: SecurityAssociation) -> None:
        self._sas[sa.spi] = sa
        self._kept += 1
        if self._kept >= EXPIRED_SWEEP_EVERY:
            self._kept = 0
            self._forget_expired()

    def _accept(self, message: Message) -> Message:
        return self.node.answer(message, codec.SUCCESS, self.application.application_avps())

    def _refuse(self, message: Message, what: str, error: DiameterError) -> Message:
        self.counters[f"{what}-malformed"] += 1
        log.warning("malformed SA-%s from the HAC: %s", what.capitalize(), error)
        return self.node.answer(message, codec.error_result(error),
                                self.application.application_avps(), error_message=str(error))

    def _forget_expired(self) -> None:
        now = self._clock()
        for spi in [spi for spi, sa in self._sas.items() if sa.validity_end.timestamp() < now]:
            del self._sas[spi]
