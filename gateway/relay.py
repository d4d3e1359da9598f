"""``mip6-aaa-gw``: a Diameter EAP server (RFC 4072) that relays to RADIUS (RFC 3579).

The reverse of freeDiameter's app_radgw: each Diameter-EAP-Request becomes one
Access-Request through an upstream :class:`~aaa_mip6.twisted.aaa.AaaBackend` (the
:class:`~aaa_mip6.twisted.radius_client.RadiusClient`), and its answer becomes the
Diameter-EAP-Answer: Access-Challenge -> 1001 DIAMETER_MULTI_ROUND_AUTH,
Access-Accept -> 2001 with the MS-MPPE keys as EAP-Master-Session-Key and the Framed
and MIP6 attributes as Diameter AVPs (:func:`aaa_mip6.diameter.eap.bootstrap_avps`),
Access-Reject -> 4001. No RADIUS answer -> 3002 DIAMETER_UNABLE_TO_DELIVER, every
RADIUS server down -> 3004 DIAMETER_TOO_BUSY.

State both ways: the RADIUS State (and the server holding it) stays in the gateway,
in :class:`GatewaySessions` under the Diameter Session-Id. Each 1001 answer carries a
fresh random Diameter State; the next DER must echo it, and its Access-Request then
echoes the RADIUS State. A round whose answer was lost is answered again when the DER
comes back with the same End-to-End Identifier (RFC 6733 §5.5.4 failover) instead of
being sent to RADIUS twice.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import secrets
from dataclasses import dataclass, field

from diameter.message import Message
from twisted.internet import defer
from twisted.python.failure import Failure

from aaa_mip6.aaa import AaaAnswer, AaaSession, AaaTimeout, AaaUnavailable, Challenge
from aaa_mip6.addresses import parse_host_port
from aaa_mip6.diameter import codec
from aaa_mip6.diameter import eap as diameter_eap
from aaa_mip6.diameter.codec import DiameterError
from aaa_mip6.twisted.aaa import AaaBackend

DEFAULT_MULTI_ROUND_TIMEOUT = 60  # seconds a conversation may idle between rounds
DEFAULT_MAX_CONVERSATIONS = 100_000  # conversations held at once; more get 3004 TOO_BUSY
SWEEP_INTERVAL = 1.0  # seconds between two scans for expired conversations
STATE_LENGTH = 16
_UNKNOWN_ADDRESS = ipaddress.IPv6Address("::")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A DER the gateway answers itself, without RADIUS: Result-Code and a reason."""

    result_code: int
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a round ended: the upstream answer, or a Result-Code for an AAA error."""

    answer: AaaAnswer | None = None
    state: bytes | None = field(default=None, repr=False)
    refusal: Refusal | None = None


@dataclass(eq=False, slots=True)
class _Conversation:
    aaa: AaaSession
    expires: float
    state: bytes | None = field(default=None, repr=False)  # the Diameter State we issued
    end_to_end: int | None = None  # of the round in flight or last finished
    outcome: Outcome | None = None  # None while that round is in flight
    waiters: list[defer.Deferred] = field(default_factory=list)


def parse_calling_station_id(text: str | None) -> tuple[ipaddress.IPv4Address |
                                                          ipaddress.IPv6Address, int]:
    """The MN's address and port from a HAC's ``192.0.2.1:4433`` / ``[2001:db8::1]:4433``.

    Anything else (absent, a MAC address, ...) gives ``::`` port 0.
    """
    try:
        host, port = parse_host_port(text or "")
        if port is not None:
            return ipaddress.ip_address(host), port
    except ValueError:
        pass
    return _UNKNOWN_ADDRESS, 0


class GatewaySessions:
    """The gateway's conversations by Session-Id, sans-I/O (time is passed in).

    Bounded: a conversation idle longer than the multi-round timeout is forgotten (one
    whose round is in flight waits for the upstream, which always ends it), and at most
    ``max_conversations`` are held; a new one beyond that is refused with 3004.
    """

    def __init__(self, multi_round_timeout: float = DEFAULT_MULTI_ROUND_TIMEOUT,
                 max_conversations: int = DEFAULT_MAX_CONVERSATIONS):
        if not multi_round_timeout > 0:
            raise ValueError("the multi-round timeout must be a positive number of seconds")
        if max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        self.multi_round_timeout = multi_round_timeout
        self.max_conversations = max_conversations
        self._conversations: dict[str, _Conversation] = {}
        self._next_sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._conversations)

    def begin(self, request: diameter_eap.EapRequest, end_to_end: int,
              now: float) -> AaaSession | Refusal | _Conversation:
        """Start a round of ``request``.

        Returns the AaaSession to relay it with; a :class:`Refusal`; or, for a
        retransmission of the round in flight or last finished, its conversation
        (wait with :meth:`wait`).
        """
        if now >= self._next_sweep:
            self.expire(now)
        conversation = self._conversations.get(request.session_id)
        if conversation is not None and conversation.expires <= now and \
                conversation.outcome is not None:
            del self._conversations[request.session_id]  # expired since the last sweep
            conversation = None
        if conversation is not None and conversation.end_to_end == end_to_end:
            return conversation
        if request.state is None:
            if conversation is not None and conversation.outcome is None:
                return Refusal(codec.UNABLE_TO_COMPLY, "a round of this session is in progress")
            if conversation is None and len(self._conversations) >= self.max_conversations:
                self.expire(now)
                if len(self._conversations) >= self.max_conversations:
                    return Refusal(diameter_eap.TOO_BUSY,
                                   "too many EAP conversations in progress")
            address, port = parse_calling_station_id(request.calling_station_id)
            aaa = AaaSession(request.user_name, address, port, session_id=request.session_id)
            conversation = _Conversation(aaa, now)
            self._conversations[request.session_id] = conversation
        elif conversation is None:
            return Refusal(diameter_eap.UNKNOWN_SESSION_ID, "no conversation has this Session-Id")
        elif conversation.outcome is None or not secrets.compare_digest(
                request.state, conversation.state or b""):
            return Refusal(codec.INVALID_AVP_VALUE, "State is not the one of the last answer")
        conversation.end_to_end, conversation.outcome = end_to_end, None
        conversation.expires = now + self.multi_round_timeout
        return conversation.aaa

    def finish(self, session_id: str, outcome: Outcome, now: float) -> list[defer.Deferred]:
        """Record how the round in flight ended; return the retransmissions waiting for it."""
        conversation = self._conversations.get(session_id)
        if conversation is None:
            return []
        if isinstance(outcome.answer, Challenge):
            conversation.state = outcome.state
        else:
            conversation.state = None  # the conversation is over; kept only for replays
        conversation.outcome = outcome
        conversation.expires = now + self.multi_round_timeout
        waiters, conversation.waiters = conversation.waiters, []
        return waiters

    @staticmethod
    def wait(conversation: _Conversation) -> defer.Deferred[Outcome]:
        """The outcome of ``conversation``'s round, now if it has finished."""
        if conversation.outcome is not None:
            return defer.succeed(conversation.outcome)
        waiter = defer.Deferred()
        conversation.waiters.append(waiter)
        return waiter

    def expire(self, now: float) -> None:
        """Forget conversations idle longer than the multi-round timeout."""
        self._next_sweep = now + SWEEP_INTERVAL
        for session_id in [key for key, conversation in self._conversations.items()
                           if conversation.expires <= now and conversation.outcome is not None]:
            del self._conversations[session_id]


