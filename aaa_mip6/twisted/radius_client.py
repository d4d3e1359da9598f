"""The HAC's RADIUS client on Twisted UDP: an :class:`aaa_mip6.twisted.aaa.AaaBackend`.

Only moves bytes and runs timers; packets come from :mod:`.codec` and the
server/Identifier bookkeeping from :mod:`.servers`. A request goes to the first
usable server in the configured order, is retransmitted unchanged with backoff,
then fails over to the next server. Servers that leave ``dead_after`` requests
unanswered are skipped until a Status-Server probe (RFC 5997) gets an answer.
Later rounds of an EAP conversation stay on the server that holds its State.
Replies that do not verify are counted and ignored, never answered.
:meth:`RadiusClient.account` sends Accounting-Requests (RFC 2866) the same way; an
accounting client is built on the accounting servers (port 1813) without probes, since
a Status-Server to an accounting port is answered with an Accounting-Response.
A call that finds every Identifier in use waits for one, up to ``max_waiting`` calls;
beyond that it fails at once (AaaUnavailable, counted ``overloaded``), so a flood
of requests cannot queue without bound behind a slow server.
:meth:`RadiusClient.set_servers` swaps the server list and secrets in place (a
program's SIGHUP): requests in flight and EAP conversations under way finish on the
server they started with.
"""

from __future__ import annotations

import collections
import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ..aaa import AaaAnswer, AaaSession, AaaTimeout, AaaUnavailable, Challenge
from ..errors import AaaLimitError, ConfigError, InvalidInput
from ..radius import codec
from ..radius.servers import IdentifierSpace, RadiusServer, RetryPolicy, ServerHealth, retry_after

DEFAULT_MAX_PORTS = 16  # source ports per address family: 16 x 256 outstanding per server
DEFAULT_MAX_WAITING = 4096  # calls queued for a free Identifier; beyond, AaaUnavailable at once

_log = Logger()


@dataclass(frozen=True, slots=True)
class _Continuation:
    """What a RADIUS session carries between rounds (``AaaSession.state``)."""

    server: int
    state: bytes | None


@dataclass(eq=False, slots=True)
class _Server:
    config: RadiusServer
    codec: codec.RadiusCodec
    health: ServerHealth
    probe_timer: IDelayedCall | None = None

    @property
    def name(self) -> str:
        return f"{self.config.address}:{self.config.port}"


@dataclass(eq=False, slots=True)
class _Transaction:
    """One request on the wire, waiting for its reply or its timer."""

    server: int
    port: int
    sent: codec.SentRequest
    timer: IDelayedCall | None = None
    transmissions: int = 1


@dataclass(eq=False, slots=True)
class _Exchange:
    """One ``authenticate`` or ``account`` call, possibly tried on several servers."""

    session: AaaSession | None
    eap_payload: bytes = field(repr=False)  # the MN's EAP response: EAP-GTC carries the password
    state: bytes | None = field(repr=False)
    candidates: list[int]
    accounting: codec.AccountingRecord | None = None  # an ``account`` call's record
    deferred: defer.Deferred = field(init=False)
    transaction: _Transaction | None = None
    unanswered: list[int] = field(default_factory=list)  # servers that let it time out
    ignored: set[str] = field(default_factory=set)  # why replies to it were ignored


@dataclass(eq=False, slots=True)
class _Probe:
    server: int
    transaction: _Transaction


class _PortProtocol(DatagramProtocol):
    """One source port; hands every datagram to the client."""

    def __init__(self, client: RadiusClient, version: int, index: int):
        self._client = client
        self._key = (version, index)

    def datagramReceived(self, datagram: bytes, addr) -> None:
        self._client._received(self._key, datagram, addr)


