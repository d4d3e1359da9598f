"""One Diameter peer connection (RFC 6733 §5), sans-I/O.

:class:`PeerConnection` is the per-transport-connection part of the RFC 6733 §5.6
peer state machine with the RFC 3539 watchdog: capabilities exchange, watchdog,
disconnect, hop-by-hop matching of answers and the application check on incoming
requests. It takes bytes, timer ticks and the current time, and gives back bytes
to send (:meth:`~PeerConnection.data_to_send`), events
(:meth:`~PeerConnection.events`), the next deadline (:meth:`~PeerConnection.timer`)
and whether the transport should be closed (:attr:`~PeerConnection.wants_close`).
The Twisted shell and the tests drive it the same way.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Container, Hashable
from dataclasses import dataclass, field

from diameter.message import Message, constants
from diameter.message.commands import (
    CapabilitiesExchangeAnswer,
    CapabilitiesExchangeRequest,
    DeviceWatchdogRequest,
    DisconnectPeerRequest,
)

from ..actions import Action
from ..backoff import Backoff
from . import codec
from .codec import DiameterError

CER_CODE = CapabilitiesExchangeRequest.code
DWR_CODE = DeviceWatchdogRequest.code
DPR_CODE = DisconnectPeerRequest.code

DISCONNECT_REBOOTING = constants.E_DISCONNECT_CAUSE_REBOOTING
DISCONNECT_DO_NOT_WANT_TO_TALK_TO_YOU = constants.E_DISCONNECT_CAUSE_DO_NOT_WANT_TO_TALK_TO_YOU

DEFAULT_TW = 30.0  # RFC 3539 §3.4.1
DEFAULT_TW_JITTER = 2.0


class PeerState(enum.Enum):
    """The states of one connection; RFC 6733 §5.6 names in the docstrings of the values."""

    CLOSED = "closed"
    WAIT_CONN_ACK = "wait-conn-ack"  # initiator, transport not yet up
    WAIT_I_CEA = "wait-i-cea"  # initiator, CER sent
    WAIT_CER = "wait-cer"  # responder, transport accepted, no CER yet
    OPEN = "open"  # I-Open / R-Open
    CLOSING = "closing"  # DPR sent, waiting for DPA


class PeerNotOpen(RuntimeError):
    """A request was handed to a connection that is not in the Open state."""


def _identity(value: str, what: str) -> str:
    if not value or not value.isascii() or any(c in value for c in " \t\r\n"):
        raise ValueError(f"{what} must be a non-empty DiameterIdentity, not {value!r}")
    return value


@dataclass(frozen=True)
class LocalNode:
    """What this node says about itself in CER/CEA and puts in every message it originates.

    ``auth_applications``/``acct_applications`` are advertised as Auth-/Acct-Application-Id;
    ``vendor_applications`` as Vendor-Specific-Application-Id groups of
    (Vendor-Id, Auth-Application-Id). A relay advertises ``RELAY_APPLICATION_ID``.
    """

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[str, ...] = ("127.0.0.1",)
    auth_applications: frozenset[int] = frozenset()
    acct_applications: frozenset[int] = frozenset()
    vendor_applications: frozenset[tuple[int, int]] = frozenset()
    vendor_id: int = 0
    product_name: str = "aaa-mip6"
    origin_state_id: int = field(default_factory=lambda: int(time.time()) & 0xFFFFFFFF)

    def __post_init__(self):
        _identity(self.origin_host, "Origin-Host")
        _identity(self.origin_realm, "Origin-Realm")
        if not self.host_ip_addresses:
            raise ValueError("a Diameter node needs at least one Host-IP-Address")

    @property
    def applications(self) -> frozenset[int]:
        return (self.auth_applications | self.acct_applications
                | {app for _vendor, app in self.vendor_applications})

    def supports(self, application_id: int) -> bool:
        """Whether an incoming request for ``application_id`` is ours to handle."""
        return (application_id == codec.COMMON_APPLICATION_ID
                or codec.RELAY_APPLICATION_ID in self.applications
                or application_id in self.applications)

    def capabilities(self, message: Message) -> Message:
        """Fill a CER or CEA with this node's identity and applications."""
        message.origin_host = self.origin_host.encode()
        message.origin_realm = self.origin_realm.encode()
        message.host_ip_address = list(self.host_ip_addresses)
        message.vendor_id = self.vendor_id
        message.product_name = self.product_name
        message.origin_state_id = self.origin_state_id
        message.auth_application_id = sorted(self.auth_applications)
        message.acct_application_id = sorted(self.acct_applications)
        for vendor, app in sorted(self.vendor_applications):
            message.append_avp(codec.new_avp(constants.AVP_VENDOR_SPECIFIC_APPLICATION_ID, [
                codec.new_avp(constants.AVP_VENDOR_ID, vendor),
                codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, app)]))
        return message


