"""The HAC's Twisted shell: a TLS listener that moves bytes between MNs and hac.core.

:class:`HacServer` owns what every connection shares (TLS context, PSK table, SA
store, provisioner, limits) and listens on a socket it creates or adopts.
:class:`HacProtocol` feeds TLS plaintext to a :class:`hac.core.HacSession` and
carries out its actions. Protection against idle and abusive clients: a handshake
timeout, an idle timeout, a cap on concurrent connections and a per-source token
bucket (:mod:`hac.ratelimit`), all enforced before any protocol work is done. What a
HacServer is built from is :mod:`hac.assemble`'s to open.

With an AAA backend configured (RADIUS: ``radius.servers``; Diameter EAP, RFC 4072:
``aaa.backend = "diameter"``, over TLS only since the MSK crosses in the answer) the
HAC also runs the EAP flow: the core asks for each AAA round trip
(:class:`hac.core.AskAaa`), the protocol calls the backend with the MN's TLS source as
Calling-Station-Id, bounds the wait by ``limits.aaa_timeout`` (then 504), and cancels
the call when the MN goes away, so no AAA conversation outlives its connection.

Store calls block (a SQLite commit fsyncs, and with several workers may wait for
another's write lock; a PostgreSQL call is a round trip), so they run in a thread pool,
never on the reactor thread: one thread for SQLite (one writer at a time anyway),
``store.threads`` for PostgreSQL. The SA is committed before the HAC Done is sent; a
provisioning that takes longer than ``store.timeout``, or finds the store unavailable
(a database failover), is answered 503 with ``retry-after``.
:mod:`hac.process` is the process level: the checks before start, one listening socket
(:func:`bind`), optionally shared by several forked worker processes (each with its own
reactor and store connection) so both cores are used, and the signals.

The global reactor is never imported here: the caller passes one in, after any fork.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import errno
import logging
import os
import socket
import time
from collections import Counter
from typing import Callable

from twisted.internet import defer, threads
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.protocols.policies import TimeoutMixin
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from aaa_mip6.aaa import AaaError, AaaSession, AaaTimeout
from aaa_mip6.authenticator import channel_binding
from aaa_mip6.errors import AaaLimitError, ConfigError, StartupError
from aaa_mip6.messages import Provision
from aaa_mip6.radius.servers import RadiusServer
from aaa_mip6.store import SARecord, SAStore, StoreError, StoreUnavailable
from aaa_mip6.twisted.aaa import AaaBackend
from aaa_mip6.twisted.control import listen_control
from aaa_mip6.twisted.early_data import EarlyDataServerProtocol
from aaa_mip6.twisted.fastopen import listen_fast_open
from aaa_mip6.twisted.tls import ServerTLS, session_reused

from . import control, core, sa_delivery
from .accounting import Accounting
from .config import HacConfig, ListenAddress
from .credentials import Credentials
from .provisioning import Provisioner
from .ratelimit import RateLimiter
from .sa_delivery_core import destination_of
from .ticket_keys import SharedTicketKeys

log = logging.getLogger(__name__)

HA_STATE_INTERVAL = 5.0  # seconds between reads of the HAs' load and peers


def _source(address) -> str:
    """``host:port`` (``[v6]:port``) of a Twisted address, as :class:`ListenAddress` prints."""
    return str(ListenAddress(getattr(address, "host", "?"), getattr(address, "port", 0)))


@implementer(IHandshakeListener)
class HacProtocol(Protocol, TimeoutMixin):
    """One MN connection: TLS plaintext in and out of a :class:`core.HacSession`."""

    def __init__(self, server: HacServer):
        self.server = server
        self.session = core.HacSession(server.session_settings)
        self._started = 0.0
        self._source = "?"
        self._outcome: core.Succeeded | core.Failed | None = None
        self._spi: int | None = None
        self._suite: str | None = None
        self._lost = False
        self._aaa_session: AaaSession | None = None
        self._aaa_call: defer.Deferred | None = None
        self._aaa_asked = 0.0  # when the AAA request in flight was sent
        self._handshake_done = False
        self._after_handshake: list[core.Action] = []

    def callLater(self, period, func):  # noqa: N802 (TimeoutMixin API)
        return self.server.reactor.callLater(period, func)

    def connectionMade(self):  # noqa: N802 (Twisted API)
        # Lock-step exchanges: a response written after an AAA round trip, behind the
        # still unacknowledged TLS session tickets, would otherwise wait for the MN's
        # delayed ACK (Nagle), ~40 ms a bootstrap.
        self.transport.setTcpNoDelay(True)
        self._started = self.server.reactor.seconds()
        self._source = _source(self.transport.getPeer())
        self.server.connections += 1
        self.setTimeout(self.server.config.handshake_timeout)

    def handshakeCompleted(self):  # noqa: N802 (Twisted API)
        self._handshake_done = True
        self.server.handshakes += 1
        if session_reused(self.transport):
            self.server.resumptions += 1
        self.setTimeout(self.server.config.idle_timeout)
        waiting, self._after_handshake = self._after_handshake, []
        self._carry_out(waiting)

    def dataReceived(self, data):  # noqa: N802 (Twisted API)
        self.resetTimeout()
        self._carry_out(self.session.data_received(data))

    def timeoutConnection(self):  # noqa: N802 (TimeoutMixin API)
        self._end(core.Failed(0, "timed out"))
        self.transport.abortConnection()

    def connectionLost(self, reason):  # noqa: N802 (Twisted API)
        self._lost = True
        self.setTimeout(None)
        self.server.connections -= 1
        if self._aaa_call is not None:
            self._aaa_call.cancel()  # frees the backend's request state at once
        self._end(core.Failed(0, f"closed before the end ({reason.getErrorMessage()})"))

    def _carry_out(self, actions: list[core.Action]) -> None:
        if self._lost:
            return
        for number, action in enumerate(actions):
            if not self._handshake_done and isinstance(
                    action, core.AskAaa | core.ProvisionSA | core.Close):
                # Early data (tls.early_data): the MN has not proven it is live, and a
                # replay must not reach the AAA server; only the answer goes out now.
                self._after_handshake += actions[number:]
                return
            if isinstance(action, core.Send):
                self.transport.write(action.data)
            elif isinstance(action, core.AskAaa):
                self._ask_aaa(action)
            elif isinstance(action, core.ProvisionSA):
                self._spi, self._suite = None, action.suite.name
                self.setTimeout(None)  # the store, not the MN, is what we wait for
                deferred = self.server.provision(action)
                # the store bounds each of its calls; this bounds them together (two home
                # addresses and the SA) and a wait for a free store thread
                deferred.addTimeout(self.server.config.store_timeout, self.server.reactor)
                deferred.addCallbacks(self._provisioned, self._provisioning_failed)
            elif isinstance(action, core.Succeeded | core.Failed):
                self._end(action)
            elif isinstance(action, core.Close):
                self.transport.loseConnection()

    def _ask_aaa(self, action: core.AskAaa) -> None:
        if self._aaa_session is None:
            peer = self.transport.getPeer()
            self._aaa_session = AaaSession(action.user_name, ipaddress.ip_address(peer.host),
                                           peer.port)
        self.setTimeout(None)  # the AAA, not the MN, is what we wait for
        self._aaa_asked = self.server.reactor.seconds()
        call = self.server.aaa.authenticate(self._aaa_session, action.eap_payload)
        call.addTimeout(self.server.config.aaa_timeout, self.server.reactor)
        self._aaa_call = call
        call.addCallbacks(self._aaa_answered, self._aaa_failed)

    def _aaa_answered(self, answer) -> None:
        self._aaa_call = None
        self.server.aaa_done(type(answer).__name__.lower(),
                             self.server.reactor.seconds() - self._aaa_asked)
        if not self._lost:
            self.setTimeout(self.server.config.idle_timeout)
        self._carry_out(self.session.aaa_answered(answer))

    def _aaa_failed(self, failure) -> None:
        self._aaa_call = None
        if failure.check(defer.CancelledError) and self._lost:
            return  # we cancelled it: the MN has gone
        error = failure.value
        self.server.aaa_done("timeout" if failure.check(defer.TimeoutError) else "error",
                             self.server.reactor.seconds() - self._aaa_asked)
        if failure.check(defer.TimeoutError):
            error = AaaTimeout(f"no AAA answer within {self.server.config.aaa_timeout:g} s")
        elif not failure.check(AaaError, AaaLimitError):  # the latter: the MN's input, 400
            log.error("AAA call failed unexpectedly: %s", failure.getTraceback())
        self._carry_out(self.session.aaa_failed(error))

    def _provisioned(self, provision) -> None:
        self._carry_out(self.session.provisioned(provision))

    def _provisioning_failed(self, failure) -> None:
        """500 for a store failure; 503 with retry-after when the store is unavailable
        for now (a failover) or did not answer within ``store.timeout``."""
        if failure.check(StoreUnavailable, defer.TimeoutError):
            timeout = self.server.config.store_timeout
            reason = (f"store: {failure.value}" if failure.check(StoreUnavailable)
                      else f"store: no answer within {timeout:g} s")
            self._carry_out(self.session.provisioning_failed(
                core.SERVICE_UNAVAILABLE, reason,
                retry_after=self.server.config.store_retry_after))
            return
        if failure.check(StoreError):
            reason = f"store: {failure.value}"
        else:
            log.error("provisioning failed unexpectedly", exc_info=failure.value)
            reason = f"internal: {type(failure.value).__name__}"
        self._carry_out(self.session.provisioning_failed(core.INTERNAL_ERROR, reason))

    def _end(self, outcome: core.Succeeded | core.Failed) -> None:
        """Log the one line of this bootstrap, at its first outcome; keys never appear.

        The text line is for people; its ``extra`` fields are what ``--log-format json``
        carries (event ``bootstrap``), the same facts as values.
        """
        if self._outcome is not None:
            return
        self._outcome = outcome
        duration = (self.server.reactor.seconds() - self._started) * 1000
        if isinstance(outcome, core.Succeeded):
            self._spi, self._suite = outcome.spi, outcome.suite
            status, reason, result = 200, None, "200"
            self.server.bootstraps["200"] += 1
        else:
            status, reason = outcome.status, outcome.reason
            result = f"{outcome.status or '-'} ({outcome.reason})"
            self.server.bootstraps[str(outcome.status or "-")] += 1
        self.server.bootstrap_outcomes[(self.session.method or "none",
                                        str(status or "none"))] += 1
        if self.server.observe_bootstrap is not None:
            self.server.observe_bootstrap(duration / 1000)
        log.info("bootstrap mn-id=%s source=%s spi=%s suite=%s result=%s duration=%.1fms",
                 self.session.mn_id or "-", self._source, self._spi or "-",
                 self._suite or "-", result, duration,
                 extra={"event": "bootstrap", "mn_id": self.session.mn_id,
                        "method": self.session.method,
                        "source": self._source, "spi": self._spi,
                        "suite": self._suite,
                        "status": status or None, "reason": reason,
                        "duration_ms": round(duration, 1)})


class _HacFactory(Factory):
    noisy = False  # the bootstrap line says what matters

    def __init__(self, server: HacServer):
        self.server = server

    def buildProtocol(self, addr):  # noqa: N802 (Twisted API)
        return HacProtocol(self.server)


class _GuardedTLSFactory(TLSMemoryBIOFactory):
    """Refuses a connection before any TLS work when the cap or its source's rate is hit."""

    noisy = False

    def __init__(self, server: HacServer, tls: ServerTLS):
        super().__init__(tls, False, _HacFactory(server), clock=server.reactor)
        self.server = server
        if tls.early_data:
            self.protocol = EarlyDataServerProtocol

    def buildProtocol(self, addr):  # noqa: N802 (Twisted API)
        server = self.server
        if server.connections >= server.config.max_connections:
            server.refused["cap"] += 1
            log.warning("refused %s: %d connections open", _source(addr), server.connections,
                        extra={"event": "refused", "source": _source(addr), "reason": "cap"})
            return None
        if not server.rate_limiter.allow(getattr(addr, "host", "?")):
            server.refused["rate"] += 1
            log.warning("refused %s: source over its connection rate", _source(addr),
                        extra={"event": "refused", "source": _source(addr), "reason": "rate"})
            return None
        return super().buildProtocol(addr)


