"""The MN's side of the MN-HAC bootstrap (RFC 6618 §5.3, §5.8), sans-I/O.

A machine turns the octets read from the TLS connection into the octets to
write, and ends with a :class:`Bootstrapped` result (the SA and its bootstrap
data) or a :class:`BootstrapFailed`. It never touches a socket: ``mn.client``
moves its bytes over Twisted TLS, tests feed it by hand.

:class:`BootstrapMachine` holds what every flow shares: container framing and
the lock-step identifiers, response decoding, the HAC's status codes, the
channel binding of the certificate the MN received, and the checks on the
final HacDone (the suite is one the MN listed, the SA is still valid; key
lengths are checked by :class:`aaa_mip6.messages.Provision`).
:class:`PskBootstrap` is the PSK flow of §5.8; :class:`EapBootstrap` the EAP flow of
§5.9, driving an ``mn.eap.peer.EapPeer``. Both fill the same two hooks,
:meth:`BootstrapMachine._first_request` and :meth:`BootstrapMachine._respond`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import NamedTuple

from aaa_mip6 import authenticator, container
from aaa_mip6 import messages as m
from aaa_mip6 import tvheaders as tv
from aaa_mip6.errors import AuthenticatorError, ConfigError, InvalidInput, MessageError
from aaa_mip6.sa import SCOPE_ALL, SCOPE_SIGNALING, Bootstrap, SecurityAssociation
from aaa_mip6.suites import SUITES

DEFAULT_SUITES = ("AES_128_CBC_SHA256", "AES_128_CBC_SHA")
"""What the MN offers unless told otherwise: confidentiality and integrity, best first."""


class Bootstrapped(NamedTuple):
    """A successful bootstrap: the MN's SA and the bootstrap data the HAC sent (or None)."""

    sa: SecurityAssociation
    bootstrap: Bootstrap | None


class BootstrapFailed(Exception):
    """A bootstrap that ended without an SA.

    ``step`` is where it failed: ``connect``, ``tls``, ``init`` (MN Init and
    its response), ``eap`` (an EAP Mid and its response) or ``done`` (MN Done and
    its response). ``reason`` is a short
    machine-readable word: ``status`` when the HAC answered with an error
    status-code (then ``status``, ``retry_after`` and ``authenticated`` — whether
    that response's ``auth`` verified — are set), else e.g. ``bad-auth``,
    ``rand-mismatch``, ``suite-not-offered``, ``expired``, ``malformed``,
    ``sequence``, ``unexpected``, ``closed``, ``timeout``, ``certificate``.
    The message never holds a key.
    """

    def __init__(self, message: str, *, step: str, reason: str, status: int | None = None,
                 retry_after: datetime | None = None, authenticated: bool = False):
        super().__init__(message)
        self.step = step
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.authenticated = authenticated


def suite_codes(names: Iterable[str]) -> tuple[bytes, ...]:
    """The 2-octet codes of suites named as in ``aaa_mip6.suites.SUITES``, duplicates dropped."""
    codes: list[bytes] = []
    for name in names:
        suite = SUITES.get(name.strip().upper())
        if suite is None:
            raise ConfigError(f"unknown ciphersuite {name!r}; known: {', '.join(SUITES)}")
        if suite.code not in codes:
            codes.append(suite.code)
    if not codes:
        raise ConfigError("the ciphersuite list is empty")
    return tuple(codes)


