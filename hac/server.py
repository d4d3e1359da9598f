"""The HAC's Twisted shell: a TLS listener that moves bytes between MNs and hac.core.

:class:`HacServer` owns what every connection shares (TLS context, PSK table, SA
store, provisioner, limits) and listens on a socket it creates or adopts.
:class:`HacProtocol` feeds TLS plaintext to a :class:`hac.core.HacSession` and
carries out its actions. Protection against idle and abusive clients: a handshake
timeout, an idle timeout, a cap on concurrent connections and a per-source token
bucket, all enforced before any protocol work is done.

With an AAA backend configured (RADIUS: ``radius.servers``; Diameter EAP, RFC 4072:
``aaa.backend = "diameter"``, over TLS only since the MSK crosses in the answer) the
HAC also runs the EAP flow: the core asks for each AAA round trip
(:class:`hac.core.AskAaa`), the protocol calls the backend with the MN's TLS source as
Calling-Station-Id, bounds the wait by ``limits.aaa_timeout`` (then 504), and cancels
the call when the MN goes away, so no AAA conversation outlives its connection.

Store calls block (a SQLite commit fsyncs, and with several workers may wait for
another's write lock; a PostgreSQL call is a round trip), so they run in a thread pool,
never on the reactor thread: one thread for SQLite (one writer at a time anyway),
``store.threads`` for PostgreSQL. The SA is committed before the HAC Done is sent.
:mod:`hac.process` is the process level: the checks before start, one listening socket
(:func:`bind`), optionally shared by several forked worker processes (each with its own
reactor and store connection) so both cores are used, and the signals.

The global reactor is never imported here: the caller passes one in, after any fork.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
from collections import Counter, OrderedDict
from collections.abc import Callable

from twisted.internet import defer, threads
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.protocols.policies import TimeoutMixin
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from aaa_mip6.aaa import AaaError, AaaSession, AaaTimeout
from aaa_mip6.addresses import rate_limit_key
from aaa_mip6.authenticator import channel_binding
from aaa_mip6.diameter.eap import EAP_APPLICATION_ID
from aaa_mip6.diameter.peer import LocalNode, WatchdogTimers
from aaa_mip6.errors import AaaLimitError, ConfigError
from aaa_mip6.messages import Provision
from aaa_mip6.program import EXIT_RUNTIME
from aaa_mip6.radius.codec import Nas
from aaa_mip6.radius.servers import RadiusServer
from aaa_mip6.store import SARecord, SAStore, StoreError, open_store
from aaa_mip6.twisted.aaa import AaaBackend
from aaa_mip6.twisted.diameter_eap import DiameterEapBackend
from aaa_mip6.twisted.diameter_node import DiameterNode
from aaa_mip6.twisted.radius_client import RadiusClient
from aaa_mip6.twisted.routes import source_address_towards
from aaa_mip6.twisted.tls import ClientTLS, ServerTLS

from . import core, sa_delivery
from .config import HacConfig, ListenAddress
from .credentials import Credentials
from .provisioning import Provisioner

log = logging.getLogger(__name__)

MAX_TRACKED_SOURCES = 65_536  # rate-limit buckets kept; the idlest are forgotten first


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; a new connection takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """One token bucket per source (IPv4 address or IPv6 /64, see
    :func:`~aaa_mip6.addresses.rate_limit_key`), in bounded memory: an attacker's
    fresh addresses in one /64 neither get fresh buckets nor push others' out."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float],
                 max_sources: int = MAX_TRACKED_SOURCES):
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max_sources = max_sources
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    def allow(self, source: str) -> bool:
        now = self._clock()
        source = rate_limit_key(source)
        bucket = self._buckets.pop(source, None)
        if bucket is None:
            bucket = TokenBucket(self._rate, self._burst, now)
            if len(self._buckets) >= self._max_sources:
                self._buckets.popitem(last=False)
        self._buckets[source] = bucket  # most recently seen last
        return bucket.take(now)


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
        self.setTimeout(self.server.config.idle_timeout)

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
        for action in actions:
            if isinstance(action, core.Send):
                self.transport.write(action.data)
            elif isinstance(action, core.AskAaa):
                self._ask_aaa(action)
            elif isinstance(action, core.ProvisionSA):
                self._spi, self._suite = None, action.suite.name
                self.setTimeout(None)  # the store, not the MN, is what we wait for
                deferred = self.server.provision(action)
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
        call = self.server.aaa.authenticate(self._aaa_session, action.eap_payload)
        call.addTimeout(self.server.config.aaa_timeout, self.server.reactor)
        self._aaa_call = call
        call.addCallbacks(self._aaa_answered, self._aaa_failed)

    def _aaa_answered(self, answer) -> None:
        self._aaa_call = None
        if not self._lost:
            self.setTimeout(self.server.config.idle_timeout)
        self._carry_out(self.session.aaa_answered(answer))

    def _aaa_failed(self, failure) -> None:
        self._aaa_call = None
        if failure.check(defer.CancelledError) and self._lost:
            return  # we cancelled it: the MN has gone
        error = failure.value
        if failure.check(defer.TimeoutError):
            error = AaaTimeout(f"no AAA answer within {self.server.config.aaa_timeout:g} s")
        elif not failure.check(AaaError, AaaLimitError):  # the latter: the MN's input, 400
            log.error("AAA call failed unexpectedly: %s", failure.getTraceback())
        self._carry_out(self.session.aaa_failed(error))

    def _provisioned(self, provision) -> None:
        self._carry_out(self.session.provisioned(provision))

    def _provisioning_failed(self, failure) -> None:
        if failure.check(StoreError):
            reason = f"store: {failure.value}"
        else:
            log.error("provisioning failed unexpectedly", exc_info=failure.value)
            reason = f"internal: {type(failure.value).__name__}"
        self._carry_out(self.session.provisioning_failed(core.INTERNAL_ERROR, reason))

    def _end(self, outcome: core.Succeeded | core.Failed) -> None:
        """Log the one line of this bootstrap, at its first outcome; keys never appear."""
        if self._outcome is not None:
            return
        self._outcome = outcome
        duration = (self.server.reactor.seconds() - self._started) * 1000
        if isinstance(outcome, core.Succeeded):
            self._spi, self._suite = outcome.spi, outcome.suite
            result = "200"
            self.server.bootstraps["200"] += 1
        else:
            result = f"{outcome.status or '-'} ({outcome.reason})"
            self.server.bootstraps[str(outcome.status or "-")] += 1
        log.info("bootstrap mn-id=%s source=%s spi=%s suite=%s result=%s duration=%.1fms",
                 self.session.mn_id or "-", self._source, self._spi or "-",
                 self._suite or "-", result, duration)


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

    def buildProtocol(self, addr):  # noqa: N802 (Twisted API)
        server = self.server
        if server.connections >= server.config.max_connections:
            server.refused["cap"] += 1
            log.warning("refused %s: %d connections open", _source(addr), server.connections)
            return None
        if not server.rate_limiter.allow(getattr(addr, "host", "?")):
            server.refused["rate"] += 1
            log.warning("refused %s: source over its connection rate", _source(addr))
            return None
        return super().buildProtocol(addr)


