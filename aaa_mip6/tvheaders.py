"""TV-header codec for MN-HAC message Content (RFC 6618 §5.2, §5.5-§5.7).

Content is ``1*(TV-header) end-of-message``: lines ``name ":" value CRLF``
followed by one empty line. Every value is checked against its ABNF and
turned into a typed Python value:

=====================  ======================================  ==========================
header                 Python value                            wire form
=====================  ======================================  ==========================
mn-id                  ``str`` NAI (RFC 4282)                  UTF-8
auth-method            ``tuple[AuthMethod, ...]``              ``psk,eap``
eap-payload, auth,     ``bytes``                               lower-case hex
mip6-*-ikey/-ekey
mn-rand, hac-rand      ``bytes`` of exactly 32 octets          lower-case hex
status-code            ``int`` of :data:`STATUS_CODES`         3 digits
retry-after,           aware UTC ``datetime``, whole seconds   rfc1123-date
mip6-sa-validity-end
mip6-spi               ``int`` 1..268435455                    decimal
mip6-sas               ``int`` 0 or 1                          1 digit
mip6-port              ``int`` 1..65535                        1..5 digits
mip6-ciphersuite       ``bytes`` code, e.g. ``b"\\x00\\x2f"``     ``{00 2F}``
mip6-suitelist         ``tuple[bytes, ...]`` of codes          ``{00 2F} {00 3C}``
mip6-haa-ip6, ...      ``IPv6Address`` / ``IPv4Address``       8 groups / dotted quad
mip6-ip6-hnp/ip4-hnp   ``IPv6Network`` / ``IPv4Network``       address ``/`` 1-2 digits
=====================  ======================================  ==========================

Any value outside its ABNF raises :class:`HeaderError` (decoding or encoding);
a wrong set or order of lines raises :class:`MessageError`. Error messages
name the header, never its value: values include keys.
"""

from __future__ import annotations

import binascii
import enum
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .errors import HeaderError, MessageError
from .sa import SPI_MAX, SPI_MIN
from .suites import SUITES

CRLF = b"\r\n"
END_OF_MESSAGE = CRLF  # the empty line that closes the Content (§5.5.7)
_TERMINATOR = CRLF + END_OF_MESSAGE

# Header names, lower case exactly as in the ABNF.
MN_ID = "mn-id"
AUTH_METHOD = "auth-method"
EAP_PAYLOAD = "eap-payload"
STATUS_CODE = "status-code"
AUTH = "auth"
RETRY_AFTER = "retry-after"
MN_RAND = "mn-rand"
HAC_RAND = "hac-rand"
SPI = "mip6-spi"
MN_TO_HA_IKEY = "mip6-mn-to-ha-ikey"
HA_TO_MN_IKEY = "mip6-ha-to-mn-ikey"
MN_TO_HA_EKEY = "mip6-mn-to-ha-ekey"
HA_TO_MN_EKEY = "mip6-ha-to-mn-ekey"
SA_VALIDITY_END = "mip6-sa-validity-end"
SAS = "mip6-sas"
CIPHERSUITE = "mip6-ciphersuite"
SUITELIST = "mip6-suitelist"
HAA_IP6 = "mip6-haa-ip6"
HAA_IP4 = "mip6-haa-ip4"
PORT = "mip6-port"
IP6_HOA = "mip6-ip6-hoa"
IP4_HOA = "mip6-ip4-hoa"
IP6_HNP = "mip6-ip6-hnp"
IP4_HNP = "mip6-ip4-hnp"
DNS_IP6 = "dns-ip6"
DNS_IP4 = "dns-ip4"

RAND_SIZE = 32
NAI_MAX = 253  # what a RADIUS User-Name can carry (RFC 2865 §5.1)

STATUS_CODES = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}

# The only ciphersuite codes the `suite` rule admits (§5.6.5) -> their names in suites.SUITES.
CIPHERSUITES = {suite.code: suite.name for suite in SUITES.values()}
CIPHERSUITE_CODES = {suite.name: suite.code for suite in SUITES.values()}


class AuthMethod(enum.StrEnum):
    PSK = "psk"
    EAP = "eap"


class Content(NamedTuple):
    """A decoded Content: typed values by header name, and what ``auth`` covers.

    ``signed`` is the exact octets preceding the ``auth`` line (every earlier
    line with its CRLF); ``auth`` is None when the Content has no ``auth``
    line, and ``signed`` is then every header line.
    """

    headers: dict[str, Any]
    signed: bytes
    auth: bytes | None