@dataclass(frozen=True)
class RemotePeer:
    """What the other end said about itself in its CER or CEA."""

    origin_host: str
    origin_realm: str
    applications: frozenset[int]
    host_ip_addresses: tuple[str, ...] = ()
    product_name: str = ""

    @property
    def is_relay(self) -> bool:
        return codec.RELAY_APPLICATION_ID in self.applications

    def supports(self, application_id: int) -> bool:
        """Whether a request for ``application_id`` may be sent to this peer."""
        return self.is_relay or application_id in self.applications

    @classmethod
    def from_capabilities(cls, message: Message) -> RemotePeer:
        """Read a CER or CEA; raises DiameterError when Origin-Host/Realm are missing."""
        host = codec.avp_value(message, constants.AVP_ORIGIN_HOST)
        realm = codec.avp_value(message, constants.AVP_ORIGIN_REALM)
        if not host or not realm:
            raise DiameterError("capabilities exchange without Origin-Host or Origin-Realm")
        applications = set(codec.avp_values(message, constants.AVP_AUTH_APPLICATION_ID))
        applications.update(codec.avp_values(message, constants.AVP_ACCT_APPLICATION_ID))
        for group in codec.avp_values(message, constants.AVP_VENDOR_SPECIFIC_APPLICATION_ID):
            applications.update(codec.group_values(
                group, constants.AVP_AUTH_APPLICATION_ID, constants.AVP_ACCT_APPLICATION_ID))
        addresses = tuple(address for _family, address in
                          codec.avp_values(message, constants.AVP_HOST_IP_ADDRESS))
        return cls(codec.as_text(host), codec.as_text(realm), frozenset(applications), addresses,
                   codec.as_text(codec.avp_value(message, constants.AVP_PRODUCT_NAME, default="")))


def has_common_application(local: LocalNode, remote: RemotePeer) -> bool:
    """RFC 6733 §5.3: a connection is kept only when the two ends share an application."""
    return (remote.is_relay or codec.RELAY_APPLICATION_ID in local.applications
            or bool(local.applications & remote.applications))


def wins_election(local_host: str, remote_host: str) -> bool:
    """RFC 6733 §5.6.4: the side whose Origin-Host is the greater octet string wins."""
    return local_host.encode() > remote_host.encode()


@dataclass(frozen=True)
class Admission:
    """What a node does with a CER that shares an application: the CEA Result-Code, and
    whether it closes its own connection to that peer, still waiting for a CEA."""

    result_code: int
    close_own_connection: bool = False


def admit_cer(local_host: str, remote_host: str, *, identity_ok: bool = True,
              already_open: bool = False, own_connection_waiting: bool = False) -> Admission:
    """The responder's decision on a CER (RFC 6733 §5.6.4 election, §13 identity).

    ``identity_ok``: the peer's certificate names ``remote_host`` (always true on plain
    TCP). ``already_open``: this node has an Open connection to ``remote_host``; the new
    one is refused. ``own_connection_waiting``: this node connected to ``remote_host``
    too and waits for its CEA (both connected at once): the greater Origin-Host wins,
    keeps the connection the other side started and closes its own; the loser refuses
    with 4003 DIAMETER_ELECTION_LOST and keeps the one it started, which the winner
    answers.
    """
    if not identity_ok:
        return Admission(codec.UNKNOWN_PEER)
    if already_open:
        return Admission(codec.ELECTION_LOST)
    if own_connection_waiting:
        if wins_election(local_host, remote_host):
            return Admission(codec.SUCCESS, close_own_connection=True)
        return Admission(codec.ELECTION_LOST)
    return Admission(codec.SUCCESS)