class HacServer:
    """Everything one HAC process shares between its connections, on one reactor."""

    def __init__(self, config: HacConfig, reactor, *, server_secret: bytes | None = None,
                 tls: ServerTLS | None = None, credentials: Credentials | None = None):
        self.config = config
        self.reactor = reactor
        self.tls = tls or server_tls(config)
        if credentials is None and config.psk_file is not None:
            credentials = Credentials(config.psk_file)
        self.credentials = credentials
        sa_policy = config.sa_policy()
        self.aaa: AaaBackend | None = aaa_backend(config, reactor)
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
        self.store = open_configured_store(config)
        self.provisioner = Provisioner(self.store, sa_policy, config.bootstrap_policy(),
                                       hac_instance=config.instance)
        self.rate_limiter = RateLimiter(config.rate, config.burst, reactor.seconds)
        self.connections = 0
        self.refused = {"cap": 0, "rate": 0}
        self.bootstraps: Counter[str] = Counter()  # by result: "200", "401", "-" (no answer)
        self.sas_issued = 0
        threads_wanted = 1 if config.store_url.startswith("sqlite:") else config.store_threads
        self._pool = ThreadPool(1, threads_wanted, name="hac-store")
        self._purge = LoopingCall(self._purge_expired)
        self._purge.clock = reactor
        self._port = None
        self.delivery = None if config.sa_delivery is None else sa_delivery.SaDelivery.create(
            config, self.store, reactor, self._in_store_thread)
        self._pool.start()  # last: nothing above may fail with its threads running

    def _in_store_thread(self, function, *args) -> defer.Deferred:
        return threads.deferToThreadPool(self.reactor, self._pool, function, *args)

    def provision(self, request: core.ProvisionSA) -> defer.Deferred:
        """Run the provisioner where the store may block; fires with the Provision (whose
        SA is then pushed to its HA when SA delivery is configured)."""
        provisioned = self._in_store_thread(self.provisioner.provision_record, request.mn_id,
                                            request.suite, request.requested_scope,
                                            request.attributes)
        provisioned.addCallback(self._stored)
        return provisioned

    def _stored(self, stored: tuple[SARecord, Provision]) -> Provision:
        record, provision = stored
        self.sas_issued += 1
        if self.delivery is not None:
            self.delivery.provisioned(record)
        return provision

    def _purge_expired(self) -> defer.Deferred:
        deferred = self._in_store_thread(self.store.purge_expired)
        deferred.addCallbacks(lambda count: count and log.info("purged %d expired SAs", count),
                              lambda failure: log.error("purging expired SAs failed: %s",
                                                        failure.getErrorMessage()))
        return deferred

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
        if self.delivery is not None:
            self.delivery.start()
        return self._port

    def reload_credentials(self) -> bool:
        """Re-read the PSK file; False if it has an error (or the HAC runs without one)."""
        if self.credentials is None:
            log.info("SIGHUP: nothing to reload (no PSK file: auth.methods has no psk)")
            return False
        return self.credentials.reload()

    def status(self) -> dict:
        """What SIGUSR1 reports: this process's connections and bootstrap outcomes."""
        return {
            "pid": os.getpid(),
            "connections": self.connections,
            "bootstraps": dict(sorted(self.bootstraps.items())),
            "sas_issued": self.sas_issued,
            "refused": dict(self.refused),
            "psk_identities": 0 if self.credentials is None else len(self.credentials),
        }

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
        if self._purge.running:
            self._purge.stop()
        if self.delivery is not None:
            yield self.delivery.stop()
        self._pool.stop()
        if self.aaa is not None:
            yield self.aaa.stop()
        self.store.close()