class EapGateway:
    """Answers DERs arriving at ``node`` by relaying them through ``upstream``.

    ``node`` must advertise application 5. The gateway owns ``upstream`` and ``node``
    and stops both in :meth:`stop`.
    """

    def __init__(self, node, upstream: AaaBackend, *,
                 multi_round_timeout: float = DEFAULT_MULTI_ROUND_TIMEOUT,
                 max_conversations: int = DEFAULT_MAX_CONVERSATIONS):
        self.node = node
        self.upstream = upstream
        self.sessions = GatewaySessions(multi_round_timeout, max_conversations)
        # requests (DERs), malformed, retransmissions; answers: challenge, accept, reject,
        # refused (3004, 5002, ...: answered without RADIUS)
        self.counters: collections.Counter[str] = collections.Counter()
        node.register_handler(diameter_eap.EAP_APPLICATION_ID,
                              diameter_eap.DIAMETER_EAP_COMMAND, self.handle)

    def handle(self, request: Message) -> Message | defer.Deferred[Message]:
        """The DEA for one DER (the node's request handler)."""
        try:
            der = diameter_eap.decode_der(request)
        except DiameterError as error:
            self.counters["malformed"] += 1
            return self.node.answer(request, codec.error_result(error),
                                    error_message=str(error))
        self.counters["requests"] += 1
        now = self.node.now()
        begun = self.sessions.begin(der, request.header.end_to_end_identifier, now)
        if isinstance(begun, Refusal):
            return self._refusal_answer(request, begun)
        if not isinstance(begun, AaaSession):
            self.counters["retransmissions"] += 1
            return self.sessions.wait(begun).addCallback(self._answer, request)
        relayed = defer.maybeDeferred(self.upstream.authenticate, begun, der.eap_payload)
        relayed.addCallbacks(self._relayed, self._upstream_failed)
        return relayed.addCallback(self._finish, der.session_id).addCallback(self._answer,
                                                                              request)

    def stop(self) -> defer.Deferred:
        """Stop relaying: the upstream client first, then the Diameter node (DPR to peers)."""
        stopping = defer.maybeDeferred(self.upstream.stop)
        return stopping.addBoth(lambda _: self.node.stop())

    @staticmethod
    def _relayed(answer: AaaAnswer) -> Outcome:
        state = secrets.token_bytes(STATE_LENGTH) if isinstance(answer, Challenge) else None
        return Outcome(answer=answer, state=state)

    @staticmethod
    def _upstream_failed(failure: Failure) -> Outcome:
        if failure.check(AaaUnavailable):
            refusal = Refusal(diameter_eap.TOO_BUSY, "every RADIUS server is down")
        elif failure.check(AaaTimeout):
            refusal = Refusal(codec.UNABLE_TO_DELIVER, "the RADIUS server did not answer")
        else:
            log.error("RADIUS relay failed: %s", failure.getErrorMessage())
            refusal = Refusal(codec.UNABLE_TO_COMPLY, "the RADIUS relay failed")
        return Outcome(refusal=refusal)

    def _finish(self, outcome: Outcome, session_id: str) -> Outcome:
        for waiter in self.sessions.finish(session_id, outcome, self.node.now()):
            waiter.callback(outcome)
        return outcome

    def _answer(self, outcome: Outcome, request: Message) -> Message:
        if outcome.refusal is not None:
            return self._refusal_answer(request, outcome.refusal)
        self.counters[type(outcome.answer).__name__.lower()] += 1
        result, avps = diameter_eap.dea_avps(
            outcome.answer, state=outcome.state,
            multi_round_time_out=round(self.sessions.multi_round_timeout))
        return self.node.answer(request, result, avps)

    def _refusal_answer(self, request: Message, refusal: Refusal) -> Message:
        self.counters["refused"] += 1
        return self.node.answer(request, refusal.result_code, diameter_eap.application_avps(),
                                error_message=refusal.message)
