"""MHAuth messages of RFC 6618 §5.3, §5.8 and §5.9 as typed, frozen models.

Requests (MN -> HAC): :class:`MnInit`, :class:`MnMid`, :class:`MnDone`.
Responses (HAC -> MN): :class:`HacInit`, :class:`HacMid`, :class:`HacDone`,
:class:`HacError` (status-code, optional retry-after, auth; possible at any step).

PSK flow: MnInit -> HacInit, MnDone -> HacDone (``mn_rand``/``hac_rand`` set).
EAP flow: MnInit -> HacInit, MnMid -> HacMid ..., MnDone -> HacDone
(``eap_payload`` set); a HacMid may also answer an MnDone (the AAA sent
another challenge). The models enforce which headers each message must and
may carry, raising :class:`MessageError`.

:func:`encode` writes a message's headers in its fixed order (the ``ORDER``
class attribute; see docs/protocol.md), then ``auth``, then the empty line.
:func:`decode_request` / :func:`decode_response` parse a Content and return a
:class:`Received`: the message plus the octets ``auth`` covers, so ``auth``
can be verified once the key is known (the PSK looked up by ``mn-id``, or
the MSK the AAA server returned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, ClassVar, Generic, TypeVar

from . import authenticator, eap
from . import tvheaders as tv
from .authenticator import Sender
from .errors import MessageError
from .iana import MIPV6TLS_PORT
from .sa import Bootstrap, HomeAgent, SecurityAssociation
from .suites import suite_by_code
from .tvheaders import AuthMethod



def _flow(message: str, mn_rand: bytes | None, hac_rand: bytes | None,
          eap_payload: bytes | None) -> AuthMethod:
    """PSK messages carry both rands and no EAP; EAP messages the reverse."""
    if eap_payload is None and mn_rand is not None and hac_rand is not None:
        return AuthMethod.PSK
    if eap_payload is not None and mn_rand is None and hac_rand is None:
        eap.decode(eap_payload)  # one whole EAP packet, or EapError
        return AuthMethod.EAP
    raise MessageError(f"{message} needs mn-rand and hac-rand (PSK) or eap-payload (EAP)")


class _Message:
    """Shared machinery: ``ORDER`` maps header names to attributes, in emission order."""

    __slots__ = ()
    ORDER: ClassVar[tuple[tuple[str, str], ...]]
    REQUIRED: ClassVar[frozenset[str]]
    SENDER: ClassVar[Sender]

    def headers(self) -> list[tuple[str, Any]]:
        """The (name, value) pairs this message puts on the wire, in order, ``auth`` excluded."""
        pairs = []
        for name, attribute in self.ORDER:
            value = getattr(self, attribute)
            if value is not None:
                pairs.append((name, value))
        return pairs

    @classmethod
    def from_headers(cls, headers: dict[str, Any]) -> Any:
        """Build the message from decoded headers; MessageError for a wrong header set."""
        return _build(cls, headers)


def _build(cls: Any, headers: dict[str, Any], **extra: Any) -> Any:
    _check_names(cls.__name__, headers, cls.REQUIRED, {name for name, _ in cls.ORDER})
    return cls(**{attribute: headers.get(name) for name, attribute in cls.ORDER}, **extra)


def _check_names(message: str, headers: dict[str, Any], required: frozenset[str],
                 allowed: set[str] | frozenset[str]) -> None:
    for name in headers:
        if name not in allowed:
            raise MessageError(f"{name} is not allowed in {message}")
    for name in required:
        if name not in headers:
            raise MessageError(f"{message} lacks {name}")


class _PskOrEap(_Message):
    """A Done message: PSK (both rands) or EAP (eap-payload), checked by :func:`_flow`."""

    __slots__ = ()
    eap_payload: bytes | None

    @property
    def method(self) -> AuthMethod:
        return AuthMethod.EAP if self.eap_payload is not None else AuthMethod.PSK


@dataclass(frozen=True, slots=True)
class MnInit(_Message):
    """MHAuth-Init request: who the MN is and how it can authenticate (no ``auth``)."""

    mn_id: str
    mn_rand: bytes
    auth_methods: tuple[AuthMethod, ...]

    ORDER = ((tv.MN_ID, "mn_id"), (tv.MN_RAND, "mn_rand"), (tv.AUTH_METHOD, "auth_methods"))
    REQUIRED = frozenset({tv.MN_ID, tv.MN_RAND, tv.AUTH_METHOD})
    SENDER = Sender.MN


@dataclass(frozen=True, slots=True)
class HacInit(_Message):
    """MHAuth-Init response: the one selected method; rands (PSK) or the first EAP request."""

    auth_method: AuthMethod
    mn_rand: bytes | None = None
    hac_rand: bytes | None = None
    eap_payload: bytes | None = None

    ORDER = ((tv.MN_RAND, "mn_rand"), (tv.HAC_RAND, "hac_rand"),
             (tv.AUTH_METHOD, "auth_method"), (tv.EAP_PAYLOAD, "eap_payload"))
    REQUIRED = frozenset({tv.AUTH_METHOD})
    SENDER = Sender.HAC

    def __post_init__(self) -> None:
        if _flow("HacInit", self.mn_rand, self.hac_rand, self.eap_payload) != self.auth_method:
            raise MessageError("HacInit headers do not match its auth-method")

    def headers(self) -> list[tuple[str, Any]]:
        pairs = _Message.headers(self)
        return [(name, (value,) if name == tv.AUTH_METHOD else value) for name, value in pairs]

    @classmethod
    def from_headers(cls, headers: dict[str, Any]) -> HacInit:
        methods = headers.get(tv.AUTH_METHOD, ())
        if len(methods) != 1:
            raise MessageError("HacInit must select exactly one auth-method")
        return _build(cls, {**headers, tv.AUTH_METHOD: methods[0]})


@dataclass(frozen=True, slots=True)
class MnMid(_Message):
    """MHAuth-Mid request: the MN's next EAP response."""

    eap_payload: bytes = field(repr=False)  # e.g. an EAP-GTC response is the password

    ORDER = ((tv.EAP_PAYLOAD, "eap_payload"),)
    REQUIRED = frozenset({tv.EAP_PAYLOAD})
    SENDER = Sender.MN

    def __post_init__(self) -> None:
        eap.decode(self.eap_payload)


