"""The HAC's side of SA delivery over Diameter: push, answer queries, revoke.

:class:`SaDelivery` runs the SA delivery application (:mod:`aaa_mip6.diameter.sa_app`,
docs/diameter.md) on the HAC's Diameter node; the queue's rules (what is sent when,
retries, expiry, TLS only) are :mod:`hac.sa_delivery_core`'s, this Twisted shell moves
the messages and keeps the timer:

- Every SA the HAC provisions is owed to the HA it assigned (found by the HA's address in
  ``sa_delivery.home_agents``, :class:`hac.config.DeliverySettings`): the store's
  outbox row is committed with the SA (:class:`aaa_mip6.store.Outbox`). A delivering
  process claims it at once and pushes it; a push is retried, with exponential backoff,
  until that HA acknowledges it or the SA expires; at most
  :data:`~hac.sa_delivery_core.MAX_IN_FLIGHT` are outstanding at once.
- Every ``poll_interval`` seconds the HAC renews its claims and claims what else is owed
  to the HAs it has a usable route to: what another worker provisioned (only worker 0 of
  a ``workers`` HAC delivers), what another host could not deliver, what a HAC that
  died had claimed (its claims lapse), and on start what it owed before a restart.
  Pushing an SA twice is harmless.
- SA-Query from an HA is answered from the durable store (5030 for an unknown SPI), so
  an HA that restarted, or never got the push, can still serve the MN.
- :meth:`SaDelivery.revoke` marks the SA revoked in the store and owes its HA an
  SA-Revoke in the same transaction (sent and retried like a push; re-sent after a
  restart until acknowledged). Operators call it through the HAC's control socket
  (:mod:`hac.control`): ``mip6-hac revoke --spi N --config hac.toml``.

Keys cross Diameter only inside TLS: unless ``insecure_tcp`` is set, a push is not sent
while any connection it could take is not TLS; it goes back to the outbox for a HAC
with a TLS route. The claimer's name is the node's Origin-Host, which must be distinct
per HAC host (docs/diameter.md, "Several HACs").
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from diameter.message import Message
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from aaa_mip6.backoff import Backoff
from aaa_mip6.diameter import codec, sa_app
from aaa_mip6.diameter.codec import DiameterError
from aaa_mip6.diameter.sa_app import SaMessage
from aaa_mip6.sa import HomeAgent
from aaa_mip6.store import Outbox, OutboxEntry, SARecord, SAStore
from aaa_mip6.twisted.sa_node import start_node

from .sa_delivery_core import (
    DeliveryQueue,
    Done,
    Released,
    Retrying,
    Routes,
    SendPush,
    SendRevoke,
    claim_lease,
    destination_of,
    ha_addresses,
)

from .config import DeliverySettings

log = logging.getLogger(__name__)

RETRY_JITTER = (0.5, 1.0)  # each retry waits 50-100 % of its backoff step


def unclaimed_outbox(settings: DeliverySettings) -> Callable[[HomeAgent | None], Outbox | None]:
    """What a new SA owes its HA in a process that does not deliver (a HAC worker other
    than 0): an unclaimed outbox row, which the delivering process claims at its next poll."""
    def outbox(agent: HomeAgent | None) -> Outbox | None:
        destination = destination_of(settings.home_agents, agent)
        return None if destination is None else Outbox(destination)

    return outbox


class SaDelivery:
    """Pushes, queries and revocations on the HAC's Diameter node.

    What to send when is the :class:`~hac.sa_delivery_core.DeliveryQueue`'s; this
    shell builds the Diameter messages, sends them, reports their answers, keeps the
    queue's timer and answers queries. ``in_store_thread(function, *args)`` runs a store
    call where it may block and returns a Deferred (the HAC server's thread pool for
    PostgreSQL).
    """

    def __init__(self, node, settings: DeliverySettings, store: SAStore, *, reactor,
                 in_store_thread: Callable[..., defer.Deferred],
                 rng: random.Random | None = None,
                 on_revoked: Callable[[SARecord], None] | None = None,
                 clock: Callable[[], float] = time.time):
        self.node = node
        self.settings = settings
        self.application = settings.node.application
        self.store = store
        self.reactor = reactor
        self.queue = DeliveryQueue(
            settings.home_agents,
            Backoff(settings.retry_initial, settings.retry_max, jitter=RETRY_JITTER),
            insecure_tcp=settings.node.insecure_tcp, routes=self._routes, rng=rng)
        self.counters = self.queue.counters  # the queue's, and "queries" counted here
        self._in_store_thread = in_store_thread
        self._on_revoked = on_revoked  # e.g. the RADIUS accounting Stop
        self._session_ids = codec.SessionIds(node.local.origin_host, reactor.seconds())
        self._timer = None  # the queue's timer, at self._deadline
        self._deadline: float | None = None
        self.claimer = node.local.origin_host  # whose claims in the outbox are ours
        self._lease = claim_lease(settings.poll_interval)
        self._clock = clock
        self._poll = LoopingCall(self._claim)
        self._poll.clock = reactor
        self._claiming = False
        self._done: list[tuple[int, bool]] = []  # (spi, revoke) acknowledged, to forget
        self._flushing = None  # the call that forgets them, once per reactor turn
        node.register_handler(self.application.application_id, sa_app.SA_QUERY, self._queried)

    @classmethod
    def create(cls, config, store: SAStore, reactor,
               in_store_thread: Callable[..., defer.Deferred],
               on_revoked: Callable[[SARecord], None] | None = None) -> SaDelivery:
        """The HAC's delivery from its configuration; the node listens and connects at once."""
        settings = config.sa_delivery
        return cls(start_node(settings.node, reactor), settings, store, reactor=reactor,
                   in_store_thread=in_store_thread,
                   on_revoked=on_revoked)

    def __repr__(self) -> str:
        return f"SaDelivery({self.node.local.origin_host}, pending={self.pending})"

    @property
    def pending(self) -> int:
        """SAs (and revocations) not yet acknowledged by their HA."""
        return self.queue.pending

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # --- life cycle -------------------------------------------------------------

    def start(self) -> defer.Deferred:
        """Take back what this HAC claimed before a restart, then poll the outbox."""
        released = self._in_store_thread(self.store.release_outbox, self.claimer)
        released.addErrback(lambda failure: log.error("cannot release old claims: %s",
                                                      failure.getErrorMessage()))
        released.addCallback(lambda _: self._poll.start(self.settings.poll_interval,
                                                        now=True))
        return released

    def _claim(self) -> defer.Deferred | None:
        """Renew our claims, claim what is owed to the HAs we can reach (one poll)."""
        if self._claiming:
            return None  # the previous poll's store calls are still running
        destinations, room = self.queue.usable_destinations(), self.queue.room
        held = self.queue.pending_spis()
        until = int(self._clock() + self._lease)
        self._claiming = True

        def claim():
            self.store.renew_outbox(self.claimer, held, until)
            return self.store.claim_outbox(self.claimer, destinations, until, room)

        claimed = self._in_store_thread(claim)
        claimed.addCallbacks(self._claimed, lambda failure: log.warning(
            "cannot claim owed SA messages: %s", failure.getErrorMessage()))
        claimed.addBoth(self._claim_done)
        return claimed

    def _claim_done(self, _result) -> None:
        self._claiming = False

    def _claimed(self, entries: list[OutboxEntry]) -> None:
        now = self.reactor.seconds()
        for entry in entries:
            take = self.queue.revoked if entry.revoke else self.queue.provisioned
            self._carry_out(take(entry.record, now))

    def outbox(self, agent: HomeAgent | None) -> Outbox | None:
        """What a new SA (or revocation) for ``agent`` owes, claimed by this HAC (which
        pushes it at once); None for an HA not in ``home_agents``. Safe in any thread."""
        destination = destination_of(self.settings.home_agents, agent)
        if destination is None:
            return None
        return Outbox(destination, self.claimer, int(self._clock() + self._lease))

    @defer.inlineCallbacks
    def stop(self):
        """Stop polling and retrying, give our claims back (another HAC takes them at
        once), stop the Diameter node (DPR to each peer)."""
        if self._poll.running:
            self._poll.stop()
        self.queue.stop()
        self._arm()
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        done, self._done = self._done, []
        try:
            yield self._in_store_thread(self.store.outbox_done, self.claimer, done)
            yield self._in_store_thread(self.store.release_outbox, self.claimer)
        except Exception as error:  # noqa: BLE001 (they lapse after the lease anyway)
            log.warning("claims not released (they lapse in %g s): %s", self._lease, error)
        yield self.node.stop()

    # --- push -------------------------------------------------------------------

    def provisioned(self, record: SARecord) -> None:
        """Push the SA the HAC has just stored, claimed (:meth:`outbox`); a failure here is
        logged, and never fails the MN's bootstrap (the outbox still owes it, and the HA
        can query it)."""
        try:
            self.deliver(record)
        except Exception as error:  # noqa: BLE001 (the MN gets its SA regardless)
            log.error("SA %d not queued for push: %s", record.sa.spi, error)

    def deliver(self, record: SARecord) -> None:
        """Queue an SA-Push of ``record`` to its HA (replacing any job for that SPI)."""
        self._carry_out(self.queue.provisioned(record, self.reactor.seconds()))

    def _carry_out(self, actions: list) -> None:
        """Send what the queue asks for, log its outcomes, re-arm its timer."""
        for action in actions:
            if isinstance(action, (SendPush, SendRevoke)):
                self._send(action)
            elif isinstance(action, Done):
                if action.outcome == "no-destination":
                    log.warning("SA %d: its HA %s has no Origin-Host in sa_delivery.home_agents;"
                                " the HA will have to query it", action.record.sa.spi,
                                action.record.home_agent)
                self._done.append((action.record.sa.spi, action.record.sa.revoked))
            elif isinstance(action, Released):
                if action.reason == "refused-insecure":
                    log.error("SA %d: refusing to push keys over a non-TLS Diameter "
                              "connection; left in the outbox for a HAC with a TLS route",
                              action.record.sa.spi)
                else:
                    log.info("SA %d: no open route to its HA; "
                             "left in the outbox for a HAC with one", action.record.sa.spi)
                self._settle(self.store.release_outbox, self.claimer, action.record.sa.spi)
            elif isinstance(action, Retrying):  # not-acknowledged: the only retry left
                log.info("SA %d: %s not acknowledged (attempt %d): %s", action.record.sa.spi,
                         "SA-Revoke" if action.revoke else "SA-Push", action.attempt,
                         action.detail)
        if self._done and self._flushing is None:  # one DELETE for this reactor turn's acks
            self._flushing = self.reactor.callLater(0, self._forget_done)
        self._arm()

    def _forget_done(self) -> None:
        self._flushing = None
        done, self._done = self._done, []
        self._settle(self.store.outbox_done, self.claimer, done)

    def _settle(self, function, *args) -> None:
        """Update the outbox in the store thread; a failure is logged (the row stays owed:
        it is sent again, harmlessly, after its claim lapses)."""
        self._in_store_thread(function, *args).addErrback(
            lambda failure: log.warning("outbox not updated: %s", failure.getErrorMessage()))

    def _send(self, action: SendPush | SendRevoke) -> None:
        sa = action.record.sa
        local = self.node.local
        session = self._session_ids.new()
        destination_realm = self.settings.node.destination_realm
        if isinstance(action, SendRevoke):
            command = sa_app.SA_REVOKE
            request = self.application.revoke_request(
                session, local.origin_host, local.origin_realm, destination_realm, action.host,
                sa.spi, sa.mn_id)
        else:
            command = sa_app.SA_PUSH
            request = self.application.push_request(
                session, local.origin_host, local.origin_realm, destination_realm, action.host,
                SaMessage(sa, ha_addresses(action.record.home_agent)), self.reactor.seconds())
        sent = self.node.send_request(request)
        sent.addCallback(self.application.check_answer, command)
        sent.addCallbacks(self._acknowledged, self._failed, callbackArgs=(action.token,),
                          errbackArgs=(action.token,))

    def _routes(self, host: str) -> Routes:
        """The node's open connections a message to the HA ``host`` could take now."""
        candidates = self.node.router.candidates_to(
            self.application.application_id, host, self.settings.node.destination_realm)
        return Routes(len(candidates), sum(self.node.is_tls(each) for each in candidates))

    def _acknowledged(self, _answer, token: int) -> None:
        self._carry_out(self.queue.acked(token, self.reactor.seconds()))

    def _failed(self, failure: Failure, token: int) -> None:
        self._carry_out(self.queue.failed(token, failure.getErrorMessage(),
                                          self.reactor.seconds()))

    def _arm(self) -> None:
        """Set the timer to the queue's deadline (unless it is set there already)."""
        deadline = self.queue.timer()
        if self._timer is not None and deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        self._timer = None if deadline is None else self.reactor.callLater(
            max(0.0, deadline - self.reactor.seconds()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._deadline = None
        self._carry_out(self.queue.handle_timer(self.reactor.seconds()))

    # --- revoke -----------------------------------------------------------------

    @defer.inlineCallbacks
    def revoke(self, spi: int):
        """Revoke the SA in the store, owing its HA an SA-Revoke, and send it; fires with
        False for an unknown SPI."""
        record = yield self._in_store_thread(self.store.get, spi)
        if record is None:
            return False
        owed = self.outbox(record.home_agent)
        if not (yield self._in_store_thread(lambda: self.store.revoke(spi, outbox=owed))):
            return False
        record = yield self._in_store_thread(self.store.get, spi)
        log.info("SA %d of %s revoked", spi, record.sa.mn_id)
        if self._on_revoked is not None:
            self._on_revoked(record)
        self._carry_out(self.queue.revoked(record, self.reactor.seconds()))
        return True

    # --- queries from HAs -------------------------------------------------------

    def _queried(self, message: Message):
        try:
            request = self.application.decode_request(message)
        except DiameterError as error:
            return self.node.answer(message, codec.error_result(error),
                                    self.application.application_avps(),
                                    error_message=str(error))
        self._count("queries")
        found = self._in_store_thread(self.store.get, request.spi)
        found.addCallback(self._query_answer, message)
        return found

    def _query_answer(self, record: SARecord | None, message: Message) -> Message:
        avps = self.application.application_avps()
        if record is None:
            return self.node.answer(message, sa_app.USER_UNKNOWN, avps)
        avps += self.application.sa_avps(SaMessage(record.sa, ha_addresses(record.home_agent)),
                                         self.reactor.seconds())
        return self.node.answer(message, codec.SUCCESS, avps)