def header_text(name: str, value) -> str:
    """A TV-header value in its wire form, e.g. ``{00 2f}`` or an rfc1123-date."""
    return tv.encode_header(name, value)[len(name) + 1:-len(tv.CRLF)].decode()


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BootstrapMachine:
    """The steps every flow shares; subclasses supply the requests and check the responses.

    Call :meth:`start` once the TLS handshake is done, write what it returns,
    then pass every read to :meth:`receive` and write what that returns, until
    :attr:`result` is set (then close the connection) or :class:`BootstrapFailed`
    is raised. Whatever the HAC sends, :meth:`receive` raises nothing else.
    """

    def __init__(self, mn_id: str, *, suites: Iterable[str] = DEFAULT_SUITES,
                 scope: int = SCOPE_ALL, draft01: bool = False,
                 now: Callable[[], datetime] = _utc_now):
        if scope not in (SCOPE_SIGNALING, SCOPE_ALL):
            raise ConfigError(f"mip6-sas must be {SCOPE_SIGNALING} or {SCOPE_ALL}, not {scope!r}")
        tv.encode_header(tv.MN_ID, mn_id)  # HeaderError now rather than on the wire
        self.mn_id = mn_id
        self.suites = suite_codes(suites)
        self.scope = scope
        self.draft01 = draft01
        self._now = now
        self._lockstep = container.LockStep()
        self._deframer = container.Deframer()
        self._channel_binding = b""
        self.step = "init"
        self.result: Bootstrapped | None = None
        self._failure: BootstrapFailed | None = None
        self._started = False
        self._early: bytes | None = None

    @property
    def started(self) -> bool:
        """True once :meth:`start` has run (the TLS handshake was done)."""
        return self._started

    @property
    def finished(self) -> bool:
        """True once a result is known or the bootstrap has failed."""
        return self.result is not None or self._failure is not None

    def early_request(self) -> bytes:
        """The first request, framed, to send before the TLS handshake is done (as TLS 1.3
        early data). It is the MN Init, which carries no ``auth`` (RFC 6618 §5.3), so it
        needs neither a key nor the channel binding. :meth:`start` sends it again unless
        told that it went."""
        if self._started:
            raise RuntimeError("the bootstrap has already started")
        if self._early is None:
            self._early = self._frame(self._first_request())
        return self._early

    def start(self, hac_certificate_der: bytes, *, sent_early: bool = False) -> bytes:
        """The first request, framed (``b""`` when ``sent_early``: the HAC took the
        :meth:`early_request`); ``hac_certificate_der`` is the certificate TLS delivered."""
        if self._started:
            raise RuntimeError("the bootstrap has already started")
        if sent_early and self._early is None:
            raise RuntimeError("start(sent_early=True) without an early_request()")
        self._started = True
        try:
            self._channel_binding = authenticator.channel_binding(hac_certificate_der)
        except AuthenticatorError as error:
            raise self._fail(str(error), error.reason) from None
        if self._early is not None:
            return b"" if sent_early else self._early
        return self._frame(self._first_request())

    def receive(self, data: bytes) -> bytes:
        """Octets read from TLS in; octets to write out (``b""`` while a response is incomplete)."""
        if not self._started or self.result is not None:
            raise RuntimeError("receive() is only for a started, unfinished bootstrap")
        if self._failure is not None:
            raise self._failure
        try:
            frames = self._deframer.feed(data)
            if len(frames) > 1:
                raise MessageError("the HAC sent a response nobody asked for", reason="sequence")
            if not frames:
                return b""
            self._lockstep.accept_response(frames[0].identifier)
            request = self._respond(frames[0].content)
        except InvalidInput as error:
            raise self._fail(str(error), error.reason) from None
        return b"" if request is None else self._frame(request)

    # --- hooks for the flows ------------------------------------------------

    def _first_request(self) -> bytes:
        """The Content of the first request (an MnInit)."""
        raise NotImplementedError

    def _respond(self, content: bytes) -> bytes | None:
        """Check one response Content; return the next request's Content, or None when done.

        Raise InvalidInput (or BootstrapFailed) when the response cannot be accepted.
        """
        raise NotImplementedError

    # --- shared machinery -----------------------------------------------------

    def _frame(self, content: bytes) -> bytes:
        return container.encode(self._lockstep.next_request(), content)

    def _fail(self, message: str, reason: str, **details) -> BootstrapFailed:
        self._failure = BootstrapFailed(f"{self.step}: {message}", step=self.step,
                                        reason=reason, **details)
        return self._failure

    def _encode(self, request: m.Request, key: bytes) -> bytes:
        return m.encode(request, key, self._channel_binding, draft01=self.draft01)

    def _verify(self, received: m.Received, key: bytes) -> None:
        try:
            received.verify(key, self._channel_binding, draft01=self.draft01)
        except AuthenticatorError as error:
            raise AuthenticatorError(f"{error} (a wrong key or identity, or a man in the "
                                     "middle between the MN and the HAC)") from None

    def _refused(self, received: m.Received, key: bytes) -> BootstrapFailed:
        """The failure for a HacError or a failed HacDone, recording whether its auth verified."""
        message = received.message
        try:
            self._verify(received, key)
            authenticated = True
        except AuthenticatorError:
            authenticated = False
        text = f"HAC status {message.status} {tv.STATUS_CODES[message.status]}"
        if not authenticated:
            text += " (its auth did not verify)"
        retry_after = getattr(message, "retry_after", None)
        if retry_after is not None:
            text += f", retry after {header_text(tv.RETRY_AFTER, retry_after)}"
        return self._fail(text, "status", status=message.status, retry_after=retry_after,
                          authenticated=authenticated)

    def _finish(self, done: m.HacDone) -> None:
        """Accept a verified HacDone with status 200: check the provision, keep the result."""
        provision = done.provision
        if provision.suite not in self.suites:
            name = tv.CIPHERSUITES[provision.suite]
            raise MessageError(f"the HAC chose {name}, which the MN did not offer",
                               reason="suite-not-offered")
        if provision.validity_end <= self._now():
            raise MessageError("the SA's mip6-sa-validity-end has already passed",
                               reason="expired")
        self.step = "finished"
        self.result = Bootstrapped(provision.security_association(self.mn_id),
                                   provision.bootstrap)