class HacServer:
    """Everything one HAC process shares between its connections, on one reactor.

    Its parts (TLS, PSK table, AAA backend, store) come from
    :func:`hac.assemble.assemble_hac`."""

    def __init__(self, config: HacConfig, reactor, *, tls: ServerTLS,
                 credentials: Credentials | None, aaa: AaaBackend | None, store: SAStore,
                 server_secret: bytes | None = None, accounting: Accounting | None = None,
                 delivers: bool = True):
        self.config = config
        self.reactor = reactor
        self.tls = tls
        self.credentials = credentials
        sa_policy = config.sa_policy()
        self.aaa = aaa
        self.accounting = accounting
        methods = tuple(method for method in config.auth_methods
                        if method != "eap" or self.aaa is not None)
        self.session_settings = core.SessionSettings(
            psk_lookup=_no_psk if self.credentials is None else self.credentials.lookup,
            server_secret=server_secret or os.urandom(32),
            channel_binding=channel_binding(self.tls.certificate_der),
            choose_suite=sa_policy.choose_suite,
            max_content=config.max_message,
            draft01=config.draft01_auth,
            methods=methods,
            eap_identity_from_mn_id=config.eap_identity_from_mn_id,
        )
        self.store = store
        self.provisioner = Provisioner(self.store, sa_policy, config.bootstrap_policy(),
                                       hac_instance=config.instance)
        self.rate_limiter = RateLimiter(config.rate, config.burst, reactor.seconds)
        self.connections = 0
        self.refused = {"cap": 0, "rate": 0}
        self.bootstraps: Counter[str] = Counter()  # by result: "200", "401", "-" (no answer)
        # by (method, status) for the metrics; "none" for a method or status never reached
        self.bootstrap_outcomes: Counter[tuple[str, str]] = Counter()
        self.observe_bootstrap: Callable[[float], None] | None = None  # seconds, for metrics
        self.aaa_outcomes: Counter[str] = Counter()  # accept, reject, challenge, timeout, error
        self.observe_aaa: Callable[[float], None] | None = None  # seconds, for metrics
        self.sas_issued = 0
        self.handshakes = 0  # TLS handshakes completed with MNs (for the metrics)
        self.resumptions = 0  # of which resumed a session (RFC 5077 ticket)
        self.sas_revoked = 0
        self.sas_purged = 0
        # store-wide, while watch_active_sas runs; this HAC's issues and revocations move
        # it between two counts
        self.sas_active: int | None = None
        # store calls by (operation, outcome "ok"/"error"), and their duration for metrics
        self.store_calls: Counter[tuple[str, str]] = Counter()
        self.observe_store: Callable[[float], None] | None = None
        threads_wanted = 1 if config.store_url.startswith("sqlite:") else config.store_threads
        self._pool = ThreadPool(1, threads_wanted, name="hac-store")
        self._provisions_waiting: list[tuple[core.ProvisionSA, defer.Deferred]] = []
        self._provisions_committing = False  # a batch is in the store thread
        # TLS ticket keys from the store: any HAC process on any host resumes any ticket
        self.ticket_keys = SharedTicketKeys(
            store, tls, config.ticket_key_lifetime, reactor, self.in_store_thread,
            time.time) if SharedTicketKeys.available() else None
        if self.ticket_keys is not None:
            self.ticket_keys.load()  # before listening: every ticket under the shared key
        self._ha_state = LoopingCall(self._refresh_home_agents)  # load and peers, for the choice
        self._ha_state.clock = reactor
        self._purge = LoopingCall(self._purge_expired)
        self._purge.clock = reactor
        self._count_active = LoopingCall(self._count_active_sas)
        self._count_active.clock = reactor
        self._port = None
        self._control = None  # the control socket's port, once listening
        self.worker = 0  # of config.workers: which control socket is this process's
        self.delivery = None  # SA delivery runs in one process of a host: ``delivers``
        if config.sa_delivery is not None and delivers:
            self.delivery = sa_delivery.SaDelivery.create(
                config, self.store, reactor, self.in_store_thread, on_revoked=self._revoked)
            self.provisioner.outbox = self.delivery.outbox
        elif config.sa_delivery is not None:  # owed, for the delivering process to claim
            self.provisioner.outbox = sa_delivery.unclaimed_outbox(config.sa_delivery)
        self._pool.start()  # last: nothing above may fail with its threads running

    def in_store_thread(self, function, *args) -> defer.Deferred:
        """Call ``function`` where the store may block; a Deferred of its result."""
        return threads.deferToThreadPool(self.reactor, self._pool, function, *args)

    def provision(self, request: core.ProvisionSA) -> defer.Deferred:
        """Run the provisioner where the store may block; fires with the Provision (whose
        SA is then pushed to its HA when SA delivery is configured) once it is durable.

        Group commit: while one batch of SAs is being committed, the requests that
        arrive wait, and go to the store thread together as the next batch (one
        transaction, one fsync, one thread hand-off for them all)."""
        provisioned = defer.Deferred()
        self._provisions_waiting.append((request, provisioned))
        if not self._provisions_committing:
            self._commit_provisions()
        provisioned.addBoth(self._store_done, "provision", self.reactor.seconds())
        provisioned.addCallback(self._stored)
        return provisioned

    def _commit_provisions(self) -> None:
        batch, self._provisions_waiting = self._provisions_waiting, []
        self._provisions_committing = True
        committed = self.in_store_thread(self.provisioner.provision_records, [
            (request.mn_id, request.suite, request.requested_scope, request.attributes)
            for request, _ in batch])
        committed.addBoth(self._provisions_committed, [waiting for _, waiting in batch])

    def _provisions_committed(self, outcomes, waiting: list[defer.Deferred]) -> None:
        """Fire each request's Deferred with its outcome (all with the failure of a commit
        that failed), then commit what arrived meanwhile."""
        self._provisions_committing = False
        if isinstance(outcomes, Failure):
            outcomes = [outcomes] * len(waiting)
        for deferred, outcome in zip(waiting, outcomes):
            if isinstance(outcome, Exception):
                deferred.errback(Failure(outcome))
            elif isinstance(outcome, Failure):
                deferred.errback(outcome)
            else:
                deferred.callback(outcome)
        if self._provisions_waiting:
            self._commit_provisions()

    def _store_done(self, result, operation: str, started: float):
        """Count and time one store call (``result`` passes through)."""
        failed = isinstance(result, Failure)
        self.store_calls[(operation, "error" if failed else "ok")] += 1
        if self.observe_store is not None:
            self.observe_store(self.reactor.seconds() - started)
        return result

    def revoke(self, spi: int) -> defer.Deferred:
        """Revoke the SA and owe its HA an SA-Revoke (with ``[sa_delivery]``): sent at once
        by a delivering process, else from the outbox by the one that delivers (worker
        0); fires with False for an unknown SPI."""
        if self.delivery is not None:
            return self.delivery.revoke(spi)
        owe = sa_delivery.unclaimed_outbox(self.config.sa_delivery)

        def revoke() -> SARecord | None:
            record = self.store.get(spi)
            if record is None or not self.store.revoke(spi, outbox=owe(record.home_agent)):
                return None
            return self.store.get(spi)

        done = self.in_store_thread(revoke)
        done.addCallback(self._revoked_here)
        return done

    def _revoked_here(self, record: SARecord | None) -> bool:
        if record is None:
            return False
        log.info("SA %d of %s revoked", record.sa.spi, record.sa.mn_id)
        self._revoked(record)
        return True

    def _revoked(self, record: SARecord) -> None:
        self.sas_revoked += 1
        if self.sas_active is not None:
            self.sas_active -= 1
        if self.accounting is not None:
            self.accounting.revoked(record)

    def _stored(self, stored: tuple[SARecord, Provision]) -> Provision:
        record, provision = stored
        self.sas_issued += 1
        if self.sas_active is not None:
            self.sas_active += 1
        if self.accounting is not None:
            self.accounting.started(record)
        if self.delivery is not None:
            self.delivery.provisioned(record)
        return provision

    def _refresh_home_agents(self) -> defer.Deferred:
        """What the HA choice needs, from the store: the HAs no delivering HAC can reach
        now (this process reports its own routes when it delivers), and with
        ``least-loaded`` each HA's active SAs."""
        settings = self.config.sa_delivery
        report, reporter = None, None
        if self.delivery is not None:
            usable = set(self.delivery.queue.usable_destinations())
            report = {host: host in usable for host in set(settings.home_agents.values())}
            reporter = self.delivery.claimer
        least_loaded = self.config.ha_selection == "least-loaded"
        until = int(time.time() + 3 * HA_STATE_INTERVAL)

        def read():
            if report is not None:
                self.store.report_routes(reporter, report, until)
            down = self.store.unreachable() if settings is not None else set()
            return down, self.store.home_agent_load() if least_loaded else None

        done = self.in_store_thread(read)
        done.addCallbacks(self._home_agents_read, lambda failure: log.warning(
            "HA routes and load not read from the store: %s", failure.getErrorMessage()))
        return done

    def _home_agents_read(self, state: tuple[set[str], dict | None]) -> None:
        down, load = state
        provisioner = self.provisioner
        if self.config.sa_delivery is not None:
            provisioner.down = frozenset(
                agent for agent in provisioner.bootstrap_policy.home_agents
                if destination_of(self.config.sa_delivery.home_agents, agent) in down)
        if load is not None:
            provisioner.load = load

    def _purge_expired(self) -> defer.Deferred:
        deferred = self.in_store_thread(self.store.purge_expired)
        deferred.addBoth(self._store_done, "purge", self.reactor.seconds())
        deferred.addCallbacks(self._purged,
                              lambda failure: log.error("purging expired SAs failed: %s",
                                                        failure.getErrorMessage()))
        return deferred

    def watch_active_sas(self, interval: float) -> None:
        """Count the store's active SAs now and every ``interval`` seconds, into
        :attr:`sas_active` (for the metrics; a scrape must not wait for the store)."""
        self._count_active.start(interval, now=True)

    def _count_active_sas(self) -> defer.Deferred:
        deferred = self.in_store_thread(self.store.count_active)
        deferred.addBoth(self._store_done, "count", self.reactor.seconds())
        deferred.addCallbacks(lambda count: setattr(self, "sas_active", count),
                              lambda failure: log.error("counting active SAs failed: %s",
                                                        failure.getErrorMessage()))
        return deferred

    def _purged(self, records: list[SARecord]) -> None:
        self.sas_purged += len(records)
        if records:
            log.info("purged %d expired SAs", len(records))
        if self.accounting is not None:
            for record in records:
                self.accounting.expired(record)

    def listen(self, sock: socket.socket | None = None):
        """Listen on ``sock`` (a bound, listening socket, e.g. shared by workers) or on
        the configured address; return the listening port."""
        own = sock is None
        if own:
            sock = bind(self.config)
        factory = _GuardedTLSFactory(self, self.tls)
        self._port = self.reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
        if own:
            sock.close()  # the reactor listens on its own duplicate
        self._purge.start(self.config.purge_interval, now=True)
        if self.config.ha_selection == "least-loaded" or self.delivery is not None:
            self._ha_state.start(HA_STATE_INTERVAL, now=True)
        if self.ticket_keys is not None:
            self.ticket_keys.start()
        if self.delivery is not None:
            self.delivery.start()
        if self.config.control_path is not None:
            self._control = listen_control(
                control.worker_socket(self.config.control_path, self.worker),
                control.handlers(self), self.reactor)
        return self._port

    def reload(self, reread: Callable[[], HacConfig] | None = None) -> None:
        """SIGHUP: ``log.level`` and the RADIUS server lists from ``reread`` (the config
        file and flags again), the PSK file, the TLS certificate and key, the RADIUS
        secret. Established MNs and the SAs issued are untouched; a file that fails keeps
        what was loaded and says why."""
        config = self.config
        if reread is not None:
            try:
                config = reread()
            except ConfigError as error:
                log.error("SIGHUP: the configuration does not load, log.level and "
                          "radius.servers stay: %s", error)
            else:
                log.info("SIGHUP: log.level %s", config.log_level)  # before a higher level hides it
                logging.getLogger().setLevel(config.log_level.upper())
        self.reload_credentials()
        self.reload_tls()
        self.reload_radius(config)

    def reload_tls(self) -> bool:
        """Re-read ``tls.cert`` and ``tls.key``; False (the old ones stay) on an error."""
        try:
            self.tls.reload(self.config.cert, self.config.key)
        except ConfigError as error:
            log.error("SIGHUP: tls.cert and tls.key not reloaded, the old ones stay: %s",
                      error)
            return False
        self.session_settings = dataclasses.replace(
            self.session_settings, channel_binding=channel_binding(self.tls.certificate_der))
        log.info("SIGHUP: TLS certificate %s and key reloaded; new connections use them",
                 self.config.cert)
        return True

    def reload_radius(self, config: HacConfig) -> bool:
        """Point the RADIUS clients (authentication and accounting) at ``config``'s
        servers and secret; False (the old ones stay) when there is no RADIUS client or
        ``config``'s are unusable. Requests in flight and EAP conversations under way
        end on the server they started with."""
        clients = []
        if hasattr(self.aaa, "set_servers"):
            clients.append((self.aaa, lambda secret: [
                RadiusServer.parse(text, secret) for text in config.radius_servers]))
        if self.accounting is not None:
            clients.append((self.accounting.client, config.accounting_servers))
        if not clients:
            return False
        try:
            secret = config.radius_shared_secret()
            lists = [(client, servers(secret)) for client, servers in clients]
            if not all(servers for _, servers in lists):
                raise ConfigError("radius.servers is empty (the AAA backend changes only "
                                  "with a restart)")
        except ConfigError as error:
            log.error("SIGHUP: RADIUS servers and secret not reloaded, the old ones stay: %s",
                      error)
            return False
        for client, servers in lists:
            client.set_servers(servers)
        names = "; ".join(repr(client) for client, _ in lists)
        source = config.radius_secret_file or "radius.secret"
        log.info("SIGHUP: RADIUS servers and secret reloaded (secret from %s): %s",
                 source, names)
        return True

    def aaa_done(self, outcome: str, seconds: float) -> None:
        """Count one AAA round trip by outcome, and time it for the metrics."""
        self.aaa_outcomes[outcome] += 1
        if self.observe_aaa is not None:
            self.observe_aaa(seconds)

    def reload_credentials(self) -> bool:
        """Re-read the PSK file; False if it has an error (or the HAC runs without one)."""
        if self.credentials is None:
            log.info("SIGHUP: nothing to reload (no PSK file: auth.methods has no psk)")
            return False
        return self.credentials.reload()

    def status(self) -> dict:
        """What SIGUSR1 reports: this process's connections and bootstrap outcomes, and
        with RADIUS accounting its requests by outcome (``start-answered``, ...)."""
        status = {
            "pid": os.getpid(),
            "connections": self.connections,
            "bootstraps": dict(sorted(self.bootstraps.items())),
            "sas_issued": self.sas_issued,
            "refused": dict(self.refused),
            "psk_identities": 0 if self.credentials is None else len(self.credentials),
        }
        if self.accounting is not None:
            status["accounting"] = dict(sorted(self.accounting.counters.items()))
        return status

    def report(self) -> None:
        """Log :meth:`status` as one line, at info or the configured level if higher (so
        that a SIGUSR1 is always answered)."""
        log.log(max(logging.INFO, log.getEffectiveLevel()), "status %s",
                json.dumps(self.status(), separators=(",", ":")))

    def abandon(self) -> None:
        """Release what the constructor started, for a start that failed before the
        reactor ran (:meth:`stop` needs the reactor)."""
        self._pool.stop()
        self.store.close()

    @defer.inlineCallbacks
    def stop(self):
        """Stop accepting, let the store settle, release it."""
        if self._port is not None:
            yield self._port.stopListening()
            self._port = None
        if self._control is not None:
            yield self._control.stopListening()
            self._control = None
        if self.ticket_keys is not None:
            self.ticket_keys.stop()
        for loop in (self._purge, self._count_active, self._ha_state):
            if loop.running:
                loop.stop()
        if self.delivery is not None:
            yield self.delivery.stop()
        self._pool.stop()
        if self.aaa is not None:
            yield self.aaa.stop()
        if self.accounting is not None:
            yield self.accounting.stop()
        self.store.close()


def _no_psk(_mn_id: str) -> None:
    """The PSK lookup of a HAC without a PSK file (auth.methods excludes psk)."""
    return None


def bind(config: HacConfig) -> socket.socket:
    """The listening socket for ``config.listen`` (one socket; workers inherit it)."""
    address = config.listen
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
        sock.listen(1024)
        if config.tcp_fast_open:
            listen_fast_open(sock, config.tcp_fast_open)
    except OSError as error:
        sock.close()
        message = f"listen (--listen) {address}: {error.strerror or error}"
        if error.errno == errno.EADDRINUSE:
            raise StartupError(message) from None
        raise ConfigError(message) from None
    sock.setblocking(False)
    return sock