@dataclass(frozen=True, slots=True)
class HacMid(_Message):
    """MHAuth-Mid response: the next EAP request; no status-code, so the exchange goes on."""

    eap_payload: bytes

    ORDER = MnMid.ORDER
    REQUIRED = MnMid.REQUIRED
    SENDER = Sender.HAC

    def __post_init__(self) -> None:
        eap.decode(self.eap_payload)


@dataclass(frozen=True, slots=True)
class MnDone(_PskOrEap):
    """MHAuth-Done request: the MN's scope proposal and ciphersuites, rands or last EAP response."""

    scope: int
    suites: tuple[bytes, ...]
    mn_rand: bytes | None = None
    hac_rand: bytes | None = None
    eap_payload: bytes | None = field(default=None, repr=False)  # the MN's EAP response

    ORDER = ((tv.MN_RAND, "mn_rand"), (tv.HAC_RAND, "hac_rand"), (tv.SAS, "scope"),
             (tv.SUITELIST, "suites"), (tv.EAP_PAYLOAD, "eap_payload"))
    REQUIRED = frozenset({tv.SAS, tv.SUITELIST})
    SENDER = Sender.MN

    def __post_init__(self) -> None:
        _flow("MnDone", self.mn_rand, self.hac_rand, self.eap_payload)


