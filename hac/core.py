"""The HAC side of one MN-HAC session (RFC 6618 §5.3, §5.8), sans-I/O.

Feed it what arrives (:meth:`HacSession.data_received` with TLS plaintext, or
:meth:`HacSession.frame_received` with whole containers) and the answers of the
work it asks for (:meth:`HacSession.provisioned`, :meth:`HacSession.provisioning_failed`,
:meth:`HacSession.aaa_answered`, :meth:`HacSession.aaa_failed`); every call returns
the actions (:mod:`hac.actions`) the shell must carry out, in order:

- :class:`Send` -- write these octets to the MN;
- :class:`AskAaa` -- relay one EAP-Response of the MN to the AAA backend (the shell
  calls :meth:`aaa_mip6.twisted.aaa.AaaBackend.authenticate` and feeds the answer back);
- :class:`ProvisionSA` -- create an SA for this MN (the shell does the store I/O and
  feeds the result back; the core never touches the store);
- :class:`Succeeded` / :class:`Failed` -- the session's outcome, for the log;
- :class:`Close` -- close the TLS connection (always the last action).

PSK flow (§5.8): MN Init -> HAC Init (``auth`` keyed with the PSK), MN Done (``auth``
verified) -> HAC Done with status 200 and the SA. Status codes: 400 for anything
malformed or out of order (container, Identifier, Content, message), 401 when the
MN's ``auth`` or rands do not verify, 501 when the MN offers no method the HAC runs
or no ciphersuite policy allows, 500 when provisioning fails, 503 with ``retry-after``
when the store is unavailable for now (a database failover).
After any error response the session closes.

EAP flow (§5.9, spec notes §4): by default (RFC 6618 Figure 5) the HAC Init carries an
EAP-Request/Identity and the MN's first Mid its EAP-Response/Identity; with
``eap_identity_from_mn_id`` the HAC builds that response from ``mn-id`` and asks the
AAA at once, so its Init carries the AAA's first method request. Every EAP response
of the MN goes to the AAA; an AAA challenge is answered without status-code (HacInit
or HacMid, ``auth`` keyed with ``1``): the continue rule. Once the MN sends Done, an
Accept makes the HAC verify the Done ``auth`` with the MSK (``1`` if the method
derived none) and answer Done with EAP-Success, 200 and the SA (keyed likewise);
a Reject gives 401 (Done with the EAP-Failure when the AAA sent one), AaaTimeout 504,
AaaUnavailable 503 with ``retry-after``, any other AAA failure 500. The MN's own
faults are 400 before any AAA round: a Mid or Done that does not decode, an EAP packet
that is not a Response, an EAP identity over 253 octets, and (AaaLimitError, from the
backend before it sends) an EAP packet no AAA request can carry. Every response
but a successful Done is keyed with ``1``.

An unknown identity is treated exactly like a wrong key: its HAC Init succeeds,
keyed with a dummy key derived from a server secret and the identity (so repeated
probes see a consistent key), and its Done gets the same 401 after the same HMAC
work.
"""

from __future__ import annotations

import enum
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from aaa_mip6 import container, eap
from aaa_mip6 import messages as m
from aaa_mip6.aaa import AaaAnswer, AaaTimeout, AaaUnavailable, Accept, Challenge
from aaa_mip6.actions import Action
from aaa_mip6.authenticator import EAP_KEY
from aaa_mip6.container import Deframer, Frame, LockStep
from aaa_mip6.errors import AaaLimitError, AuthenticatorError, InvalidInput
from aaa_mip6.suites import CipherSuite
from aaa_mip6.tvheaders import CIPHERSUITES, NAI_MAX, RAND_SIZE, AuthMethod

from .actions import AskAaa, Close, Failed, ProvisionSA, Send, Succeeded

BAD_REQUEST = 400
UNAUTHORIZED = 401
INTERNAL_ERROR = 500
NOT_IMPLEMENTED = 501
SERVICE_UNAVAILABLE = 503
GATEWAY_TIMEOUT = 504
OK = 200

