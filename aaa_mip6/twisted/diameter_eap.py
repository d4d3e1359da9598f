"""The HAC's AAA backend over Diameter EAP (RFC 4072), on a Twisted Diameter node.

The DER/DEA messages are built and read by the sans-I/O :mod:`aaa_mip6.diameter.eap`;
this module sends them through a :class:`~aaa_mip6.twisted.diameter_node.DiameterNode`
and keeps each conversation's Session-Id, server and State between rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diameter.message import Message
from twisted.internet import defer
from twisted.python.failure import Failure

from ..aaa import AaaAnswer, AaaSession, AaaTimeout, AaaUnavailable, Challenge
from ..diameter import codec
from ..diameter.codec import DiameterError
from ..diameter.eap import TOO_BUSY, EapRequest, decode_dea, encode_der
from ..diameter.router import RequestTimedOut

DEFAULT_RETRY_AFTER = 5  # seconds a HAC tells an MN to wait when no Diameter peer is open


@dataclass(frozen=True, slots=True)
class _Continuation:
    """What a Diameter EAP conversation carries between rounds (``AaaSession.state``)."""

    session_id: str
    server: str  # Origin-Host of the last DEA: the next DER's Destination-Host (RFC 4072 §2.1)
    state: bytes | None = field(repr=False)


class DiameterEapBackend:
    """The HAC's AAA client over Diameter EAP: an :class:`aaa_mip6.twisted.aaa.AaaBackend`.

    ``node`` must advertise application 5 and reach ``destination_realm`` (directly or
    through a relay); the backend owns it and stops it in :meth:`stop`. With no Open peer
    that could take the DER the call fails at once with AaaUnavailable (``retry_after``
    seconds); with no answer in the node's request timeout, with AaaTimeout. A DEA of
    3002 DIAMETER_UNABLE_TO_DELIVER (the server did not answer the agent) also gives
    AaaTimeout, 3004 DIAMETER_TOO_BUSY gives AaaUnavailable; any other unexpected answer
    fails the call with DiameterError.
    """

    def __init__(self, node, destination_realm: str, *, nas_identifier: str | None = None,
                 retry_after: int = DEFAULT_RETRY_AFTER):
        if retry_after < 1:
            raise ValueError("retry_after must be at least one second")
        self.node = node
        self._destination_realm = destination_realm
        self._nas_identifier = nas_identifier
        self._retry_after = retry_after
        self._session_ids = codec.SessionIds(node.local.origin_host, node.now())
        self._outstanding: set[defer.Deferred] = set()
        self._stopped = False

    def __repr__(self) -> str:
        return f"DiameterEapBackend({self.node.local.origin_host} -> {self._destination_realm})"

    def authenticate(self, session: AaaSession, eap_payload: bytes) -> defer.Deferred[AaaAnswer]:
        """Send one EAP-Response in a DER; fire with Challenge/Accept/Reject or fail."""
        if self._stopped:
            return defer.fail(self._unavailable("the Diameter EAP backend is stopped"))
        continuation = session.state if isinstance(session.state, _Continuation) else None
        session_id = (continuation.session_id if continuation
                      else self._session_ids.new(f"mip6-{session.session_id}"))
        local = self.node.local
        request = encode_der(
            local.origin_host, local.origin_realm, self._destination_realm,
            EapRequest(session_id, local.origin_host, session.user_name, eap_payload,
                       continuation.state if continuation else None,
                       session.calling_station_id),
            destination_host=continuation.server if continuation else None,
            nas_identifier=self._nas_identifier)
        if not self.node.router.candidates(request):
            return defer.fail(self._unavailable(
                f"no open Diameter peer for realm {self._destination_realm}"))
        result = defer.Deferred()
        self._outstanding.add(result)
        sent = self.node.send_request(request)
        sent.addCallbacks(self._answered, self._failed, callbackArgs=(session, session_id))
        sent.addBoth(self._settle, result)
        return result

    def stop(self) -> defer.Deferred[None]:
        """Fail outstanding calls with AaaUnavailable, then stop the Diameter node."""
        self._stopped = True
        for result in list(self._outstanding):
            self._settle(Failure(self._unavailable("the Diameter EAP backend stopped")), result)
        return self.node.stop().addCallback(lambda _: None)

    def _answered(self, message: Message, session: AaaSession, session_id: str) -> AaaAnswer:
        parsed = decode_dea(message)
        if parsed.answer is None:
            detail = f"Diameter EAP server answered {parsed.result_code}" + (
                f" ({parsed.error_message})" if parsed.error_message else "")
            if parsed.result_code == codec.UNABLE_TO_DELIVER:
                raise AaaTimeout(detail)
            if parsed.result_code == TOO_BUSY:
                raise self._unavailable(detail)
            raise DiameterError(detail, reason="unexpected-result")
        session.state = (_Continuation(session_id, parsed.origin_host, parsed.state)
                         if isinstance(parsed.answer, Challenge) else None)
        return parsed.answer

    @staticmethod
    def _failed(failure: Failure):
        if failure.check(RequestTimedOut):
            raise AaaTimeout(failure.getErrorMessage())
        return failure

    def _settle(self, outcome, result: defer.Deferred) -> None:
        """Fire ``result`` once (stop() may have fired it already)."""
        if result not in self._outstanding:
            return
        self._outstanding.discard(result)
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)

    def _unavailable(self, message: str) -> AaaUnavailable:
        return AaaUnavailable(message, retry_after=self._retry_after)