def _fail(name: str, what: str) -> HeaderError:
    return HeaderError(f"{name}: {what}")


# --- value decoders: bytes (after the optional SP/HT) -> typed value -------


def _decode_hex(name: str, raw: bytes) -> bytes:
    try:
        value = binascii.unhexlify(raw)
    except (binascii.Error, ValueError):
        raise _fail(name, "not an even number of hex digits") from None
    if not value:
        raise _fail(name, "empty")
    return value


def _decode_rand(name: str, raw: bytes) -> bytes:
    value = _decode_hex(name, raw)
    if len(value) != RAND_SIZE:
        raise _fail(name, f"{len(value)} octets, must be {RAND_SIZE}")
    return value


def _decode_decimal(name: str, raw: bytes, low: int, high: int, max_digits: int) -> int:
    if not raw.isdigit() or len(raw) > max_digits:
        raise _fail(name, f"not 1..{max_digits} decimal digits")
    value = int(raw)
    if not low <= value <= high:
        raise _fail(name, f"{value} outside {low}..{high}")
    return value


def _decode_spi(name: str, raw: bytes) -> int:
    # 1*DIGIT: leading zeros are allowed, so only significant digits count.
    if not raw.isdigit():
        raise _fail(name, "not decimal digits")
    return _decode_decimal(name, raw.lstrip(b"0") or b"0", SPI_MIN, SPI_MAX, 9)


_STATUS_BY_TEXT = {str(code).encode(): code for code in STATUS_CODES}
_SAS_BY_TEXT = {b"0": 0, b"1": 1}
_METHOD_BY_TEXT = {method.value.encode(): method for method in AuthMethod}


def _decode_lookup(table: dict[bytes, Any]) -> Callable[[str, bytes], Any]:
    def decode(name: str, raw: bytes) -> Any:
        value = table.get(raw)
        if value is None:
            raise _fail(name, "not one of the values its ABNF allows")
        return value

    return decode


def _decode_auth_methods(name: str, raw: bytes) -> tuple[AuthMethod, ...]:
    """``a-method *("," a-method)``; spaces and tabs around a ',' are skipped, but, as after
    every other value, not after the last method."""
    if raw.endswith((b" ", b"\t")):
        raise _fail(name, "whitespace after the value")
    methods = tuple(
        _METHOD_BY_TEXT.get(item.strip(b" \t").lower()) for item in raw.split(b",")
    )
    if None in methods:
        raise _fail(name, "an authentication method is not psk or eap")
    if len(set(methods)) != len(methods):
        raise _fail(name, "a method is listed twice")
    return methods  # type: ignore[return-value]


def _suite_text(code: bytes) -> bytes:
    """csuite as the ABNF literal spells it: ``{00 2F}`` (upper case, as in RFC 6618)."""
    return b"{%02X %02X}" % (code[0], code[1])


_SUITE_BY_TEXT = {_suite_text(code): code for code in CIPHERSUITES}
_CSUITE_SIZE = 7  # "{00 2f}"


def _decode_csuite(name: str, raw: bytes) -> bytes:
    code = _SUITE_BY_TEXT.get(raw.upper())
    if code is None:
        raise _fail(name, "not a ciphersuite of RFC 6618 §5.6.5 in the form {00 2F}")
    return code


def _decode_suitelist(name: str, raw: bytes) -> tuple[bytes, ...]:
    step = _CSUITE_SIZE + 1
    if (len(raw) + 1) % step or any(raw[i] != 0x20 for i in range(_CSUITE_SIZE, len(raw), step)):
        raise _fail(name, "not ciphersuites separated by single spaces")
    codes = tuple(_decode_csuite(name, raw[i:i + _CSUITE_SIZE]) for i in range(0, len(raw), step))
    if len(set(codes)) != len(codes):
        raise _fail(name, "a ciphersuite is listed twice")
    return codes


_WEEKDAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun",
           b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")
_MONTH_BY_TEXT = {text: number for number, text in enumerate(_MONTHS, 1)}
_DATE_SIZE = len(b"Sun, 06 Nov 1994 08:49:37 GMT")