class PskBootstrap(BootstrapMachine):
    """The PSK flow of RFC 6618 §5.8: MnInit -> HacInit, MnDone -> HacDone.

    Every HAC ``auth`` is verified with the PSK over the channel binding, both
    random numbers must echo, and the result is checked by ``_finish``.
    """

    def __init__(self, mn_id: str, psk: bytes, *, random: Callable[[int], bytes] = os.urandom,
                 **options):
        super().__init__(mn_id, **options)
        if not psk:
            raise ConfigError("the PSK must not be empty")
        self._psk = psk
        self._mn_rand = random(tv.RAND_SIZE)
        self._hac_rand = b""

    def __repr__(self) -> str:
        return f"<PskBootstrap {self.mn_id} step={self.step}>"

    def _first_request(self) -> bytes:
        return m.encode(m.MnInit(self.mn_id, self._mn_rand, (tv.AuthMethod.PSK,)))

    def _respond(self, content: bytes) -> bytes | None:
        if self.step == "init":
            return self._on_init(m.decode_response(content, (m.HacInit, m.HacError)))
        self._on_done(m.decode_response(content, (m.HacDone, m.HacError)))
        return None

    def _on_init(self, received: m.Received) -> bytes:
        if isinstance(received.message, m.HacError):
            raise self._refused(received, self._psk)
        self._verify(received, self._psk)
        init: m.HacInit = received.message
        if init.auth_method is not tv.AuthMethod.PSK:
            raise MessageError("the HAC chose EAP, the MN offered only PSK", reason="unexpected")
        self._check_rand(init.mn_rand)
        self._hac_rand = init.hac_rand
        self.step = "done"
        return self._encode(m.MnDone(self.scope, self.suites, self._mn_rand, self._hac_rand),
                            self._psk)

    def _on_done(self, received: m.Received) -> None:
        done = received.message
        if isinstance(done, m.HacError) or done.status != 200:
            raise self._refused(received, self._psk)
        self._verify(received, self._psk)
        if done.method is not tv.AuthMethod.PSK:
            raise MessageError("the HAC ended a PSK exchange with EAP", reason="unexpected")
        self._check_rand(done.mn_rand, done.hac_rand)
        self._finish(done)

    def _check_rand(self, mn_rand: bytes, hac_rand: bytes | None = None) -> None:
        if mn_rand != self._mn_rand or (hac_rand is not None and hac_rand != self._hac_rand):
            raise MessageError("the HAC did not echo the random numbers of this exchange",
                               reason="rand-mismatch")