class Reconnect:
    """When a node connects again to a peer it keeps (RFC 6733 §2.1: Tc, the wait
    between attempts, here doubling from ``backoff.initial`` up to its maximum).

    An attempt that fails or a connection that closes waits :meth:`wait` seconds; an
    Open connection starts the doubling over. While the peer holds an Open connection
    it started itself, a new one would only lose the election (§5.6.4): the node waits
    again instead of connecting.
    """

    def __init__(self, backoff: Backoff):
        self.backoff = backoff
        self.attempts = 0  # waits since the last Open connection

    def opened(self) -> None:
        self.attempts = 0

    @staticmethod
    def connect_now(already_open: bool) -> bool:
        """Whether to connect when the wait is over (``already_open``: the peer is Open)."""
        return not already_open

    def wait(self, draw: float) -> float:
        """Seconds before the next attempt; ``draw`` in [0, 1) picks the jitter."""
        delay = self.backoff.delay(self.attempts, draw)
        if self.backoff.step(self.attempts) < self.backoff.maximum:  # past it, counting
            self.attempts += 1                                      # changes nothing
        return delay


class EndToEndIdentifiers:
    """End-to-End Identifiers unique per RFC 6733 §3: high 12 bits from the start time."""

    def __init__(self, now: float | None = None, rng: random.Random | None = None):
        start = int(time.time() if now is None else now)
        low = (rng or random.SystemRandom()).getrandbits(20)
        self._next = ((start & 0xFFF) << 20) | low

    def __call__(self) -> int:
        value = self._next
        self._next = (value & 0xFFF00000) | ((value + 1) & 0xFFFFF)
        return value


@dataclass(frozen=True)
class WatchdogTimers:
    """RFC 3539 Tw and its jitter (seconds); Tw below 6 s is for tests only."""

    tw: float = DEFAULT_TW
    jitter: float = DEFAULT_TW_JITTER

    def __post_init__(self):
        if not self.tw > 0 or not 0 <= self.jitter < self.tw:
            raise ValueError("Tw must be positive and its jitter smaller than Tw")

    def next_interval(self, rng: random.Random) -> float:
        return self.tw + rng.uniform(-self.jitter, self.jitter)


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerOpened(Action):
    """Capabilities exchanged: requests may now flow."""
    remote: RemotePeer


@dataclass(frozen=True)
class RequestReceived(Action):
    """An application request for an application this node supports; answer it with send_answer."""
    request: Message


@dataclass(frozen=True)
class AnswerReceived(Action):
    """The answer to the request sent with ``token``."""
    token: Hashable
    answer: Message


@dataclass(frozen=True)
class AnswerUndecodable(Action):
    """The answer to ``token`` arrived but does not decode."""
    token: Hashable
    error: DiameterError


@dataclass(frozen=True)
class PeerSuspect(Action):
    """RFC 3539 SUSPECT: no watchdog answer; ``tokens`` were withdrawn for failover."""
    tokens: tuple


@dataclass(frozen=True)
class PeerClosed(Action):
    """The connection is over; ``tokens`` never got an answer. Emitted exactly once."""
    reason: str
    tokens: tuple
    remote: RemotePeer | None
    disconnect_cause: int | None = None


