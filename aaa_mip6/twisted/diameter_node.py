"""The Twisted shell of a Diameter node: TCP and TLS transports around the sans-I/O core.

:class:`DiameterNode` listens (TCP port 3868, TLS port 5658 by default) and keeps
connections to configured peers, reconnecting with exponential backoff. Each
connection is a :class:`~aaa_mip6.diameter.peer.PeerConnection` that this module
only feeds with bytes and timer ticks; routing, failover and timeouts are the
:class:`~aaa_mip6.diameter.router.Router`'s. Applications call
:meth:`DiameterNode.send_request` and register handlers for incoming requests.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from diameter.message import Message
from twisted.internet import defer, endpoints, protocol
from twisted.internet.interfaces import IReactorTime
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from . import tls
from ..addresses import format_host_port
from ..backoff import Backoff
from ..iana import DIAMETER_TCP_PORT, DIAMETER_TLS_PORT
from ..diameter import codec
from ..diameter.peer import (
    DISCONNECT_DO_NOT_WANT_TO_TALK_TO_YOU,
    AnswerReceived,
    AnswerUndecodable,
    EndToEndIdentifiers,
    LocalNode,
    PeerClosed,
    PeerConnection,
    PeerOpened,
    PeerState,
    PeerSuspect,
    Reconnect,
    RemotePeer,
    RequestReceived,
    WatchdogTimers,
    admit_cer,
)
from ..diameter.router import DEFAULT_REQUEST_TIMEOUT, RequestTimedOut, Router

log = logging.getLogger(__name__)

Handler = Callable[[Message], "Message | defer.Deferred"]


class _PeerProtocol(protocol.Protocol):
    """Moves bytes and timer ticks between a transport and one PeerConnection."""

    def __init__(self, node: DiameterNode, connection: PeerConnection, link: _Link | None):
        self.node = node
        self.connection = connection
        self.link = link
        self.closed = defer.Deferred()
        self._timer = None

    def connectionMade(self):  # noqa: N802 (Twisted API)
        # Answers leave as they are ready, one connection carrying many sessions: with
        # Nagle, one written while the last is unacknowledged waits for a delayed ACK.
        self.transport.setTcpNoDelay(True)
        self.node._connections.add(self)
        self.connection.connection_made(self.node.now())
        self.flush()

    def dataReceived(self, data):  # noqa: N802
        self.connection.data_received(data, self.node.now())
        self.flush()

    def connectionLost(self, reason=protocol.connectionDone):  # noqa: N802
        self.connection.connection_lost(reason.getErrorMessage())
        self.flush()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.node._connections.discard(self)
        if self.link is not None:
            self.link.lost(self)
        self.closed.callback(None)

    def flush(self) -> None:
        """Carry out what the core asked for: write, report events, re-arm the timer, close."""
        data = self.connection.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        for event in self.connection.events():
            self.node._event(self, event)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        deadline = self.connection.timer()
        if deadline is not None:
            self._timer = self.node.reactor.callLater(
                max(0.0, deadline - self.node.now()), self._tick)
        if self.connection.wants_close and self.transport is not None:
            self.transport.loseConnection()

    def _tick(self) -> None:
        self._timer = None
        self.connection.handle_timer(self.node.now())
        self.flush()

    def peer_certificate(self):
        """The TLS peer certificate (cryptography object), None on plain TCP."""
        try:
            return self.transport.getHandle().get_peer_certificate(as_cryptography=True)
        except AttributeError:
            return None


@dataclass
class _Link:
    """An outgoing peer this node keeps connected; :class:`~.peer.Reconnect` says when."""

    node: DiameterNode
    endpoint: object
    client_tls: tls.ClientTLS | None
    name: str
    reconnect: Reconnect
    protocol: _PeerProtocol | None = None
    stopped: bool = False
    retry_call: object = None

    def connect(self) -> None:
        self.retry_call = None
        if self.stopped:
            return
        if not self.reconnect.connect_now(self.name in self.node.router.open_peers):
            self.schedule()
            return
        def build() -> _PeerProtocol:
            self.protocol = _PeerProtocol(
                self.node, self.node._new_connection(initiator=True), self)
            return self.protocol

        factory = protocol.Factory.forProtocol(build)
        if self.client_tls is not None:
            factory = TLSMemoryBIOFactory(self.client_tls, True, factory, clock=self.node.reactor)
        self.endpoint.connect(factory).addErrback(self._failed)

    def _failed(self, failure: Failure) -> None:
        log.info("Diameter peer %s: connect failed: %s", self.name, failure.getErrorMessage())
        self.schedule()

    def opened(self) -> None:
        self.reconnect.opened()

    def lost(self, peer_protocol: _PeerProtocol) -> None:
        if self.protocol is peer_protocol:
            self.protocol = None
        self.schedule()

    def schedule(self) -> None:
        """Connect again after the wait :class:`~.peer.Reconnect` gives."""
        if self.stopped or self.retry_call is not None:
            return
        delay = self.reconnect.wait(self.node.rng.random())
        self.retry_call = self.node.reactor.callLater(delay, self.connect)

    def stop(self) -> None:
        self.stopped = True
        if self.retry_call is not None and self.retry_call.active():
            self.retry_call.cancel()
        self.retry_call = None


class DiameterNode:
    """A Diameter node: peers over TCP/TLS, request routing, handlers for incoming requests."""

    def __init__(self, local: LocalNode, *, reactor: IReactorTime | None = None,
                 watchdog: WatchdogTimers = WatchdogTimers(),
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 routes: dict[str, list[str]] | None = None,
                 reconnect_initial: float = 1.0, reconnect_max: float = 30.0,
                 rng: random.Random | None = None):
        if reactor is None:
            from twisted.internet import reactor
        self.local = local
        self.reactor = reactor
        self.watchdog = watchdog
        self.router = Router(request_timeout=request_timeout, routes=routes)
        self.reconnect_backoff = Backoff(reconnect_initial, reconnect_max, jitter=(0.5, 1.0))
        self.rng = rng or random.SystemRandom()
        self._unknown_answers_closed = 0
        # requests-sent, requests-received, answers-received, election-won, election-lost
        self.counters: collections.Counter[str] = collections.Counter()
        # for the metrics: requests by (direction, command code), answers by (direction,
        # command code, Result-Code); the answers a connection makes itself are not here
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.answers: collections.Counter[tuple[str, int, str]] = collections.Counter()
        self._end_to_end = EndToEndIdentifiers(self.now(), self.rng)
        self._handlers: dict[tuple[int, int], Handler] = {}
        self._deferreds: dict[int, defer.Deferred] = {}
        self._connections: set[_PeerProtocol] = set()
        self._links: list[_Link] = []
        self._ports = []
        self._open_waiters: dict[str, list[defer.Deferred]] = {}
        self._router_timer = None

    def now(self) -> float:
        return self.reactor.seconds()

    @property
    def unknown_answers(self) -> int:
        """Answers dropped because no pending request had their Hop-by-Hop Identifier."""
        return self._unknown_answers_closed + sum(
            p.connection.unknown_answers for p in self._connections
            if p.connection.state != PeerState.CLOSED)

    # --- application API ---

    def register_handler(self, application_id: int, command_code: int, handler: Handler) -> None:
        """Handle incoming requests of (application, command): ``handler(request) -> answer``.

        The handler returns the answer Message (build it with :meth:`answer`) or a
        Deferred of it. No handler: the connection answers 3001 COMMAND_UNSUPPORTED; a
        handler that fails: 5012 UNABLE_TO_COMPLY. The application must also be in
        ``LocalNode``'s lists, else requests for it get 3007 APPLICATION_UNSUPPORTED
        before any handler.
        """
        self._handlers[(application_id, command_code)] = handler

    def answer(self, request: Message, result: int, avps=(), **kwargs) -> Message:
        """An answer to ``request`` from this node (Origin-Host/Realm filled in)."""
        return codec.new_answer(request, result, self.local.origin_host, self.local.origin_realm,
                                list(avps), **kwargs)

    def send_request(self, request: Message) -> defer.Deferred:
        """Route ``request``; the Deferred fires with the answer Message.

        Origin-Host/Realm are not added: the caller builds the whole request. Fails with
        :class:`~aaa_mip6.diameter.router.RequestTimedOut` when no answer arrives in time
        (also when no peer for it ever opens), or with DiameterError for an answer that
        does not decode or a request that is too long.
        """
        d = defer.Deferred()
        try:
            token = self.router.submit(request, self.now())
        except codec.DiameterError:
            return defer.fail()
        self._deferreds[token] = d
        self.counters["requests-sent"] += 1
        self.requests[("sent", request.header.command_code)] += 1
        self._flush_all()
        return d

    def is_tls(self, connection: PeerConnection) -> bool:
        """Whether ``connection`` (e.g. one of ``router.candidates``) runs over TLS.

        TLS here means a transport that presented a peer certificate; a connection
        this node no longer holds is not TLS.
        """
        return any(peer.connection is connection and peer.peer_certificate() is not None
                   for peer in self._connections)

    def peer_states(self) -> list[tuple[str, str]]:
        """(peer, state) of every transport connection, for a status line: the peer's
        Origin-Host once it sent its CER/CEA, else its address."""
        states = []
        for peer_protocol in self._connections:
            connection = peer_protocol.connection
            if connection.remote is not None:
                name = connection.remote.origin_host
            else:
                address = peer_protocol.transport.getPeer()
                name = format_host_port(address.host, address.port)
            states.append((name, connection.state.value))
        return sorted(states)

    def when_open(self, origin_host: str) -> defer.Deferred:
        """Fires with the RemotePeer once a connection to ``origin_host`` is Open."""
        connection = self.router.open_peers.get(origin_host)
        if connection is not None:
            return defer.succeed(connection.remote)
        waiters = self._open_waiters.setdefault(origin_host, [])

        def cancel(d: defer.Deferred) -> None:  # e.g. addTimeout: forget the waiter
            waiters.remove(d)
            if not waiters and self._open_waiters.get(origin_host) is waiters:
                del self._open_waiters[origin_host]

        d = defer.Deferred(cancel)
        waiters.append(d)
        return d

    # --- transports ---

    def listen_tcp(self, port: int = DIAMETER_TCP_PORT, interface: str = "127.0.0.1"):
        """Accept plain TCP connections; returns the listening port (``getHost().port``)."""
        listening = self.reactor.listenTCP(port, self._server_factory(), interface=interface)
        self._ports.append(listening)
        return listening

    def listen_tls(self, server_tls: tls.ServerTLS, port: int = DIAMETER_TLS_PORT,
                   interface: str = "127.0.0.1"):
        """Accept TLS connections (RFC 6733 §13: TLS from the first octet)."""
        factory = TLSMemoryBIOFactory(server_tls, False, self._server_factory(),
                                      clock=self.reactor)
        listening = self.reactor.listenTCP(port, factory, interface=interface)
        self._ports.append(listening)
        return listening

    def connect(self, name: str, host: str, port: int | None = None, *,
                client_tls: tls.ClientTLS | None = None) -> None:
        """Keep a connection to the peer whose Origin-Host is ``name`` at ``host:port``.

        With ``client_tls`` the connection is TLS (default port 5658) and the peer's
        certificate must name ``client_tls.host``; else TCP (default port 3868).
        """
        port = port or (DIAMETER_TLS_PORT if client_tls else DIAMETER_TCP_PORT)
        try:  # an address connects at once; a name is resolved first (in a thread)
            kind = (endpoints.TCP6ClientEndpoint if ipaddress.ip_address(host).version == 6
                    else endpoints.TCP4ClientEndpoint)
            endpoint = kind(self.reactor, host, port)
        except ValueError:
            endpoint = endpoints.HostnameEndpoint(self.reactor, host, port)
        link = _Link(self, endpoint, client_tls, name, Reconnect(self.reconnect_backoff))
        self._links.append(link)
        link.connect()

    def stop(self, cause: int = DISCONNECT_DO_NOT_WANT_TO_TALK_TO_YOU) -> defer.Deferred:
        """DPR to every peer, stop reconnecting and listening; fires when all are closed."""
        for link in self._links:
            link.stop()
        closing = []
        for peer_protocol in list(self._connections):
            closing.append(peer_protocol.closed)
            peer_protocol.connection.disconnect(self.now(), cause=cause)
            peer_protocol.flush()
        closing += [defer.maybeDeferred(port.stopListening) for port in self._ports]
        self._ports = []
        if self._router_timer is not None and self._router_timer.active():
            self._router_timer.cancel()
        return defer.DeferredList(closing)

    # --- internals ---

    def _new_connection(self, *, initiator: bool, admit=None) -> PeerConnection:
        return PeerConnection(self.local, initiator=initiator, watchdog=self.watchdog,
                              admit=admit, handles=self._handlers,
                              next_end_to_end=self._end_to_end, rng=self.rng)

    def _server_factory(self) -> protocol.Factory:
        def build() -> _PeerProtocol:
            peer_protocol = _PeerProtocol(self, None, None)
            peer_protocol.connection = self._new_connection(
                initiator=False, admit=lambda remote: self._admit(peer_protocol, remote))
            return peer_protocol
        return protocol.Factory.forProtocol(build)

    def _admit(self, peer_protocol: _PeerProtocol, remote: RemotePeer) -> int:
        """CEA Result-Code for a CER: the rule is :func:`~.peer.admit_cer`; this only
        gathers its facts (the TLS identity, open peers, our own connection attempts)."""
        identity_ok = True
        certificate = peer_protocol.peer_certificate()
        if certificate is not None:
            try:
                tls.check_identity(certificate, remote.origin_host)
            except tls.CertificateRejected:
                log.warning("Diameter peer certificate does not name %s", remote.origin_host)
                identity_ok = False
        waiting = [link.protocol for link in self._links
                   if link.name == remote.origin_host and link.protocol is not None
                   and link.protocol.connection.state == PeerState.WAIT_I_CEA]
        admission = admit_cer(self.local.origin_host, remote.origin_host,
                              identity_ok=identity_ok,
                              already_open=remote.origin_host in self.router.open_peers,
                              own_connection_waiting=bool(waiting))
        if waiting:
            self.counters["election-won" if admission.close_own_connection
                          else "election-lost"] += 1
            log.info("Diameter peer %s and this node connected at once: election %s",
                     remote.origin_host, "won" if admission.close_own_connection else "lost")
        if admission.close_own_connection:
            for ours in waiting:
                ours.transport.loseConnection()
        return admission.result_code

    def _event(self, peer_protocol: _PeerProtocol, event) -> None:
        connection = peer_protocol.connection
        if isinstance(event, PeerOpened):
            if peer_protocol.link is not None:
                peer_protocol.link.opened()
            self.router.peer_opened(connection)
            for d in self._open_waiters.pop(event.remote.origin_host, []):
                d.callback(event.remote)
        elif isinstance(event, RequestReceived):
            self.counters["requests-received"] += 1
            self.requests[("received", event.request.header.command_code)] += 1
            self._dispatch_request(peer_protocol, event.request)
        elif isinstance(event, AnswerReceived):
            self.counters["answers-received"] += 1
            self._count_answer("received", event.answer)
            self._settle(event.token, event.answer)
        elif isinstance(event, AnswerUndecodable):
            self._settle(event.token, Failure(event.error))
        elif isinstance(event, PeerSuspect):
            self.counters["watchdog-failovers"] += 1
            log.warning("Diameter peer %s suspect: failing over %d requests",
                        connection.remote.origin_host, len(event.tokens))
            self.router.failover(connection, event.tokens)
        elif isinstance(event, PeerClosed):
            self.counters["peers-closed"] += 1
            self._unknown_answers_closed += connection.unknown_answers
            log.info("Diameter peer %s closed: %s",
                     event.remote.origin_host if event.remote else "?", event.reason)
            self.router.peer_closed(connection, event.tokens)
        self._flush_all(skip=peer_protocol)

    def _dispatch_request(self, peer_protocol: _PeerProtocol, request: Message) -> None:
        """Run the request's handler (the connection answered 3001 for a command without
        one) and send its answer; a handler that fails gets the connection's 5012."""
        key = (request.header.application_id, request.header.command_code)

        def reply(answer: Message) -> None:
            self._count_answer("sent", answer)
            peer_protocol.connection.send_answer(answer)
            peer_protocol.flush()

        def failed(failure: Failure) -> None:
            log.error("Diameter handler for %s failed: %s", key, failure.getErrorMessage())
            peer_protocol.connection.request_failed(request)
            peer_protocol.flush()

        defer.maybeDeferred(self._handlers[key], request).addCallbacks(reply, failed)

    def _count_answer(self, direction: str, answer: Message) -> None:
        code = codec.result_code(answer)
        self.answers[(direction, answer.header.command_code,
                      "none" if code is None else str(code))] += 1

    def _settle(self, token, outcome) -> None:
        self.router.answered(token)
        d = self._deferreds.pop(token, None)
        if d is None:
            return
        if isinstance(outcome, Failure):
            d.errback(outcome)
        else:
            d.callback(outcome)

    def _flush_all(self, skip: _PeerProtocol | None = None) -> None:
        """Write what routing queued on any connection, and re-arm the request timer."""
        for peer_protocol in list(self._connections):
            if peer_protocol is not skip:
                peer_protocol.flush()
        if self._router_timer is not None and self._router_timer.active():
            self._router_timer.cancel()
        deadline = self.router.timer()
        self._router_timer = None if deadline is None else self.reactor.callLater(
            max(0.0, deadline - self.now()), self._expire)

    def _expire(self) -> None:
        self._router_timer = None
        for pending in self.router.handle_timer(self.now()):
            d = self._deferreds.pop(pending.token, None)
            if d is not None:
                d.errback(RequestTimedOut(
                    f"no answer within {self.router.request_timeout:g} s for command "
                    f"{pending.request.header.command_code} to realm {pending.destination}"))
        self._flush_all()