def _no_psk(_mn_id: str) -> None:
    """The PSK lookup of a HAC without a PSK file (auth.methods excludes psk)."""
    return None


def aaa_backend(config: HacConfig, reactor) -> AaaBackend | None:
    """The AAA backend the EAP flow relays to (RADIUS or Diameter), or None without one."""
    if config.aaa_backend == "diameter":
        return diameter_backend(config, reactor)
    if not config.radius_servers:
        return None
    secret = config.radius_shared_secret()
    servers = [RadiusServer.parse(text, secret) for text in config.radius_servers]
    address = config.radius_nas_address or local_address_towards(
        servers[0].address, "RADIUS server", "radius.nas_address")
    nas = Nas(config.radius_nas_identifier or config.instance, address)
    return RadiusClient(servers, nas, policy=config.radius_policy(), reactor=reactor)


def diameter_backend(config: HacConfig, reactor) -> DiameterEapBackend:
    """A Diameter node (application 5) with its TLS peers and listener, and the backend on it.

    The HAC connects to each of ``diameter.peers`` and, with ``diameter.listen``, accepts
    peers (e.g. a Diameter agent configured to connect to it) whose certificate is signed
    by ``diameter.ca`` and names their Origin-Host.
    """
    local = LocalNode(config.diameter_origin_host, config.diameter_origin_realm,
                      host_ip_addresses=diameter_host_addresses(config),
                      auth_applications=frozenset({EAP_APPLICATION_ID}))
    node = DiameterNode(local, reactor=reactor, request_timeout=config.diameter_request_timeout,
                        watchdog=WatchdogTimers(tw=config.diameter_watchdog))
    for peer in config.diameter_peers:
        node.connect(peer.name, str(peer.address), peer.port, client_tls=ClientTLS(
            peer.name, config.diameter_ca, cert_file=config.diameter_cert,
            key_file=config.diameter_key))
    if config.diameter_listen is not None:
        server_tls = ServerTLS(config.diameter_cert, config.diameter_key,
                               client_ca_file=config.diameter_ca, require_client_cert=True)
        try:
            node.listen_tls(server_tls, config.diameter_listen.port, config.diameter_listen.host)
        except CannotListenError as failure:
            raise ConfigError(f"diameter.listen {config.diameter_listen}: cannot listen "
                              f"({failure.socketError})") from None
    return DiameterEapBackend(node, config.diameter_realm, nas_identifier=config.instance,
                              retry_after=config.diameter_retry_after)