@dataclass(frozen=True, slots=True)
class Provision:
    """The SA and bootstrap data a successful HacDone provisions (§5.6, §5.7).

    ``suite`` is the 2-octet code (``tvheaders.CIPHERSUITES``); every key must
    have the suite's length (MessageError otherwise), so encryption keys are
    ``b""`` for NULL-encryption suites, whose Done carries no ekey headers.
    ``bootstrap`` None means the HAC sent no bootstrapping header; when it sent
    some but no ``mip6-port``, the port is IANA's mipv6tls (:data:`~aaa_mip6.iana.MIPV6TLS_PORT`).
    """

    spi: int
    suite: bytes
    scope: int
    validity_end: datetime
    mn_to_ha_ikey: bytes = field(repr=False)
    ha_to_mn_ikey: bytes = field(repr=False)
    mn_to_ha_ekey: bytes = field(default=b"", repr=False)
    ha_to_mn_ekey: bytes = field(default=b"", repr=False)
    bootstrap: Bootstrap | None = None

    def __post_init__(self) -> None:
        suite = suite_by_code(self.suite)
        if suite is None:
            raise MessageError("mip6-ciphersuite is not one of RFC 6618 §5.6.5")
        for name, key, size in (
            (tv.MN_TO_HA_IKEY, self.mn_to_ha_ikey, suite.ikey_length),
            (tv.HA_TO_MN_IKEY, self.ha_to_mn_ikey, suite.ikey_length),
            (tv.MN_TO_HA_EKEY, self.mn_to_ha_ekey, suite.ekey_length),
            (tv.HA_TO_MN_EKEY, self.ha_to_mn_ekey, suite.ekey_length),
        ):
            if len(key) != size:
                raise MessageError(f"{suite.name} needs {size} octets in {name}, not {len(key)}")

    @classmethod
    def from_security_association(cls, sa: SecurityAssociation,
                                  bootstrap: Bootstrap | None = None) -> Provision:
        """What the HAC sends for a stored SA (the SA's home addresses travel in ``bootstrap``)."""
        return cls(sa.spi, tv.CIPHERSUITE_CODES[sa.suite], sa.scope, sa.validity_end,
                   sa.mn_to_ha_ikey, sa.ha_to_mn_ikey, sa.mn_to_ha_ekey, sa.ha_to_mn_ekey,
                   bootstrap)

    def security_association(self, mn_id: str) -> SecurityAssociation:
        """The MN's SA from this provision; home addresses come from ``bootstrap``."""
        bootstrap = self.bootstrap
        return SecurityAssociation(
            spi=self.spi, suite=tv.CIPHERSUITES[self.suite],
            mn_to_ha_ikey=self.mn_to_ha_ikey, ha_to_mn_ikey=self.ha_to_mn_ikey,
            mn_to_ha_ekey=self.mn_to_ha_ekey, ha_to_mn_ekey=self.ha_to_mn_ekey,
            validity_end=self.validity_end, scope=self.scope, mn_id=mn_id,
            home_address6=bootstrap.home_address6 if bootstrap else None,
            home_address4=bootstrap.home_address4 if bootstrap else None,
        )

    def headers(self) -> list[tuple[str, Any]]:
        pairs: list[tuple[str, Any]] = [
            (tv.SAS, self.scope), (tv.SPI, self.spi),
            (tv.MN_TO_HA_IKEY, self.mn_to_ha_ikey), (tv.HA_TO_MN_IKEY, self.ha_to_mn_ikey),
        ]
        if self.mn_to_ha_ekey:  # NULL encryption: no ekey headers
            pairs += [(tv.MN_TO_HA_EKEY, self.mn_to_ha_ekey),
                      (tv.HA_TO_MN_EKEY, self.ha_to_mn_ekey)]
        pairs += [(tv.SA_VALIDITY_END, self.validity_end), (tv.CIPHERSUITE, self.suite)]
        if self.bootstrap is not None:
            pairs += _bootstrap_headers(self.bootstrap)
        return pairs

    @classmethod
    def from_headers(cls, headers: dict[str, Any]) -> Provision:
        _check_names("HacDone", headers, _PROVISION_REQUIRED, _PROVISION_HEADERS)
        bootstrap = None
        if not _BOOTSTRAP_HEADERS.isdisjoint(headers):
            get = headers.get
            bootstrap = Bootstrap(
                HomeAgent(get(tv.HAA_IP6), get(tv.HAA_IP4), get(tv.PORT, MIPV6TLS_PORT)),
                get(tv.IP6_HOA), get(tv.IP4_HOA), get(tv.IP6_HNP), get(tv.IP4_HNP),
                get(tv.DNS_IP6), get(tv.DNS_IP4),
            )
        return cls(
            headers[tv.SPI], headers[tv.CIPHERSUITE], headers[tv.SAS],
            headers[tv.SA_VALIDITY_END], headers[tv.MN_TO_HA_IKEY], headers[tv.HA_TO_MN_IKEY],
            headers.get(tv.MN_TO_HA_EKEY, b""), headers.get(tv.HA_TO_MN_EKEY, b""), bootstrap,
        )


