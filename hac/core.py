"""The HAC side of one MN-HAC session (RFC 6618 §5.3, §5.8), sans-I/O.

Feed it what arrives (:meth:`HacSession.data_received` with TLS plaintext, or
:meth:`HacSession.frame_received` with whole containers) and the answers of the
work it asks for (:meth:`HacSession.provisioned`, :meth:`HacSession.provisioning_failed`);
every call returns the actions the shell must carry out, in order:

- :class:`Send` -- write these octets to the MN;
- :class:`ProvisionSA` -- create an SA for this MN (the shell does the store I/O and
  feeds the result back; the core never touches the store);
- :class:`Succeeded` / :class:`Failed` -- the session's outcome, for the log;
- :class:`Close` -- close the TLS connection (always the last action).

PSK flow (§5.8): MN Init -> HAC Init (``auth`` keyed with the PSK), MN Done (``auth``
verified) -> HAC Done with status 200 and the SA. Status codes: 400 for anything
malformed or out of order (container, Identifier, Content, message), 401 when the
MN's ``auth`` or rands do not verify, 501 when the MN offers no method the HAC runs
(only ``psk`` now) or no ciphersuite policy allows, 500 when provisioning fails.
After any error response the session closes.

An unknown identity is treated exactly like a wrong key: its HAC Init succeeds,
keyed with a dummy key derived from a server secret and the identity (so repeated
probes see a consistent key), and its Done gets the same 401 after the same HMAC
work. The EAP flow (§5.9) will add a branch: an "ask the AAA" action and an
"AAA answered" event next to the provisioning pair.
"""

from __future__ import annotations

import enum
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from aaa_mip6 import container
from aaa_mip6 import messages as m
from aaa_mip6.authenticator import EAP_KEY
from aaa_mip6.container import Deframer, Frame, LockStep
from aaa_mip6.errors import AuthenticatorError, InvalidInput
from aaa_mip6.suites import CipherSuite
from aaa_mip6.tvheaders import CIPHERSUITES, RAND_SIZE, AuthMethod

BAD_REQUEST = 400
UNAUTHORIZED = 401
INTERNAL_ERROR = 500
NOT_IMPLEMENTED = 501
OK = 200

_DUMMY_LABEL = b"aaa-mip6 HAC dummy PSK\x00"


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data`` (one framed response) to the MN."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ProvisionSA:
    """Create an SA for an authenticated MN; answer with provisioned() or provisioning_failed()."""

    mn_id: str
    suite: CipherSuite
    requested_scope: int


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The MN received its SA."""

    spi: int
    suite: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The session ended with ``status``; ``reason`` is for the HAC's log only, never sent."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection; nothing more will be sent."""


Action = Send | ProvisionSA | Succeeded | Failed | Close


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What every session of one HAC shares.

    ``psk_lookup`` returns an identity's PSK or None; ``server_secret`` keys the dummy
    PSK of unknown identities; ``channel_binding`` is the RFC 5929 tls-server-end-point
    of the HAC's own certificate; ``choose_suite`` picks the suite from the MN's list
    (None: no acceptable suite); ``draft01`` selects the unlabelled ``auth`` of draft -01.
    """

    psk_lookup: Callable[[str], bytes | None] = field(repr=False)
    server_secret: bytes = field(repr=False)
    channel_binding: bytes
    choose_suite: Callable[[tuple[bytes, ...]], CipherSuite | None]
    max_content: int = container.MAX_CONTENT
    draft01: bool = False
    random: Callable[[int], bytes] = field(default=os.urandom, repr=False)

    def __post_init__(self) -> None:
        if len(self.server_secret) < 16:
            raise ValueError("the server secret needs at least 16 octets")


class Phase(enum.Enum):
    INIT = "waiting for MN Init"
    DONE = "waiting for MN Done"
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

    def __repr__(self) -> str:
        return f"<HacSession {self.mn_id or '-'} {self.phase.name}>"

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
        if self.phase is Phase.PROVISIONING:
            return self._refuse(BAD_REQUEST, "a request arrived before the last was answered",
                                frame.identifier)
        try:
            self._identifier = self._lockstep.accept_request(frame.identifier)
        except InvalidInput as error:
            return self._refuse(BAD_REQUEST, f"identifier: {error}", frame.identifier)
        try:
            if self.phase is Phase.INIT:
                return self._on_init(frame.content)
            return self._on_done(frame.content)
        except _Refusal as refusal:
            return self._refuse(refusal.status, refusal.reason, self._identifier)

    def provisioned(self, provision: m.Provision) -> list[Action]:
        """The SA the shell stored for :class:`ProvisionSA`: answer Done with status 200."""
        if self.phase is not Phase.PROVISIONING:
            return []
        done = m.HacDone(OK, self._mn_rand, self._hac_rand, provision=provision)
        suite = CIPHERSUITES[provision.suite]
        return self._finish(done, Succeeded(provision.spi, suite))

    def provisioning_failed(self, status: int, reason: str) -> list[Action]:
        """The shell could not provision the SA (e.g. the store failed): answer ``status``."""
        if self.phase is not Phase.PROVISIONING:
            return []
        return self._finish(m.HacDone(status, self._mn_rand, self._hac_rand),
                            Failed(status, reason))

    # --- steps --------------------------------------------------------------

    def _on_init(self, content: bytes) -> list[Action]:
        init: m.MnInit = self._decode_received(content, m.MnInit).message
        if AuthMethod.PSK not in init.auth_methods:
            raise _Refusal(NOT_IMPLEMENTED, "the MN offers no method this HAC runs (psk)")
        self.mn_id = init.mn_id
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
            received.verify(self._key, self._settings.channel_binding,
                            draft01=self._settings.draft01)
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

    # --- helpers ------------------------------------------------------------

    def _key_for(self, mn_id: str) -> tuple[bytes, bool]:
        """The identity's PSK, or its dummy key; both are computed so the work is the same."""
        dummy = hmac.digest(self._settings.server_secret,
                            _DUMMY_LABEL + mn_id.encode("utf-8"), "sha256")
        psk = self._settings.psk_lookup(mn_id)
        return (dummy, False) if psk is None else (psk, True)

    @staticmethod
    def _decode_received(content: bytes, expected: type) -> m.Received:
        try:
            return m.decode_request(content, expected)
        except InvalidInput as error:
            raise _Refusal(BAD_REQUEST, f"malformed {expected.__name__}: {error}") from None

    def _frame(self, response: m.Response) -> bytes:
        content = m.encode(response, self._key, self._settings.channel_binding,
                           draft01=self._settings.draft01)
        self._lockstep.answered()
        return container.encode(self._identifier, content)

    def _finish(self, response: m.Response, outcome: Succeeded | Failed) -> list[Action]:
        data = self._frame(response)
        self.phase = Phase.CLOSED
        return [Send(data), outcome, Close()]

    def _next_identifier(self) -> int:
        return min(self._lockstep.exchanges + 1, container.MAX_IDENTIFIER)

    def _refuse(self, status: int, reason: str, identifier: int) -> list[Action]:
        """An error response copying ``identifier``, then the close."""
        self.phase = Phase.CLOSED
        content = m.encode(m.HacError(status), self._key, self._settings.channel_binding,
                           draft01=self._settings.draft01)
        return [Send(container.encode(identifier, content)), Failed(status, reason), Close()]