def _decode_date(name: str, raw: bytes) -> datetime:
    """rfc1123-date (RFC 2616 §3.3.1), exactly; the weekday must match the date."""
    fields = (raw[5:7], raw[12:16], raw[17:19], raw[20:22], raw[23:25])
    if (
        len(raw) != _DATE_SIZE
        or raw[3:5] != b", " or raw[7] != 0x20 or raw[11] != 0x20 or raw[16] != 0x20
        or raw[19] != 0x3A or raw[22] != 0x3A or raw[25:] != b" GMT"
        or not all(field.isdigit() for field in fields)
        or raw[8:11] not in _MONTH_BY_TEXT
    ):
        raise _fail(name, "not an rfc1123-date like 'Sun, 06 Nov 1994 08:49:37 GMT'")
    day, year, hour, minute, second = map(int, fields)
    try:
        value = datetime(year, _MONTH_BY_TEXT[raw[8:11]], day, hour, minute, second,
                         tzinfo=timezone.utc)
    except ValueError:
        raise _fail(name, "not a valid calendar date and time") from None
    if _WEEKDAYS[value.weekday()] != raw[:3]:
        raise _fail(name, "the weekday does not match the date")
    return value


# RFC 4282 §2.1 `c`: the characters a username may hold unescaped (plus non-ASCII).
_NAI_CHARS = frozenset(
    "!#$%&'*+-=?^_`{|}~0123456789"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_LABEL_EDGE = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_LABEL_CHARS = _LABEL_EDGE | {"-"}


def _username_end(text: str) -> int:
    """Index of the '@' that ends the username (or len(text)); raise if it breaks `dot-string`."""
    after_dot = True  # at the start, a '.' would open an empty `string`
    index = 0
    size = len(text)
    while index < size:
        char = text[index]
        if char == "@":
            break
        if char == ".":
            if after_dot:
                raise _fail(MN_ID, "username has an empty dot-separated part")
            after_dot = True
        else:
            if char == "\\":
                index += 1
                if index == size or not text[index].isprintable():
                    raise _fail(MN_ID, "username has a bad escape")
            elif char not in _NAI_CHARS and char <= "\x7f":
                raise _fail(MN_ID, "username has a character RFC 4282 does not allow")
            after_dot = False
        index += 1
    if index and after_dot:
        raise _fail(MN_ID, "username ends with '.'")
    return index


def _check_realm(realm: str) -> None:
    labels = realm.split(".")
    if len(labels) < 2:
        raise _fail(MN_ID, "realm must have at least two labels")
    for label in labels:
        if (
            not 1 <= len(label) <= 63
            or label[0] not in _LABEL_EDGE or label[-1] not in _LABEL_EDGE
            or not _LABEL_CHARS.issuperset(label)
        ):
            raise _fail(MN_ID, "realm label is not letters, digits and inner hyphens")


def _decode_nai(name: str, raw: bytes) -> str:
    """nai = username / "@" realm / username "@" realm (RFC 4282 §2.1)."""
    if not 1 <= len(raw) <= NAI_MAX:
        raise _fail(name, f"must be 1..{NAI_MAX} octets")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(name, "not UTF-8") from None
    end = _username_end(text)
    if end < len(text):
        _check_realm(text[end + 1:])
    return text


def _packed(name: str, raw: bytes, family: socket.AddressFamily) -> bytes:
    """The address octets; inet_pton is strict (no scope, spaces or leading-zero octets)."""
    try:
        return socket.inet_pton(family, raw.decode("ascii"))
    except (OSError, ValueError):
        raise _fail(name, f"not an {_FAMILY_NAMES[family]} address") from None


_FAMILY_NAMES = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}


def _decode_address(cls: type, family: socket.AddressFamily) -> Callable[[str, bytes], Any]:
    def decode(name: str, raw: bytes) -> Any:
        return cls(_packed(name, raw, family))

    return decode


def _decode_network(cls: type, family: socket.AddressFamily,
                    max_length: int) -> Callable[[str, bytes], Any]:
    def decode(name: str, raw: bytes) -> Any:
        address, slash, length = raw.partition(b"/")
        if not slash or not length.isdigit() or len(length) > 2 or int(length) > max_length:
            raise _fail(name, f"not address '/' prefix length 0..{max_length} (1-2 digits)")
        packed = _packed(name, address, family)  # its own error, not caught below
        try:
            return cls((packed, int(length)))
        except ValueError:
            raise _fail(name, "has bits set beyond its prefix length") from None

    return decode


# --- value encoders: typed value -> bytes, same checks as the decoders ----


def _encode_hex(name: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray) or not value:
        raise _fail(name, "must be non-empty bytes")
    return binascii.hexlify(value)