def _bootstrap_headers(bootstrap: Bootstrap) -> list[tuple[str, Any]]:
    agent = bootstrap.home_agent
    values: tuple[tuple[str, IPv6Address | IPv4Address | IPv6Network | IPv4Network | int | None],
                  ...] = (
        (tv.HAA_IP6, agent.address6), (tv.HAA_IP4, agent.address4), (tv.PORT, agent.port),
        (tv.IP6_HOA, bootstrap.home_address6), (tv.IP4_HOA, bootstrap.home_address4),
        (tv.IP6_HNP, bootstrap.home_prefix6), (tv.IP4_HNP, bootstrap.home_prefix4),
        (tv.DNS_IP6, bootstrap.dns6), (tv.DNS_IP4, bootstrap.dns4),
    )
    return [(name, value) for name, value in values if value is not None]


_BOOTSTRAP_HEADERS = frozenset({tv.HAA_IP6, tv.HAA_IP4, tv.PORT, tv.IP6_HOA, tv.IP4_HOA,
                                tv.IP6_HNP, tv.IP4_HNP, tv.DNS_IP6, tv.DNS_IP4})
_PROVISION_REQUIRED = frozenset({tv.SAS, tv.SPI, tv.MN_TO_HA_IKEY, tv.HA_TO_MN_IKEY,
                                 tv.SA_VALIDITY_END, tv.CIPHERSUITE})
_PROVISION_HEADERS = _PROVISION_REQUIRED | {tv.MN_TO_HA_EKEY, tv.HA_TO_MN_EKEY} | _BOOTSTRAP_HEADERS


@dataclass(frozen=True, slots=True)
class HacDone(_PskOrEap):
    """MHAuth-Done response: the final status; with status 200 the :class:`Provision`.

    A failed Done (status 4xx/5xx) still carries the rands (PSK) or the EAP
    packet (EAP-Failure), and no provision.
    """

    status: int
    mn_rand: bytes | None = None
    hac_rand: bytes | None = None
    eap_payload: bytes | None = None
    provision: Provision | None = None

    ORDER = ((tv.MN_RAND, "mn_rand"), (tv.HAC_RAND, "hac_rand"),
             (tv.EAP_PAYLOAD, "eap_payload"), (tv.STATUS_CODE, "status"))
    REQUIRED = frozenset({tv.STATUS_CODE})
    SENDER = Sender.HAC

    def __post_init__(self) -> None:
        _flow("HacDone", self.mn_rand, self.hac_rand, self.eap_payload)
        if self.status == 100:
            raise MessageError("status-code 100 cannot end an exchange")
        if (self.status == 200) != (self.provision is not None):
            raise MessageError("HacDone carries the SA exactly when its status-code is 200")

    def headers(self) -> list[tuple[str, Any]]:
        own = _Message.headers(self)
        return own if self.provision is None else self.provision.headers() + own

    @classmethod
    def from_headers(cls, headers: dict[str, Any]) -> HacDone:
        own: dict[str, Any] = {}
        provided: dict[str, Any] = {}
        for name, value in headers.items():
            (provided if name in _PROVISION_HEADERS else own)[name] = value
        return _build(cls, own, provision=Provision.from_headers(provided) if provided else None)