def open_node(local: LocalNode, reactor, *, peers: Iterable[tuple[str, str, int | None]] = (),
              listen: tuple[str, int] | None = None, cert: str | Path | None = None,
              key: str | Path | None = None, ca: str | Path | None = None,
              insecure_tcp: bool = False, watchdog: WatchdogTimers = WatchdogTimers(),
              request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> DiameterNode:
    """A node for ``local`` that keeps a connection to each of ``peers`` (Origin-Host,
    address, port; None: the IANA port) and, with ``listen`` (address, port), accepts peers.

    TLS from the first octet both ways (RFC 6733 §13): ours is ``cert``/``key`` and must
    name ``local.origin_host``; a peer's certificate must be signed by ``ca`` and name
    its Origin-Host. Plain TCP only with ``insecure_tcp`` (tests and captures). The one
    recipe of every Diameter node a program runs: the HAC's EAP backend, its SA delivery
    and the HA's SA source.
    """
    node = DiameterNode(local, reactor=reactor, watchdog=watchdog,
                        request_timeout=request_timeout)
    server_tls = None
    if not insecure_tcp:
        server_tls = tls.ServerTLS(Path(cert), Path(key), client_ca_file=Path(ca),
                                   require_client_cert=True)
    if listen is not None:
        host, port = listen
        if server_tls is None:
            node.listen_tcp(port, host)
        else:
            node.listen_tls(server_tls, port, host)
    for name, host, port in peers:
        client_tls = None if server_tls is None else tls.ClientTLS(
            name, Path(ca), cert_file=Path(cert), key_file=Path(key))
        node.connect(name, host, port, client_tls=client_tls)
    return node