class PeerConnection:
    """One transport connection to a Diameter peer, as initiator or responder.

    ``admit`` is asked (responder side, after a CER that shares an application) for
    the CEA Result-Code: the node's place for election and peer authorization.
    ``handles`` holds the (Application-Id, Command-Code) pairs the node has handlers
    for: a request for another is answered 3001 DIAMETER_COMMAND_UNSUPPORTED here
    (None: every request of a supported application becomes a RequestReceived).
    ``next_end_to_end`` gives End-to-End Identifiers for the messages this
    connection originates (CER, DWR, DPR and requests that have none yet).
    """

    def __init__(self, local: LocalNode, *, initiator: bool,
                 watchdog: WatchdogTimers = WatchdogTimers(),
                 admit: Callable[[RemotePeer], int] | None = None,
                 handles: Container[tuple[int, int]] | None = None,
                 next_end_to_end: Callable[[], int] | None = None,
                 max_message_length: int = codec.DEFAULT_MAX_MESSAGE_LENGTH,
                 rng: random.Random | None = None):
        self.local = local
        self.initiator = initiator
        self.remote: RemotePeer | None = None
        self.state = PeerState.WAIT_CONN_ACK if initiator else PeerState.WAIT_CER
        self.unknown_answers = 0
        self.wants_close = False
        self._watchdog = watchdog
        self._admit = admit
        self._handles = handles
        self._rng = rng or random.SystemRandom()
        self._next_end_to_end = next_end_to_end or EndToEndIdentifiers(rng=self._rng)
        self._max_length = max_message_length
        self._framer = codec.MessageFramer(max_message_length)
        self._next_hop_by_hop = self._rng.getrandbits(32)
        self._pending: dict[int, Hashable] = {}
        self._outgoing = bytearray()
        self._events: list = []
        self._deadline: float | None = None
        self._dwr_outstanding = False
        self.suspect = False

    def __repr__(self) -> str:
        peer = self.remote.origin_host if self.remote else "?"
        return f"<PeerConnection {self.local.origin_host}->{peer} {self.state.value}>"

    # --- outputs ---

    def data_to_send(self) -> bytes:
        data, self._outgoing = bytes(self._outgoing), bytearray()
        return data

    def events(self) -> list:
        events, self._events = self._events, []
        return events

    def timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (same clock as ``now``)."""
        return self._deadline

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # --- inputs ---

    def connection_made(self, now: float) -> None:
        """The transport is up: the initiator sends its CER; both wait at most Tw for the other."""
        if self.initiator:
            self._send(self.local.capabilities(CapabilitiesExchangeRequest()))
            self.state = PeerState.WAIT_I_CEA
        self._deadline = now + self._watchdog.tw

    def connection_lost(self, reason: str = "connection lost") -> None:
        self._close(reason)

    def data_received(self, data: bytes, now: float) -> None:
        if self.state == PeerState.CLOSED:
            return
        try:
            frames = self._framer.feed(data)
        except DiameterError as error:
            self._close(f"framing: {error}")
            return
        for frame in frames:
            if self.state == PeerState.CLOSED:
                return
            self._frame_received(frame, now)

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        if self.state in (PeerState.WAIT_I_CEA, PeerState.WAIT_CER, PeerState.WAIT_CONN_ACK):
            self._close("no capabilities exchange within Tw")
        elif self.state == PeerState.CLOSING:
            self._close("no DPA within Tw")
        elif self.state == PeerState.OPEN:
            self._watchdog_expired(now)

    def send_request(self, request: Message, token: Hashable) -> int:
        """Send an application request; its answer comes back as AnswerReceived(token).

        Returns the Hop-by-Hop Identifier used. Keeps an End-to-End Identifier that is
        already set (a retransmission after failover), else assigns one.
        """
        if self.state != PeerState.OPEN:
            raise PeerNotOpen(f"peer connection is {self.state.value}, not open")
        hop_by_hop = self._hop_by_hop()
        request.header.hop_by_hop_identifier = hop_by_hop
        if not request.header.end_to_end_identifier:
            request.header.end_to_end_identifier = self._next_end_to_end()
        self._outgoing += codec.encode_message(request, self._max_length)
        self._pending[hop_by_hop] = token
        return hop_by_hop

    def forget(self, hop_by_hop: int) -> None:
        """Stop waiting for the answer to ``hop_by_hop`` (its request timed out): a late
        answer then counts as unknown. Without this, a peer that keeps the connection up
        but never answers some requests would grow the table forever."""
        self._pending.pop(hop_by_hop, None)

    def send_answer(self, answer: Message) -> None:
        """Send the answer to a RequestReceived; dropped if the connection has gone."""
        if self.state in (PeerState.OPEN, PeerState.CLOSING):
            self._outgoing += codec.encode_message(answer, self._max_length)

    def request_failed(self, request: Message) -> None:
        """The node could not handle a RequestReceived (its handler failed): answer
        5012 DIAMETER_UNABLE_TO_COMPLY (RFC 6733 §7.1.5), if the connection is still up."""
        if self.state in (PeerState.OPEN, PeerState.CLOSING):
            self._answer(request, codec.UNABLE_TO_COMPLY)

    def disconnect(self, now: float, *, cause: int = DISCONNECT_REBOOTING) -> None:
        """Start a clean shutdown: DPR, then close on DPA (or after Tw)."""
        if self.state != PeerState.OPEN:
            self._close("disconnected locally")
            return
        request = DisconnectPeerRequest()
        request.origin_host = self.local.origin_host.encode()
        request.origin_realm = self.local.origin_realm.encode()
        request.disconnect_cause = cause
        self._send(request)
        self.state = PeerState.CLOSING
        self._deadline = now + self._watchdog.tw

    # --- internals ---

    def _hop_by_hop(self) -> int:
        value = self._next_hop_by_hop
        self._next_hop_by_hop = (value + 1) & 0xFFFFFFFF
        return value

    def _send(self, message: Message) -> None:
        """Send a message this connection originates (base protocol)."""
        if message.header.is_request:
            message.header.hop_by_hop_identifier = self._hop_by_hop()
            message.header.end_to_end_identifier = self._next_end_to_end()
        self._outgoing += codec.encode_message(message, self._max_length)

    def _answer(self, request: Message, result: int, avps=(), error_message=None) -> None:
        self._outgoing += codec.encode_message(codec.new_answer(
            request, result, self.local.origin_host, self.local.origin_realm, list(avps),
            error_message=error_message), self._max_length)

    def _close(self, reason: str, cause: int | None = None) -> None:
        if self.state == PeerState.CLOSED:
            return
        self.state = PeerState.CLOSED
        self.wants_close = True
        self._deadline = None
        tokens = tuple(self._pending.values())
        self._pending.clear()
        self._events.append(PeerClosed(reason, tokens, self.remote, cause))

    def _frame_received(self, frame: bytes, now: float) -> None:
        header = codec.decode_header(frame, self._max_length)
        try:
            message = codec.decode_message(frame)
        except DiameterError as error:
            self._undecodable(header, error)
            return
        if self.state == PeerState.OPEN:
            self._alive(now)
        if message.header.is_request:
            self._request_received(message, now)
        else:
            self._answer_received(message, now)

    def _undecodable(self, header, error: DiameterError) -> None:
        if self.state not in (PeerState.OPEN, PeerState.CLOSING):
            self._close(f"undecodable message before Open: {error}")
        elif header.is_request:
            self._answer(Message(header), codec.error_result(error), error_message=str(error))
        elif header.hop_by_hop_identifier in self._pending:
            token = self._pending.pop(header.hop_by_hop_identifier)
            self._events.append(AnswerUndecodable(token, error))
        else:
            self.unknown_answers += 1

    def _request_received(self, request: Message, now: float) -> None:
        code = request.header.command_code
        if self.state == PeerState.WAIT_CER:
            if code == CER_CODE:
                self._cer_received(request, now)
            else:
                self._close(f"command {code} before CER")
        elif self.state not in (PeerState.OPEN, PeerState.CLOSING):
            self._close(f"request {code} before CEA")
        elif code == DWR_CODE:
            self._answer(request, codec.SUCCESS, [
                codec.new_avp(constants.AVP_ORIGIN_STATE_ID, self.local.origin_state_id)])
        elif code == DPR_CODE:
            self._answer(request, codec.SUCCESS)
            cause = codec.avp_value(request, constants.AVP_DISCONNECT_CAUSE)
            self._close("peer sent DPR", cause)
        elif code == CER_CODE:
            self._answer(request, codec.UNABLE_TO_COMPLY,
                         error_message="capabilities already exchanged")
        elif not self._for_this_node(request):
            self._answer(request, codec.UNABLE_TO_DELIVER,
                         error_message="Destination-Host names another node")
        elif not self.local.supports(request.header.application_id):
            self._answer(request, codec.APPLICATION_UNSUPPORTED)
        elif (self._handles is not None
              and (request.header.application_id, code) not in self._handles):
            self._answer(request, codec.COMMAND_UNSUPPORTED)  # RFC 6733 §7.1.3
        else:
            self._events.append(RequestReceived(request))

    def _for_this_node(self, request: Message) -> bool:
        """RFC 6733 §6.1.4: a request whose Destination-Host names another node is not for
        local consumption, and a node that is not an agent cannot pass it on. An agent
        that found the named host gone may send it to another peer of the realm: answering
        it here (3002, so the sender retries) keeps a revocation meant for one HA from
        being acknowledged by another."""
        if codec.RELAY_APPLICATION_ID in self.local.applications:
            return True
        host = codec.avp_value(request, constants.AVP_DESTINATION_HOST, default=None)
        return host is None or codec.as_text(host).lower() == self.local.origin_host.lower()

    def _cer_received(self, request: Message, now: float) -> None:
        try:
            remote = RemotePeer.from_capabilities(request)
        except DiameterError as error:
            self._close(f"bad CER: {error}")
            return
        if not has_common_application(self.local, remote):
            result = codec.NO_COMMON_APPLICATION
        elif self._admit is not None:
            result = self._admit(remote)
        else:
            result = codec.SUCCESS
        answer = self.local.capabilities(CapabilitiesExchangeAnswer())
        answer.result_code = result
        answer.header.hop_by_hop_identifier = request.header.hop_by_hop_identifier
        answer.header.end_to_end_identifier = request.header.end_to_end_identifier
        self._send(answer)
        self.remote = remote
        if result == codec.SUCCESS:
            self._open(now)
        else:
            self._close(f"CER refused with Result-Code {result}")

    def _answer_received(self, answer: Message, now: float) -> None:
        code = answer.header.command_code
        if self.state == PeerState.WAIT_I_CEA:
            if code == CER_CODE:
                self._cea_received(answer, now)
            else:
                self._close(f"answer {code} instead of CEA")
        elif code == DWR_CODE:
            self._dwr_outstanding = False
        elif code == DPR_CODE and self.state == PeerState.CLOSING:
            self._close("disconnected")
        elif answer.header.hop_by_hop_identifier in self._pending:
            token = self._pending.pop(answer.header.hop_by_hop_identifier)
            self._events.append(AnswerReceived(token, answer))
        else:
            self.unknown_answers += 1

    def _cea_received(self, answer: Message, now: float) -> None:
        try:
            remote = RemotePeer.from_capabilities(answer)
            result = codec.result_code(answer)
        except DiameterError as error:
            self._close(f"bad CEA: {error}")
            return
        self.remote = remote
        if result != codec.SUCCESS:
            self._close(f"CEA Result-Code {result}")
        elif not has_common_application(self.local, remote):
            self._close("no common application in CEA")
        else:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = PeerState.OPEN
        self._alive(now)
        self._events.append(PeerOpened(self.remote))

    def _alive(self, now: float) -> None:
        """Any message from the peer: RFC 3539 OKAY again, watchdog restarted."""
        self._dwr_outstanding = False
        self.suspect = False
        self._deadline = now + self._watchdog.next_interval(self._rng)

    def _watchdog_expired(self, now: float) -> None:
        if self.suspect:
            self._close("watchdog: peer down (no answer to DWR)")
            return
        if self._dwr_outstanding:
            self.suspect = True
            tokens = tuple(self._pending.values())
            self._pending.clear()
            self._events.append(PeerSuspect(tokens))
        else:
            request = DeviceWatchdogRequest()
            request.origin_host = self.local.origin_host.encode()
            request.origin_realm = self.local.origin_realm.encode()
            request.origin_state_id = self.local.origin_state_id
            self._send(request)
            self._dwr_outstanding = True
        self._deadline = now + self._watchdog.next_interval(self._rng)