_DUMMY_LABEL = b"aaa-mip6 HAC dummy PSK\x00"


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What every session of one HAC shares.

    ``psk_lookup`` returns an identity's PSK or None; ``server_secret`` keys the dummy
    PSK of unknown identities; ``channel_binding`` is the RFC 5929 tls-server-end-point
    of the HAC's own certificate; ``choose_suite`` picks the suite from the MN's list
    (None: no acceptable suite); ``draft01`` selects the unlabelled ``auth`` of draft -01.
    ``methods`` are the auth methods this HAC runs, preferred first (``eap`` only with
    an AAA backend); ``eap_identity_from_mn_id`` makes the HAC answer the EAP identity
    request itself from ``mn-id``; ``now`` dates ``retry-after``.
    """

    psk_lookup: Callable[[str], bytes | None] = field(repr=False)
    server_secret: bytes = field(repr=False)
    channel_binding: bytes
    choose_suite: Callable[[tuple[bytes, ...]], CipherSuite | None]
    max_content: int = container.MAX_CONTENT
    draft01: bool = False
    random: Callable[[int], bytes] = field(default=os.urandom, repr=False)
    methods: tuple[AuthMethod, ...] = (AuthMethod.PSK,)
    eap_identity_from_mn_id: bool = False
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc), repr=False)

    def __post_init__(self) -> None:
        if len(self.server_secret) < 16:
            raise ValueError("the server secret needs at least 16 octets")
        if not self.methods:
            raise ValueError("the HAC needs at least one auth method")


class Phase(enum.Enum):
    INIT = "waiting for MN Init"
    DONE = "waiting for MN Done"
    EAP = "waiting for MN Mid or Done"
    AAA = "waiting for the AAA"
    PROVISIONING = "provisioning"
    CLOSED = "closed"


class _Refusal(Exception):
    """Internal: end the session with this status (reason for the log)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HacSession:
    """One MN's session with the HAC, from the first request to the close."""

    def __init__(self, settings: SessionSettings):
        self._settings = settings
        self._deframer = Deframer(settings.max_content)
        self._lockstep = LockStep()
        self.phase = Phase.INIT
        self.mn_id: str | None = None
        self._key = EAP_KEY  # keys error responses until the MN's identity is known
        self._identity_known = False
        self._mn_rand = b""
        self._hac_rand = b""
        self._identifier = 0
        self._method = AuthMethod.PSK
        self._user_name = ""  # the AAA User-Name: the MN's EAP identity, else mn-id
        self._answering_init = False  # the AAA answer will go into the HAC Init
        self._mn_done: m.Received | None = None  # an EAP Done waiting for the AAA's answer
        self._suite: CipherSuite | None = None
        self._eap_success = b""

    def __repr__(self) -> str:
        return f"<HacSession {self.mn_id or '-'} {self.phase.name}>"

    @property
    def method(self) -> str | None:
        """The method the MN and the HAC agreed on (``psk``, ``eap``), for the bootstrap log
        event; None until the MN Init chose one."""
        return None if self.mn_id is None else self._method.value

    # --- events -------------------------------------------------------------

    def data_received(self, data: bytes) -> list[Action]:
        """TLS plaintext from the MN: deframe it and handle every whole container."""
        if self.phase is Phase.CLOSED:
            return []
        try:
            frames = self._deframer.feed(data)
        except InvalidInput as error:
            return self._refuse(BAD_REQUEST, f"framing: {error}", self._next_identifier())
        actions: list[Action] = []
        for frame in frames:
            actions += self.frame_received(frame)
            if self.phase is Phase.CLOSED:
                break
        return actions

    def frame_received(self, frame: Frame) -> list[Action]:
        """One whole container from the MN."""
        if self.phase is Phase.CLOSED:
            return []
        if self.phase in (Phase.PROVISIONING, Phase.AAA):
            return self._refuse(BAD_REQUEST, "a request arrived before the last was answered",
                                frame.identifier)
        try:
            self._identifier = self._lockstep.accept_request(frame.identifier)
        except InvalidInput as error:
            return self._refuse(BAD_REQUEST, f"identifier: {error}", frame.identifier)
        try:
            if self.phase is Phase.INIT:
                return self._on_init(frame.content)
            if self.phase is Phase.EAP:
                return self._on_eap(frame.content)
            return self._on_done(frame.content)
        except _Refusal as refusal:
            return self._refuse(refusal.status, refusal.reason, self._identifier)

    def provisioned(self, provision: m.Provision) -> list[Action]:
        """The SA the shell stored for :class:`ProvisionSA`: answer Done with status 200."""
        if self.phase is not Phase.PROVISIONING:
            return []
        if self._method is AuthMethod.EAP:
            done = m.HacDone(OK, eap_payload=self._eap_success, provision=provision)
        else:
            done = m.HacDone(OK, self._mn_rand, self._hac_rand, provision=provision)
        suite = CIPHERSUITES[provision.suite]
        return self._finish(done, Succeeded(provision.spi, suite))

    def provisioning_failed(self, status: int, reason: str, *,
                            retry_after: float | None = None) -> list[Action]:
        """The shell could not provision the SA (e.g. the store failed): answer ``status``
        in a failed Done; with ``retry_after`` (seconds: the store is unavailable for now,
        503) in an error response carrying ``retry-after``, which a Done cannot."""
        if self.phase is not Phase.PROVISIONING:
            return []
        self._key = EAP_KEY if self._method is AuthMethod.EAP else self._key
        if retry_after is not None:
            later = self._settings.now() + timedelta(seconds=max(1.0, retry_after))
            return self._refuse(status, reason, self._identifier,
                                retry_after=later.astimezone(timezone.utc).replace(microsecond=0))
        return self._finish(self._failed_done(status), Failed(status, reason))

    def aaa_answered(self, answer: AaaAnswer) -> list[Action]:
        """The AAA's answer to :class:`AskAaa`: go on (challenge), provision (accept) or 401."""
        if self.phase is not Phase.AAA:
            return []
        if isinstance(answer, Challenge):
            return self._relay_challenge(answer.eap_payload)
        if isinstance(answer, Accept):
            return self._accepted(answer)
        if self._answering_init or answer.eap_payload is None:
            return self._refuse(UNAUTHORIZED, answer.reason, self._identifier)
        return self._finish(m.HacDone(UNAUTHORIZED, eap_payload=answer.eap_payload),
                            Failed(UNAUTHORIZED, answer.reason))

    def aaa_failed(self, error: Exception) -> list[Action]:
        """:class:`AskAaa` failed: 400 for AaaLimitError (the MN's EAP packet does not fit
        an AAA request, found before anything was sent), 504 for AaaTimeout, 503 +
        retry-after for AaaUnavailable, 500 for anything else."""
        if self.phase is not Phase.AAA:
            return []
        if isinstance(error, AaaLimitError):
            return self._refuse(BAD_REQUEST, f"EAP packet over an AAA limit: {error}",
                                self._identifier)
        retry_after = None
        if isinstance(error, AaaUnavailable):
            status = SERVICE_UNAVAILABLE
            later = self._settings.now() + timedelta(seconds=max(1, error.retry_after))
            retry_after = later.astimezone(timezone.utc).replace(microsecond=0)
        elif isinstance(error, AaaTimeout):
            status = GATEWAY_TIMEOUT
        else:
            status = INTERNAL_ERROR
        return self._refuse(status, f"AAA: {type(error).__name__}: {error}", self._identifier,
                            retry_after=retry_after)

    # --- steps --------------------------------------------------------------

    def _on_init(self, content: bytes) -> list[Action]:
        init: m.MnInit = self._decode_received(content, m.MnInit).message
        method = next((method for method in self._settings.methods
                       if method in init.auth_methods), None)
        if method is None:
            runs = ",".join(self._settings.methods)
            raise _Refusal(NOT_IMPLEMENTED, f"the MN offers no method this HAC runs ({runs})")
        self.mn_id = init.mn_id
        self._method = method
        if method is AuthMethod.EAP:
            return self._start_eap()
        self._key, self._identity_known = self._key_for(init.mn_id)
        self._mn_rand = init.mn_rand
        self._hac_rand = self._settings.random(RAND_SIZE)
        response = m.HacInit(AuthMethod.PSK, self._mn_rand, self._hac_rand)
        self.phase = Phase.DONE
        return [Send(self._frame(response))]

    def _on_done(self, content: bytes) -> list[Action]:
        received = self._decode_received(content, m.MnDone)
        done: m.MnDone = received.message
        if done.method is not AuthMethod.PSK:
            raise _Refusal(BAD_REQUEST, "an EAP Done in a PSK session")
        try:
            self._verify(received, self._key)
            auth_ok = True
        except AuthenticatorError:
            auth_ok = False
        rands_ok = (hmac.compare_digest(done.mn_rand, self._mn_rand)
                    & hmac.compare_digest(done.hac_rand, self._hac_rand))
        if not (auth_ok and rands_ok and self._identity_known):
            reason = ("unknown identity" if not self._identity_known
                      else "auth does not verify" if not auth_ok else "rands do not match")
            return self._finish(m.HacDone(UNAUTHORIZED, self._mn_rand, self._hac_rand),
                                Failed(UNAUTHORIZED, reason))
        suite = self._settings.choose_suite(done.suites)
        if suite is None:
            return self._finish(m.HacDone(NOT_IMPLEMENTED, self._mn_rand, self._hac_rand),
                                Failed(NOT_IMPLEMENTED, "no ciphersuite of the MN is allowed"))
        self.phase = Phase.PROVISIONING
        return [ProvisionSA(self.mn_id, suite, done.scope)]

    # --- EAP steps ------------------------------------------------------------

    def _start_eap(self) -> list[Action]:
        identifier = self._settings.random(1)[0]
        if self._settings.eap_identity_from_mn_id:
            self._user_name = self.mn_id
            self._answering_init = True
            identity = eap.EapPacket(eap.Code.RESPONSE, identifier, eap.Type.IDENTITY,
                                     self.mn_id.encode("utf-8"))
            return self._ask(identity.encode())
        request = eap.EapPacket(eap.Code.REQUEST, identifier, eap.Type.IDENTITY).encode()
        self.phase = Phase.EAP
        return [Send(self._frame(m.HacInit(AuthMethod.EAP, eap_payload=request)))]

    def _on_eap(self, content: bytes) -> list[Action]:
        received = self._decode_received(content, (m.MnMid, m.MnDone))
        message = received.message
        if isinstance(message, m.MnDone) and message.method is not AuthMethod.EAP:
            raise _Refusal(BAD_REQUEST, "a PSK Done in an EAP session")
        packet = eap.decode(message.eap_payload)  # one whole packet: the decoder checked
        if packet.code is not eap.Code.RESPONSE:  # RFC 3748 §4.1: a peer sends only these
            raise _Refusal(BAD_REQUEST, f"the MN sent an EAP {packet.code.name}, not a Response")
        if isinstance(message, m.MnDone):
            self._suite = self._settings.choose_suite(message.suites)
            if self._suite is None:
                raise _Refusal(NOT_IMPLEMENTED, "no ciphersuite of the MN is allowed")
            self._mn_done = received  # its auth key (the MSK) comes with the AAA's answer
        else:
            try:
                self._verify(received, EAP_KEY)
            except AuthenticatorError:
                raise _Refusal(UNAUTHORIZED, "Mid auth does not verify") from None
            self._mn_done = None
        if not self._user_name:
            self._user_name = _eap_identity(packet) or self.mn_id
        return self._ask(message.eap_payload)

    def _ask(self, eap_payload: bytes) -> list[Action]:
        self.phase = Phase.AAA
        return [AskAaa(self._user_name, eap_payload)]

    def _relay_challenge(self, eap_payload: bytes) -> list[Action]:
        """The continue rule: an answer without status-code, keyed with ``1``."""
        if self._answering_init:
            response: m.Response = m.HacInit(AuthMethod.EAP, eap_payload=eap_payload)
        else:
            response = m.HacMid(eap_payload)
        self._answering_init = False
        self._mn_done = None
        self.phase = Phase.EAP
        return [Send(self._frame(response))]

    def _accepted(self, accept: Accept) -> list[Action]:
        done, self._mn_done = self._mn_done, None
        if done is None:
            return self._refuse(BAD_REQUEST, "the AAA accepted before the MN sent Done",
                                self._identifier)
        key = accept.msk or EAP_KEY
        try:
            self._verify(done, key)
        except AuthenticatorError:
            failure = _eap_failure(accept.eap_payload)
            return self._finish(m.HacDone(UNAUTHORIZED, eap_payload=failure),
                                Failed(UNAUTHORIZED, "Done auth does not verify with the "
                                                     + ("MSK" if accept.msk else "key 1")))
        self._key = key
        self._eap_success = accept.eap_payload
        self.phase = Phase.PROVISIONING
        scope = done.message.scope
        return [ProvisionSA(self.mn_id, self._suite, scope, dict(accept.attributes))]

    def _failed_done(self, status: int) -> m.HacDone:
        if self._method is AuthMethod.EAP:
            return m.HacDone(status, eap_payload=_eap_failure(self._eap_success))
        return m.HacDone(status, self._mn_rand, self._hac_rand)

    # --- helpers ------------------------------------------------------------

    def _verify(self, received: m.Received, key: bytes) -> None:
        received.verify(key, self._settings.channel_binding, draft01=self._settings.draft01)

    def _key_for(self, mn_id: str) -> tuple[bytes, bool]:
        """The identity's PSK, or its dummy key; both are computed so the work is the same."""
        dummy = hmac.digest(self._settings.server_secret,
                            _DUMMY_LABEL + mn_id.encode("utf-8"), "sha256")
        psk = self._settings.psk_lookup(mn_id)
        return (dummy, False) if psk is None else (psk, True)

    @staticmethod
    def _decode_received(content: bytes, expected: type | tuple[type, ...]) -> m.Received:
        try:
            return m.decode_request(content, expected)
        except InvalidInput as error:
            names = " or ".join(kind.__name__ for kind in (
                expected if isinstance(expected, tuple) else (expected,)))
            raise _Refusal(BAD_REQUEST, f"malformed {names}: {error}") from None

    def _frame(self, response: m.Response) -> bytes:
        content = m.encode(response, self._key, self._settings.channel_binding,
                           draft01=self._settings.draft01)
        self._lockstep.answered()
        return container.encode(self._identifier, content)

    def _finish(self, response: m.Response, outcome: Succeeded | Failed) -> list[Action]:
        data = self._frame(response)
        self._close()
        return [Send(data), outcome, Close()]

    def _close(self) -> None:
        """The session is over: drop what it held (an MSK, a pending Done)."""
        self.phase = Phase.CLOSED
        self._mn_done = None
        self._eap_success = b""
        self._key = EAP_KEY

    def _next_identifier(self) -> int:
        return min(self._lockstep.exchanges + 1, container.MAX_IDENTIFIER)

    def _refuse(self, status: int, reason: str, identifier: int, *,
                retry_after: datetime | None = None) -> list[Action]:
        """An error response copying ``identifier``, then the close."""
        content = m.encode(m.HacError(status, retry_after), self._key,
                           self._settings.channel_binding, draft01=self._settings.draft01)
        self._close()
        return [Send(container.encode(identifier, content)), Failed(status, reason), Close()]


def _eap_identity(packet: eap.EapPacket) -> str | None:
    """The identity in an EAP-Response/Identity (the AAA User-Name), else None.

    It is refused over :data:`NAI_MAX` octets, the bound ``mn-id`` has too: a RADIUS
    User-Name holds no more (RFC 2865 §5.1), and both AAA protocols route on it as an NAI.
    """
    if packet.type != eap.Type.IDENTITY:
        return None
    if len(packet.data) > NAI_MAX:
        raise _Refusal(BAD_REQUEST, f"the EAP identity has {len(packet.data)} octets, "
                                    f"more than the {NAI_MAX} of a User-Name")
    try:
        return packet.data.decode("utf-8") or None
    except UnicodeDecodeError:
        raise _Refusal(BAD_REQUEST, "the EAP identity is not UTF-8") from None


def _eap_failure(answered: bytes) -> bytes:
    """An EAP-Failure with the identifier of the EAP packet it replaces (RFC 3748 §4.2)."""
    identifier = eap.decode(answered).identifier if answered else 0
    return eap.EapPacket(eap.Code.FAILURE, identifier).encode()