def diameter_host_addresses(config: HacConfig) -> tuple[str, ...]:
    """Host-IP-Address for CER/CEA: the listening address unless it is a wildcard, and
    the local address towards each peer."""
    addresses = []
    if config.diameter_listen is not None:
        listening = ipaddress.ip_address(config.diameter_listen.host)
        if not listening.is_unspecified:
            addresses.append(listening)
    addresses += [local_address_towards(peer.address, "Diameter peer")
                  for peer in config.diameter_peers]
    return tuple(dict.fromkeys(str(address) for address in addresses))


def local_address_towards(remote: ipaddress.IPv4Address | ipaddress.IPv6Address,
                          what: str, setting: str | None = None
                          ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The local address the kernel routes to ``remote`` from.

    ``what`` names the remote and ``setting`` a key that avoids the lookup, for the
    error when there is no route.
    """
    try:
        return source_address_towards(remote)
    except OSError as failure:
        hint = f"; set {setting}" if setting else ""
        raise ConfigError(f"no route to {what} {remote} "
                          f"({failure.strerror or failure}){hint}") from None


def bind(config: HacConfig) -> socket.socket:
    """The listening socket for ``config.listen`` (one socket; workers inherit it)."""
    address = config.listen
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
        sock.listen(1024)
    except OSError as error:
        sock.close()
        raise ConfigError(f"listen (--listen) {address}: {error.strerror or error}") from None
    sock.setblocking(False)
    return sock


def server_tls(config: HacConfig) -> ServerTLS:
    """The MN-facing TLS of ``config`` (certificate, key, client CAs, ticket key lifetime)."""
    return ServerTLS(config.cert, config.key, client_ca_file=config.client_ca,
                     require_client_cert=config.require_client_cert,
                     ticket_key_lifetime=config.ticket_key_lifetime)


class StartFailed(RuntimeError):
    """The HAC could not start for a reason outside its configuration (exit status 1):
    the store does not answer, a worker failed as it started."""

    def __init__(self, message: str, status: int = EXIT_RUNTIME):
        super().__init__(message)
        self.status = status


def open_configured_store(config: HacConfig) -> SAStore:
    """The store of ``store.url``; errors name the key (never the URL: it may hold a
    password). Unreachable is a run-time failure, a bad URL or path a configuration one."""
    try:
        return open_store(config.store_url)
    except ConfigError as error:
        raise ConfigError(f"store.url (--store): {_detail(error)}") from None
    except StoreError as error:
        raise StartFailed(f"store.url (--store): {_detail(error)}") from None


def _detail(error: Exception) -> str:
    """The store's message without its own ``store:`` prefix (the caller names the key)."""
    return str(error).removeprefix("SA store: ").removeprefix("store: ")