@dataclass(frozen=True, slots=True)
class HacError(_Message):
    """An error response at any step: status-code, optional retry-after (e.g. with 503)."""

    status: int
    retry_after: datetime | None = None

    ORDER = ((tv.STATUS_CODE, "status"), (tv.RETRY_AFTER, "retry_after"))
    REQUIRED = frozenset({tv.STATUS_CODE})
    SENDER = Sender.HAC

    def __post_init__(self) -> None:
        if self.status < 400:
            raise MessageError(f"an error response needs a 4xx/5xx status-code, not {self.status}")


Request = MnInit | MnMid | MnDone
Response = HacInit | HacMid | HacDone | HacError
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Received(Generic[M]):
    """A decoded message and what is needed to verify its ``auth`` once the key is known."""

    message: M
    signed: bytes = field(repr=False)  # the Content octets before the auth line
    auth: bytes | None = field(repr=False)

    def verify(self, key: bytes, channel_binding: bytes, *, draft01: bool = False) -> None:
        """Raise :class:`AuthenticatorError` unless ``auth`` verifies under ``key``."""
        if self.auth is None:
            raise ValueError(f"{type(self.message).__name__} carries no auth")
        authenticator.verify(key, self.message.SENDER, self.signed, channel_binding, self.auth,
                             draft01=draft01)


def encode(message: Request | Response, key: bytes | None = None,
           channel_binding: bytes | None = None, *, draft01: bool = False) -> bytes:
    """The Content of ``message``: its headers in order, ``auth`` (all but MnInit), the end.

    ``key`` is the PSK, :data:`authenticator.EAP_KEY`, or the MSK (§5.8, §5.9);
    ``channel_binding`` the tls-server-end-point octets of the HAC's certificate.
    """
    lines = tv.encode_lines(message.headers())
    if isinstance(message, MnInit):
        return lines + tv.END_OF_MESSAGE
    if key is None or channel_binding is None:
        raise ValueError(f"{type(message).__name__} needs a key and the channel binding")
    auth = authenticator.compute(key, message.SENDER, lines, channel_binding, draft01=draft01)
    return tv.seal(lines, auth)


def _classify_request(headers: dict[str, Any]) -> type:
    if tv.MN_ID in headers:
        return MnInit
    if tv.SAS in headers or tv.SUITELIST in headers:
        return MnDone
    return MnMid


_ERROR_HEADERS = frozenset(name for name, _ in HacError.ORDER)


def _classify_response(headers: dict[str, Any]) -> type:
    if tv.STATUS_CODE in headers:
        return HacError if headers.keys() <= _ERROR_HEADERS else HacDone
    if tv.AUTH_METHOD in headers:
        return HacInit
    return HacMid


def _decode(content: bytes, expected: type | tuple[type, ...], classify: Any) -> Received:
    decoded = tv.decode_content(content)
    kind = classify(decoded.headers)
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if kind not in allowed:
        names = " or ".join(cls.__name__ for cls in allowed)
        raise MessageError(f"got {kind.__name__} where {names} was expected", reason="unexpected")
    if (decoded.auth is None) != (kind is MnInit):
        raise MessageError(f"{kind.__name__} {'must not' if kind is MnInit else 'must'} carry auth")
    return Received(kind.from_headers(decoded.headers), decoded.signed, decoded.auth)


def decode_request(content: bytes, expected: type | tuple[type, ...]) -> Received:
    """HAC side: parse a request Content; ``expected`` e.g. ``MnInit`` or ``(MnMid, MnDone)``."""
    return _decode(content, expected, _classify_request)


def decode_response(content: bytes, expected: type | tuple[type, ...]) -> Received:
    """MN side: parse a response Content; e.g. ``(HacInit, HacError)`` after MnInit.

    A :class:`HacError` is returned only if listed in ``expected``; it may
    answer any request, so list it at every step.
    """
    return _decode(content, expected, _classify_response)