def _encode_rand(name: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != RAND_SIZE:
        raise _fail(name, f"must be {RAND_SIZE} octets")
    return binascii.hexlify(value)


def _encode_int(low: int, high: int) -> Callable[[str, int], bytes]:
    def encode(name: str, value: int) -> bytes:
        if type(value) is not int or not low <= value <= high:
            raise _fail(name, f"must be an int in {low}..{high}")
        return b"%d" % value

    return encode


def _encode_status(name: str, value: int) -> bytes:
    if value not in STATUS_CODES:
        raise _fail(name, "not a status code of RFC 6618 §5.5.4")
    return b"%d" % value


def _encode_auth_methods(name: str, value: Iterable[AuthMethod]) -> bytes:
    try:
        methods = tuple(AuthMethod(method) for method in value)
    except ValueError:
        raise _fail(name, "an authentication method is not psk or eap") from None
    if not methods or len(set(methods)) != len(methods):
        raise _fail(name, "must list one or more distinct methods")
    return b",".join(method.value.encode() for method in methods)


def _encode_csuite(name: str, value: bytes) -> bytes:
    if value not in CIPHERSUITES:
        raise _fail(name, "not a ciphersuite code of RFC 6618 §5.6.5")
    return _suite_text(value)


def _encode_suitelist(name: str, value: Iterable[bytes]) -> bytes:
    codes = tuple(value)
    if not codes or len(set(codes)) != len(codes):
        raise _fail(name, "must list one or more distinct ciphersuites")
    return b" ".join(_encode_csuite(name, code) for code in codes)


def _encode_date(name: str, value: datetime) -> bytes:
    if not isinstance(value, datetime) or value.tzinfo is None or value.microsecond:
        raise _fail(name, "must be a timezone-aware datetime in whole seconds")
    value = value.astimezone(timezone.utc)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _WEEKDAYS[value.weekday()], value.day, _MONTHS[value.month - 1], value.year,
        value.hour, value.minute, value.second,
    )


def _encode_nai(name: str, value: str) -> bytes:
    raw = value.encode("utf-8")
    _decode_nai(name, raw)
    return raw


_GROUPS = struct.Struct("!8H")


def _ip6_text(address: ipaddress.IPv6Address) -> bytes:
    """ip6-addr of §5.7: all eight groups, lower-case hex without leading zeros."""
    return b"%x:%x:%x:%x:%x:%x:%x:%x" % _GROUPS.unpack(address.packed)


def _encode_address(cls: type) -> Callable[[str, Any], bytes]:
    text = _ip6_text if cls is ipaddress.IPv6Address else (lambda value: str(value).encode())

    def encode(name: str, value: Any) -> bytes:
        if not isinstance(value, cls):
            raise _fail(name, f"must be an {cls.__name__}")
        return text(value)

    return encode


def _encode_network(cls: type) -> Callable[[str, Any], bytes]:
    text = _ip6_text if cls is ipaddress.IPv6Network else (lambda value: str(value).encode())

    def encode(name: str, value: Any) -> bytes:
        if not isinstance(value, cls) or value.prefixlen > 99:
            raise _fail(name, f"must be an {cls.__name__} with a 1-2 digit prefix length")
        return text(value.network_address) + b"/%d" % value.prefixlen

    return encode


class _Codec(NamedTuple):
    name: str
    prefix: bytes  # b"name:"
    decode: Callable[[str, bytes], Any]
    encode: Callable[[str, Any], bytes]


def _codec(name: str, decode: Callable[[str, bytes], Any],
           encode: Callable[[str, Any], bytes]) -> _Codec:
    return _Codec(name, name.encode() + b":", decode, encode)


_HEX = (_decode_hex, _encode_hex)
_RAND = (_decode_rand, _encode_rand)
_DATE = (_decode_date, _encode_date)
_IP6 = (_decode_address(ipaddress.IPv6Address, socket.AF_INET6),
        _encode_address(ipaddress.IPv6Address))
_IP4 = (_decode_address(ipaddress.IPv4Address, socket.AF_INET),
        _encode_address(ipaddress.IPv4Address))