class EapBootstrap(BootstrapMachine):
    """The EAP flow of RFC 6618 §5.9 (spec notes §4), driving an ``mn.eap.peer.EapPeer``.

    Every EAP request the HAC relays (in HacInit or HacMid, ``auth`` keyed with ``1``)
    goes to the peer; its response goes back in a Mid while the method runs, and in a
    Done (with the scope and suites) once the method has finished on the peer side,
    keyed with the MSK if the method derived one, else ``1``. A HacMid after that Done
    is the continue rule: the exchange goes on. The final HacDone must carry
    EAP-Success, verify with the Done's key, and hold the SA. Error responses are
    checked with key ``1``.
    """

    def __init__(self, mn_id: str, peer, *, random: Callable[[int], bytes] = os.urandom,
                 **options):
        super().__init__(mn_id, **options)
        self.peer = peer
        self._mn_rand = random(tv.RAND_SIZE)
        self._done_key: bytes | None = None  # set once the MN has sent a Done

    def __repr__(self) -> str:
        return f"<EapBootstrap {self.mn_id} {self.peer.method.name} step={self.step}>"

    def _first_request(self) -> bytes:
        return m.encode(m.MnInit(self.mn_id, self._mn_rand, (tv.AuthMethod.EAP,)))

    def _respond(self, content: bytes) -> bytes | None:
        expected = (m.HacInit, m.HacError) if self.step == "init" else (
            m.HacMid, m.HacDone, m.HacError)
        received = m.decode_response(content, expected)
        message = received.message
        if isinstance(message, m.HacError) or (isinstance(message, m.HacDone)
                                                and message.status != 200):
            raise self._refused(received, authenticator.EAP_KEY)
        if isinstance(message, m.HacDone):
            self._on_done(received)
            return None
        self._verify(received, authenticator.EAP_KEY)
        if isinstance(message, m.HacInit) and message.auth_method is not tv.AuthMethod.EAP:
            raise MessageError("the HAC chose PSK, the MN offered only EAP", reason="unexpected")
        return self._next_request(message.eap_payload)

    def _next_request(self, eap_request: bytes) -> bytes:
        """The peer's answer to one EAP request: in a Mid, or in a Done once it is done."""
        eap_response = self.peer.receive(eap_request)
        if eap_response is None:
            raise MessageError("the HAC relayed an EAP Success or Failure without ending",
                               reason="unexpected")
        if not self.peer.method_done:
            self.step = "eap"
            return self._encode(m.MnMid(eap_response), authenticator.EAP_KEY)
        self.step = "done"
        self._done_key = self.peer.msk or authenticator.EAP_KEY
        return self._encode(m.MnDone(self.scope, self.suites, eap_payload=eap_response),
                            self._done_key)

    def _on_done(self, received: m.Received) -> None:
        if self._done_key is None:
            raise MessageError("the HAC ended the exchange before the EAP method finished",
                               reason="unexpected")
        self._verify(received, self._done_key)
        done: m.HacDone = received.message
        if done.method is not tv.AuthMethod.EAP:
            raise MessageError("the HAC ended an EAP exchange with PSK", reason="unexpected")
        self.peer.receive(done.eap_payload)
        if not self.peer.success:
            raise MessageError("HacDone 200 without EAP-Success", reason="unexpected")
        self._finish(done)