class RadiusClient:
    """RADIUS EAP relay (RFC 3579) to one or more servers; see the module docstring."""

    def __init__(self, servers: Sequence[RadiusServer], nas: codec.Nas, *,
                 policy: RetryPolicy = RetryPolicy(), dictionary=None, reactor=None,
                 max_ports: int = DEFAULT_MAX_PORTS, max_waiting: int = DEFAULT_MAX_WAITING):
        if not servers:
            raise ConfigError("a RADIUS client needs at least one server")
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._policy = policy
        self._nas = nas
        self._max_ports = max_ports
        self._max_waiting = max_waiting
        dictionary = self._dictionary = dictionary or codec.load_dictionary()
        # Every server ever configured, by index (transactions and EAP continuations hold
        # indices); _active is the configured order. A server dropped by set_servers stays
        # here, retired, so a reply to it still finds its request.
        self._servers: list[_Server] = []
        self._by_address: dict[tuple, int] = {}
        self._active: list[int] = []
        self.set_servers(servers)
        self._ports: dict[int, list] = {4: [], 6: []}
        self._identifiers = IdentifierSpace()
        self._pending: dict[tuple, _Exchange | _Probe] = {}
        self._waiting: collections.deque[_Exchange] = collections.deque()
        self._random = random.Random()
        self._stopped = False
        self.counters: collections.Counter[str] = collections.Counter()
        # (server name, outcome) -> count, for the metrics: sent, accept, reject, challenge,
        # accounting-response, and timeout (no answer after every retransmission)
        self.by_server: collections.Counter[tuple[str, str]] = collections.Counter()

    def __repr__(self) -> str:
        return f"RadiusClient({', '.join(self._servers[i].name for i in self._active)})"

    # -- AaaBackend --------------------------------------------------------

    def authenticate(self, session: AaaSession, eap_payload: bytes) -> defer.Deferred[AaaAnswer]:
        """Relay one EAP-Response; fire with Challenge/Accept/Reject or fail with AaaError,
        or at once with AaaLimitError if no Access-Request can carry it."""
        continuation = session.state if isinstance(session.state, _Continuation) else None
        try:
            codec.check_access_request(self._nas, session, eap_payload,
                                       continuation.state if continuation else None)
        except AaaLimitError as error:
            self.counters["refused-too-long"] += 1
            return defer.fail(error)
        if self._stopped:
            return defer.fail(AaaUnavailable("RADIUS client stopped",
                                             retry_after=self._hold_down()))
        if continuation is not None:
            candidates, state = [continuation.server], continuation.state
        else:
            candidates, state = list(self._active), None
        exchange = _Exchange(session, eap_payload, state, candidates)
        exchange.deferred = defer.Deferred(lambda _: self._cancel(exchange))
        self._try_next_server(exchange)
        return exchange.deferred

    def account(self, record: codec.AccountingRecord) -> defer.Deferred[None]:
        """Send one Accounting-Request; fire with None once a server answers it, or fail
        with AaaError when none does."""
        if self._stopped:
            return defer.fail(AaaUnavailable("RADIUS client stopped",
                                             retry_after=self._hold_down()))
        exchange = _Exchange(None, b"", None, list(self._active), record)
        exchange.deferred = defer.Deferred(lambda _: self._cancel(exchange))
        self._try_next_server(exchange)
        return exchange.deferred

    def stop(self) -> defer.Deferred[None]:
        """Fail outstanding calls with AaaUnavailable, cancel timers, close the ports."""
        self._stopped = True
        stopped = AaaUnavailable("RADIUS client stopped", retry_after=self._hold_down())
        for pending in list(self._pending.values()):
            self._end(pending.transaction)
            if isinstance(pending, _Exchange):
                pending.deferred.errback(stopped)
        while self._waiting:
            self._waiting.popleft().deferred.errback(stopped)
        for server in self._servers:
            if server.probe_timer is not None and server.probe_timer.active():
                server.probe_timer.cancel()
        ports = [port for family in self._ports.values() for port in family]
        closing = [defer.maybeDeferred(port.stopListening) for port in ports]
        return defer.gatherResults(closing).addCallback(lambda _: None)

    def set_servers(self, servers: Sequence[RadiusServer]) -> None:
        """Use ``servers``, in this order and with their secrets, for new calls.

        A server kept keeps its dead-or-alive state; one dropped is retired: its requests
        in flight and EAP conversations under way end on it, but no new call goes there
        and it is no longer probed. A reply to a request sent under an old secret fails
        its check, so that request ends like an unanswered one.
        """
        if not servers:
            raise ConfigError("a RADIUS client needs at least one server")
        active = []
        for config in servers:
            index = self._by_address.get((config.address, config.port))
            if index is None:
                index = len(self._servers)
                self._by_address[(config.address, config.port)] = index
                self._servers.append(_Server(config, self._codec(config),
                                             ServerHealth(self._policy)))
            elif self._servers[index].config.secret != config.secret:
                self._servers[index].config = config
                self._servers[index].codec = self._codec(config)
            active.append(index)
        for index in set(self._active) - set(active):
            timer = self._servers[index].probe_timer
            if timer is not None and timer.active():
                timer.cancel()
        for index in set(active) - set(self._active):
            if not self._servers[index].health.alive and self._policy.probe:
                self._schedule_probe(index)  # back from retirement, still dead
        self._active = active

    def _codec(self, server: RadiusServer) -> codec.RadiusCodec:
        return codec.RadiusCodec(server.secret, self._nas, self._dictionary)

    # -- requests ----------------------------------------------------------

    def _try_next_server(self, exchange: _Exchange) -> None:
        now = self._reactor.seconds()
        while exchange.candidates:
            index = exchange.candidates[0]
            if self._servers[index].health.usable(now):
                break
            exchange.candidates.pop(0)
        else:
            exchange.deferred.errback(self._no_answer_error(exchange, now))
            return
        slot = self._allocate(index)
        if slot is None:
            if len(self._waiting) >= self._max_waiting:
                self.counters["overloaded"] += 1
                exchange.deferred.errback(AaaUnavailable(
                    f"every RADIUS Identifier is in use and {len(self._waiting)} calls wait",
                    retry_after=1))
                return
            self._waiting.append(exchange)
            return
        exchange.candidates.pop(0)
        port, identifier = slot
        server = self._servers[index]
        try:
            if exchange.accounting is not None:
                sent = server.codec.encode_accounting_request(identifier, exchange.accounting)
            else:
                sent = server.codec.encode_access_request(identifier, exchange.session,
                                                          exchange.eap_payload, exchange.state)
        except InvalidInput as err:
            self._identifiers.release(port, index, identifier)
            exchange.deferred.errback(err)
            return
        exchange.transaction = _Transaction(index, port, sent)
        self._start(exchange)

    def _no_answer_error(self, exchange: _Exchange, now: float) -> Exception:
        """AaaTimeout naming the servers that let ``exchange`` time out, or AaaUnavailable."""
        healths = [self._servers[index].health for index in self._active]
        if not any(health.usable(now) for health in healths):
            self.counters["unavailable"] += 1
            everyone = self._active
            return AaaUnavailable(f"every RADIUS server is marked dead after "
                                  f"{self._no_answer(exchange.unanswered or everyone, exchange)}",
                                  retry_after=retry_after(healths, now))
        self.counters["timed-out"] += 1
        return AaaTimeout(self._no_answer(exchange.unanswered, exchange))

    def _no_answer(self, indices: Sequence[int], exchange: _Exchange) -> str:
        """Why servers were silent, for the log. A RADIUS server drops a request whose
        Message-Authenticator does not verify (a wrong secret) without a word; a reply
        that came but was ignored is named by its reasons instead."""
        names = ", ".join(self._servers[index].name for index in indices)
        servers = "servers" if len(indices) > 1 else "server"
        if exchange.ignored:
            return (f"no usable answer from RADIUS {servers} {names}: replies ignored "
                    f"({', '.join(sorted(exchange.ignored))})")
        return f"no answer from RADIUS {servers} {names} (wrong secret or server down)"

    def _exchange_timed_out(self, exchange: _Exchange) -> None:
        transaction = exchange.transaction
        if transaction.transmissions < self._policy.transmissions:
            self.counters["retransmitted"] += 1
            self._transmit(transaction)
            transaction.transmissions += 1
            self._arm(exchange)
            return
        self._end(transaction)
        exchange.transaction = None
        server = self._servers[transaction.server]
        self.by_server[(server.name, "timeout")] += 1
        exchange.unanswered.append(transaction.server)
        _log.warn("{problem}", problem=self._no_answer([transaction.server], exchange))
        if server.health.record_timeout(self._reactor.seconds()):
            self._mark_dead(transaction.server)
        self._try_next_server(exchange)

    def _exchange_replied(self, exchange: _Exchange, datagram: bytes) -> None:
        transaction = exchange.transaction
        server = self._servers[transaction.server]
        try:
            if exchange.accounting is not None:
                server.codec.check_accounting_response(transaction.sent, datagram)
            else:
                reply = server.codec.decode_access_reply(transaction.sent, datagram)
        except InvalidInput as err:
            self._ignore(server, err)
            exchange.ignored.add(err.reason)
            return
        self._end(transaction)
        exchange.transaction = None
        server.health.record_answer()
        if exchange.accounting is not None:
            self.counters["accounting-response"] += 1
            self.by_server[(server.name, "accounting-response")] += 1
            exchange.deferred.callback(None)
            return
        outcome = type(reply.answer).__name__.lower()
        self.counters[outcome] += 1
        self.by_server[(server.name, outcome)] += 1
        if isinstance(reply.answer, Challenge):
            exchange.session.state = _Continuation(transaction.server, reply.state)
        else:
            exchange.session.state = None
        exchange.deferred.callback(reply.answer)

    def _cancel(self, exchange: _Exchange) -> None:
        """The HAC gave up on the call (e.g. the MN left): free its Identifier and timer."""
        if exchange.transaction is not None:
            self._end(exchange.transaction)
        if exchange in self._waiting:
            self._waiting.remove(exchange)

    # -- dead servers and Status-Server probes ----------------------------

    def _mark_dead(self, index: int) -> None:
        server = self._servers[index]
        self.counters["server-dead"] += 1
        _log.warn("RADIUS server {server} marked dead for {hold_down} s",
                  server=server.name, hold_down=self._policy.hold_down)
        if self._policy.probe and index in self._active:
            self._schedule_probe(index)

    def _schedule_probe(self, index: int) -> None:
        self._servers[index].probe_timer = self._reactor.callLater(
            self._policy.hold_down, self._probe, index)

    def _probe(self, index: int) -> None:
        slot = self._allocate(index)
        if slot is None:
            self._schedule_probe(index)
            return
        port, identifier = slot
        sent = self._servers[index].codec.encode_status_server(identifier)
        self._start(_Probe(index, _Transaction(index, port, sent)))

    def _probe_timed_out(self, probe: _Probe) -> None:
        self._end(probe.transaction)
        self._servers[probe.server].health.record_probe_failed(self._reactor.seconds())
        if probe.server in self._active:
            self._schedule_probe(probe.server)

    def _probe_replied(self, probe: _Probe, datagram: bytes) -> None:
        server = self._servers[probe.server]
        try:
            server.codec.check_status_reply(probe.transaction.sent, datagram)
        except InvalidInput as err:
            self._ignore(server, err)
            return
        self._end(probe.transaction)
        server.health.record_answer()
        self.counters["server-alive"] += 1
        _log.info("RADIUS server {server} answered Status-Server: alive again",
                  server=server.name)

    # -- wire ----------------------------------------------------------------

    def _start(self, pending: _Exchange | _Probe) -> None:
        self._pending[self._key(pending.transaction)] = pending
        self.counters["sent"] += 1
        self.by_server[(self._servers[pending.transaction.server].name, "sent")] += 1
        self._transmit(pending.transaction)
        self._arm(pending)

    def _arm(self, pending: _Exchange | _Probe) -> None:
        transaction = pending.transaction
        if isinstance(pending, _Probe):
            wait, expire = self._policy.initial_timeout, self._probe_timed_out
        else:
            wait = self._policy.timeout(transaction.transmissions - 1, self._random.random())
            expire = self._exchange_timed_out
        transaction.timer = self._reactor.callLater(wait, expire, pending)

    def _transmit(self, transaction: _Transaction) -> None:
        config = self._servers[transaction.server].config
        port = self._ports[config.address.version][transaction.port]
        port.write(transaction.sent.datagram, (str(config.address), config.port))

    def _end(self, transaction: _Transaction) -> None:
        """Forget ``transaction``: stop its timer, free its Identifier, wake a waiting call."""
        if transaction.timer is not None and transaction.timer.active():
            transaction.timer.cancel()
        if self._pending.pop(self._key(transaction), None) is None:
            return
        self._identifiers.release(transaction.port, transaction.server,
                                  transaction.sent.identifier)
        if not self._stopped:
            for _ in range(len(self._waiting)):
                self._try_next_server(self._waiting.popleft())

    def _key(self, transaction: _Transaction) -> tuple:
        version = self._servers[transaction.server].config.address.version
        return (version, transaction.port, transaction.server, transaction.sent.identifier)

    def _allocate(self, index: int) -> tuple[int, int] | None:
        """(port index, Identifier) for ``index``, opening another source port if all are full."""
        version = self._servers[index].config.address.version
        ports = self._ports[version]
        slot = self._identifiers.allocate(len(ports), index)
        if slot is None and len(ports) < self._max_ports:
            ports.append(self._reactor.listenUDP(
                0, _PortProtocol(self, version, len(ports)), interface=self._bind_address(version)))
            slot = self._identifiers.allocate(len(ports), index)
        return slot

    def _bind_address(self, version: int) -> str:
        """The NAS address if it is of this family, so servers see the expected source."""
        if self._nas.address.version == version:
            return str(self._nas.address)
        return "::" if version == 6 else "0.0.0.0"

    def _received(self, port_key: tuple[int, int], datagram: bytes, addr) -> None:
        version, port = port_key
        try:
            identifier = codec.reply_identifier(datagram)
            index = self._by_address.get((ipaddress.ip_address(addr[0]), addr[1]))
        except (InvalidInput, ValueError) as err:
            self.counters["ignored-malformed"] += 1
            _log.debug("ignored RADIUS datagram from {peer}: {error}", peer=addr[0], error=err)
            return
        if index is None:
            self.counters["ignored-unknown-source"] += 1
            _log.info("ignored RADIUS datagram from unknown source {peer}", peer=addr[0])
            return
        pending = self._pending.get((version, port, index, identifier))
        if pending is None:
            self.counters["ignored-unknown-id"] += 1
            _log.debug("ignored RADIUS datagram from {peer}: no request with that "
                       "Identifier", peer=addr[0])
        elif isinstance(pending, _Probe):
            self._probe_replied(pending, datagram)
        else:
            self._exchange_replied(pending, datagram)

    def _ignore(self, server: _Server, err: InvalidInput) -> None:
        self.counters[f"ignored-{err.reason}"] += 1
        _log.info("ignored reply from RADIUS server {server}: {reason}",
                  server=server.name, reason=err.reason)

    def _hold_down(self) -> int:
        return max(1, round(self._policy.hold_down))