_CODECS = {
    codec.name: codec
    for codec in (
        _codec(MN_ID, _decode_nai, _encode_nai),
        _codec(AUTH_METHOD, _decode_auth_methods, _encode_auth_methods),
        _codec(EAP_PAYLOAD, *_HEX),
        _codec(STATUS_CODE, _decode_lookup(_STATUS_BY_TEXT), _encode_status),
        _codec(AUTH, *_HEX),
        _codec(RETRY_AFTER, *_DATE),
        _codec(MN_RAND, *_RAND),
        _codec(HAC_RAND, *_RAND),
        _codec(SPI, _decode_spi, _encode_int(SPI_MIN, SPI_MAX)),
        _codec(MN_TO_HA_IKEY, *_HEX),
        _codec(HA_TO_MN_IKEY, *_HEX),
        _codec(MN_TO_HA_EKEY, *_HEX),
        _codec(HA_TO_MN_EKEY, *_HEX),
        _codec(SA_VALIDITY_END, *_DATE),
        _codec(SAS, _decode_lookup(_SAS_BY_TEXT), _encode_int(0, 1)),
        _codec(CIPHERSUITE, _decode_csuite, _encode_csuite),
        _codec(SUITELIST, _decode_suitelist, _encode_suitelist),
        _codec(HAA_IP6, *_IP6),
        _codec(HAA_IP4, *_IP4),
        _codec(PORT, lambda name, raw: _decode_decimal(name, raw, 1, 65_535, 5),
               _encode_int(1, 65_535)),
        _codec(IP6_HOA, *_IP6),
        _codec(IP4_HOA, *_IP4),
        _codec(IP6_HNP, _decode_network(ipaddress.IPv6Network, socket.AF_INET6, 99),
               _encode_network(ipaddress.IPv6Network)),
        _codec(IP4_HNP, _decode_network(ipaddress.IPv4Network, socket.AF_INET, 32),
               _encode_network(ipaddress.IPv4Network)),
        _codec(DNS_IP6, *_IP6),
        _codec(DNS_IP4, *_IP4),
    )
}
_CODECS_BY_WIRE_NAME = {codec.name.encode(): codec for codec in _CODECS.values()}
HEADER_NAMES = frozenset(_CODECS)
"""Every TV-header name this module encodes and decodes."""


def encode_header(name: str, value: Any) -> bytes:
    """One TV-header line, CRLF included; HeaderError if ``value`` is outside its ABNF."""
    codec = _CODECS[name]
    return codec.prefix + codec.encode(name, value) + CRLF


def decode_value(name: str, raw: bytes) -> Any:
    """The typed value of header ``name`` from its wire value (leading SP/HT allowed)."""
    return _CODECS[name].decode(name, raw.lstrip(b" \t"))


def encode_lines(headers: Iterable[tuple[str, Any]]) -> bytes:
    """Header lines for (name, value) pairs, in the order given.

    Append :data:`END_OF_MESSAGE` for a Content without ``auth``, or pass the
    lines to :func:`seal` with the ``auth`` computed over them.
    """
    return b"".join([encode_header(name, value) for name, value in headers])


def seal(signed: bytes, auth: bytes) -> bytes:
    """Content: the header lines ``auth`` covers, the ``auth`` line, end-of-message."""
    return signed + b"auth:" + _encode_hex(AUTH, auth) + _TERMINATOR


def decode_content(content: bytes) -> Content:
    """Parse ``1*(TV-header) end-of-message``, nothing after it, ``auth`` (if any) last.

    Raises :class:`MessageError` for a wrong line structure (missing
    end-of-message, an empty line before it, an unknown or repeated header,
    a line after ``auth``) and :class:`HeaderError` for a bad line or value.
    """
    if not content.endswith(_TERMINATOR):
        raise MessageError("Content does not end with a header line and an empty line")
    headers: dict[str, Any] = {}
    auth: bytes | None = None
    signed_size = len(content) - len(END_OF_MESSAGE)
    position = 0
    codecs = _CODECS_BY_WIRE_NAME
    for line in content[:-len(_TERMINATOR)].split(CRLF):
        if auth is not None:
            raise MessageError("auth must be the last header")
        if not line:
            raise MessageError("Content continues after its end-of-message")
        wire_name, colon, raw = line.partition(b":")
        if not colon:
            raise HeaderError(f"header line {len(headers) + 1} has no ':'")
        codec = codecs.get(wire_name) or codecs.get(wire_name.lower())
        if codec is None:
            raise MessageError(f"header line {len(headers) + 1} has an unknown name")
        name = codec.name
        value = codec.decode(name, raw.lstrip(b" \t"))
        if name == AUTH:
            auth = value
            signed_size = position
        elif name in headers:
            raise MessageError(f"{name} appears twice")
        else:
            headers[name] = value
        position += len(line) + 2
    return Content(headers, content[:signed_size], auth)
