"""The Neighbor Discovery messages LKE uses (RFC 4861 §4.1-4.4, draft §3.1; docs/lke.md).

Router Solicitation and Advertisement (the LKE Capability option rides in the RA), and
the Neighbor Solicitation / Advertisement of the AR's authenticated DAD (the DAD
Authentication Request / Reply options). Each message is the ICMPv6 message without the
IPv6 header: ``encode(source, destination, codes, kbm=None)`` fills in the checksum for
those addresses (a raw ICMPv6 socket refills it the same way), ``decode_nd(data, source,
destination, codes)`` checks it.

The profile's readings (docs/lke.md):

- LKE Capability (draft §3.1.1): Type, Length, Maximum Lifetime in seconds (16 bits,
  never 0), then the AR's SubjectPublicKeyInfo DER, then zero octets to the 8-octet
  boundary (the DER's own length says where the key ends).
- DAD Authentication Request and Reply (draft §3.1.2-3.1.3): Type, Length 6, Reserved
  (16 bits), Nonce (32 bits), AR Address, HMAC-SHA1 (20 octets), 4 zero octets. The
  HMAC is HMAC-SHA1(Kbm, source | destination | ICMPv6 message), the message with its
  Checksum zero and the 20 HMAC octets left out: the same rule as the Mobility Header
  MACs (:mod:`aaa_mip6.lke.messages`).
- Options this codec does not know are kept as :class:`UnknownNdOption` (RFC 4861 §4.6:
  a receiver ignores them); a zero Length is malformed (RFC 4861 §4.6).

Every decoder raises only :class:`~aaa_mip6.errors.LkeError`; :func:`verify_dad` raises
:class:`~aaa_mip6.errors.LkeAuthenticationError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from ..errors import LkeAuthenticationError, LkeError
from ..iana import NEXT_HEADER_ICMPV6
from ..mobility.messages import pseudo_header_checksum
from .codepoints import EXPERIMENTAL, CodePoints
from .crypto import HMAC_OCTETS, equal, hmac_sha1

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
SOURCE_LINK_LAYER_ADDRESS = 1
TARGET_LINK_LAYER_ADDRESS = 2
PREFIX_INFORMATION = 3
RA_MANAGED = 0x80
RA_OTHER = 0x40
RA_HOME_AGENT = 0x20  # RFC 6275 §7.1: the H bit
NA_ROUTER = 0x80
NA_SOLICITED = 0x40
NA_OVERRIDE = 0x20
ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
UNSPECIFIED = IPv6Address("::")

_PREFIX = struct.Struct("!BBIII16s")  # Prefix Length, L|A, Valid, Preferred, Reserved2, Prefix
_PREFIX_ON_LINK = 0x80
_PREFIX_AUTONOMOUS = 0x40
_DAD = struct.Struct("!2xI16s20s4x")  # Reserved, Nonce, AR Address, HMAC-SHA1, pad
_DAD_HMAC_AT = 2 + 2 + 4 + 16  # from the option's Type octet
_CAPABILITY = struct.Struct("!H")  # Maximum Lifetime


def solicited_node(address: IPv6Address) -> IPv6Address:
    """RFC 4291 §2.7.1: ff02::1:ffXX:XXXX for ``address``."""
    return IPv6Address(IPv6Address("ff02::1:ff00:0").packed[:13] + address.packed[13:])


def _checksum(source: IPv6Address, destination: IPv6Address, message: bytes) -> int:
    """RFC 4443 §2.3: the ICMPv6 checksum."""
    return pseudo_header_checksum(source, destination, NEXT_HEADER_ICMPV6, message)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class LinkLayerAddress:
    """Source (1) or Target (2) Link-Layer Address option, RFC 4861 §4.6.1."""

    option_type: int
    address: bytes

    def value(self, codes: CodePoints) -> bytes:
        return self.address


@dataclass(frozen=True, slots=True)
class PrefixInformation:
    """RFC 4861 §4.6.2; lifetimes in seconds."""

    prefix: IPv6Network
    valid_lifetime: int = 86400
    preferred_lifetime: int = 14400
    on_link: bool = True
    autonomous: bool = True
    option_type = PREFIX_INFORMATION

    def value(self, codes: CodePoints) -> bytes:
        flags = (_PREFIX_ON_LINK if self.on_link else 0) | (
            _PREFIX_AUTONOMOUS if self.autonomous else 0)
        return _PREFIX.pack(self.prefix.prefixlen, flags, self.valid_lifetime,
                            self.preferred_lifetime, 0, self.prefix.network_address.packed)

    @classmethod
    def decode(cls, value: bytes) -> PrefixInformation:
        if len(value) != _PREFIX.size:
            raise LkeError(f"Prefix Information option of {len(value) + 2} octets, must be 32")
        length, flags, valid, preferred, _, prefix = _PREFIX.unpack(value)
        if length > 128:
            raise LkeError(f"Prefix Length {length} is over 128")
        network = IPv6Network((IPv6Address(prefix), length), strict=False)
        return cls(network, valid, preferred, bool(flags & _PREFIX_ON_LINK),
                   bool(flags & _PREFIX_AUTONOMOUS))


@dataclass(frozen=True, slots=True)
class LkeCapability:
    """Draft §3.1.1: the AR does LKE; ``max_lifetime`` (seconds) bounds an LBSA,
    ``public_key`` is its SubjectPublicKeyInfo DER."""

    max_lifetime: int
    public_key: bytes = field(repr=False)

    def __post_init__(self):
        if not 1 <= self.max_lifetime <= 0xFFFF:
            raise ValueError("the LKE Maximum Lifetime must be 1..65535 seconds")
        if not self.public_key or _der_length(self.public_key) != len(self.public_key):
            raise ValueError("the LKE public key must be one DER element")

    def value(self, codes: CodePoints) -> bytes:
        return _CAPABILITY.pack(self.max_lifetime) + self.public_key

    @classmethod
    def decode(cls, value: bytes) -> LkeCapability:
        if len(value) < _CAPABILITY.size + 2:
            raise LkeError("LKE Capability option too short for a key")
        (max_lifetime,) = _CAPABILITY.unpack_from(value)
        key = value[_CAPABILITY.size:]
        length = _der_length(key)
        if length is None or length > len(key) or any(key[length:]):
            raise LkeError("LKE Capability public key is not one DER element and zero padding")
        try:
            return cls(max_lifetime, key[:length])
        except ValueError as exc:
            raise LkeError(str(exc)) from None


def _der_length(data: bytes) -> int | None:
    """The length of the DER SEQUENCE at the start of ``data`` (tag, length, contents)."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 2 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2:2 + count], "big")


@dataclass(frozen=True, slots=True)
class DadAuthentication:
    """Draft §3.1.2 (in an NS: the Request) and §3.1.3 (in an NA: the Reply).

    ``hmac`` is what was received (decoding) or is computed when the message is encoded.
    """

    nonce: int
    ar_address: IPv6Address
    hmac: bytes = field(default=bytes(HMAC_OCTETS), repr=False)

    def __post_init__(self):
        if not 0 <= self.nonce <= 0xFFFFFFFF:
            raise ValueError("the DAD nonce must fit in 32 bits")
        if len(self.hmac) != HMAC_OCTETS:
            raise ValueError("the DAD HMAC is 20 octets")

    def value(self, codes: CodePoints) -> bytes:
        return _DAD.pack(self.nonce, self.ar_address.packed, self.hmac)

    @classmethod
    def decode(cls, value: bytes) -> DadAuthentication:
        if len(value) != _DAD.size:
            raise LkeError(f"DAD Authentication option of {len(value) + 2} octets, must be 48")
        nonce, ar_address, mac = _DAD.unpack(value)
        return cls(nonce, IPv6Address(ar_address), mac)


@dataclass(frozen=True, slots=True)
class UnknownNdOption:
    """An option this codec does not read, kept as received (value zero-padded to 8n - 2)."""

    option_type: int
    data: bytes

    def value(self, codes: CodePoints) -> bytes:
        return self.data


NdOption = LinkLayerAddress | PrefixInformation | LkeCapability | DadAuthentication | UnknownNdOption


def _option_type(option: NdOption, icmp_type: int, codes: CodePoints) -> int:
    if isinstance(option, LkeCapability):
        return codes.capability
    if isinstance(option, DadAuthentication):
        return codes.dad_request if icmp_type == NEIGHBOR_SOLICITATION else codes.dad_reply
    return option.option_type


def _encode_options(options: tuple[NdOption, ...], icmp_type: int, codes: CodePoints) -> bytes:
    out = bytearray()
    for option in options:
        value = option.value(codes)
        value += bytes(-(len(value) + 2) % 8)
        if len(value) + 2 > 255 * 8:
            raise ValueError("an ND option cannot be over 2040 octets")
        out += bytes([_option_type(option, icmp_type, codes), (len(value) + 2) // 8]) + value
    return bytes(out)


def _decode_options(data: bytes, icmp_type: int, codes: CodePoints) -> tuple[NdOption, ...]:
    options: list[NdOption] = []
    offset = 0
    dad_type = codes.dad_request if icmp_type == NEIGHBOR_SOLICITATION else codes.dad_reply
    while offset < len(data):
        if offset + 2 > len(data):
            raise LkeError("ND option cut off before its Length")
        option_type, units = data[offset], data[offset + 1]
        end = offset + units * 8
        if units == 0 or end > len(data):
            raise LkeError(f"ND option type {option_type} has Length {units}, "
                           f"{len(data) - offset} octets are left")
        value = data[offset + 2:end]
        if option_type in (SOURCE_LINK_LAYER_ADDRESS, TARGET_LINK_LAYER_ADDRESS):
            options.append(LinkLayerAddress(option_type, value))
        elif option_type == PREFIX_INFORMATION and icmp_type == ROUTER_ADVERTISEMENT:
            options.append(PrefixInformation.decode(value))
        elif option_type == codes.capability and icmp_type == ROUTER_ADVERTISEMENT:
            options.append(LkeCapability.decode(value))
        elif option_type == dad_type and icmp_type in (NEIGHBOR_SOLICITATION,
                                                       NEIGHBOR_ADVERTISEMENT):
            options.append(DadAuthentication.decode(value))
        else:
            options.append(UnknownNdOption(option_type, value))
        offset = end
    if sum(isinstance(option, DadAuthentication) for option in options) > 1:
        raise LkeError("more than one DAD Authentication option")
    return tuple(options)


# --------------------------------------------------------------------------- messages


def _option_of(options: tuple[NdOption, ...], kind: type):
    return next((option for option in options if isinstance(option, kind)), None)


class _NdMessage:
    """What the four messages share: options, encoding with a DAD HMAC, the checksum."""

    icmp_type: int
    options: tuple[NdOption, ...]

    def _fixed(self) -> bytes:
        raise NotImplementedError

    def option(self, kind: type):
        """The first option of class ``kind``, or None."""
        return _option_of(self.options, kind)

    def encode(self, source: IPv6Address, destination: IPv6Address,
               codes: CodePoints = EXPERIMENTAL, kbm: bytes | None = None) -> bytes:
        """The ICMPv6 message; a DAD Authentication option gets its HMAC under ``kbm``."""
        message = bytearray(struct.pack("!BBH", self.icmp_type, 0, 0) + self._fixed()
                            + _encode_options(self.options, self.icmp_type, codes))
        span = _dad_span(bytes(message), self.icmp_type, codes)
        if span is not None:
            if kbm is None:
                raise ValueError("a DAD Authentication option needs Kbm")
            message[span[0]:span[1]] = hmac_sha1(kbm, _mac_input(message, span, source,
                                                                 destination))
        message[2:4] = _checksum(source, destination, bytes(message)).to_bytes(2, "big")
        return bytes(message)


def _dad_span(message: bytes, icmp_type: int, codes: CodePoints) -> tuple[int, int] | None:
    """Where the HMAC of the message's DAD Authentication option is, if it has one."""
    if icmp_type not in (NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT):
        return None
    dad_type = codes.dad_request if icmp_type == NEIGHBOR_SOLICITATION else codes.dad_reply
    offset = 24  # Type, Code, Checksum, Reserved or flags, Target Address
    while offset + 2 <= len(message) and message[offset + 1]:
        if message[offset] == dad_type:
            start = offset + _DAD_HMAC_AT
            return start, start + HMAC_OCTETS
        offset += message[offset + 1] * 8
    return None


def _mac_input(message: bytes | bytearray, span: tuple[int, int], source: IPv6Address,
               destination: IPv6Address) -> bytes:
    start, end = span
    return (source.packed + destination.packed + bytes(message[:2]) + b"\x00\x00"
            + bytes(message[4:start]) + bytes(message[end:]))


@dataclass(frozen=True, slots=True)
class RouterSolicitation(_NdMessage):
    """RFC 4861 §4.1."""

    options: tuple[NdOption, ...] = ()
    icmp_type = ROUTER_SOLICITATION

    def _fixed(self) -> bytes:
        return bytes(4)


_RA_FIXED = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RouterAdvertisement(_NdMessage):
    """RFC 4861 §4.2 (``flags``: M, O, H and the rest of that octet)."""

    router_lifetime: int
    flags: int = RA_HOME_AGENT
    hop_limit: int = 64
    reachable_time: int = 0
    retrans_timer: int = 0
    options: tuple[NdOption, ...] = ()
    icmp_type = ROUTER_ADVERTISEMENT

    def _fixed(self) -> bytes:
        return _RA_FIXED.pack(self.hop_limit, self.flags, self.router_lifetime,
                              self.reachable_time, self.retrans_timer)

    @property
    def home_agent(self) -> bool:
        return bool(self.flags & RA_HOME_AGENT)


@dataclass(frozen=True, slots=True)
class NeighborSolicitation(_NdMessage):
    """RFC 4861 §4.3."""

    target: IPv6Address
    options: tuple[NdOption, ...] = ()
    icmp_type = NEIGHBOR_SOLICITATION

    def _fixed(self) -> bytes:
        return bytes(4) + self.target.packed


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement(_NdMessage):
    """RFC 4861 §4.4 (``flags``: R, S, O)."""

    target: IPv6Address
    flags: int = NA_OVERRIDE
    options: tuple[NdOption, ...] = ()
    icmp_type = NEIGHBOR_ADVERTISEMENT

    def _fixed(self) -> bytes:
        return bytes([self.flags & 0xE0, 0, 0, 0]) + self.target.packed


NdMessage = RouterSolicitation | RouterAdvertisement | NeighborSolicitation | NeighborAdvertisement


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded ND message and, if it carries a DAD Authentication option, the octets its
    HMAC covers (for :func:`verify_dad`)."""

    message: NdMessage
    signed: bytes | None = field(default=None, repr=False)


def decode_nd(data: bytes, source: IPv6Address, destination: IPv6Address,
              codes: CodePoints = EXPERIMENTAL) -> Decoded:
    """An RS, RA, NS or NA; :class:`LkeError` for anything else or a bad checksum."""
    if len(data) < 4:
        raise LkeError("ICMPv6 message shorter than 4 octets")
    icmp_type, code = data[0], data[1]
    fixed = {ROUTER_SOLICITATION: 4, ROUTER_ADVERTISEMENT: _RA_FIXED.size,
             NEIGHBOR_SOLICITATION: 20, NEIGHBOR_ADVERTISEMENT: 20}.get(icmp_type)
    if fixed is None:
        raise LkeError(f"ICMPv6 type {icmp_type} is not a Neighbor Discovery message here",
                       reason="not-nd")
    if code != 0:
        raise LkeError(f"ICMPv6 Code {code} in type {icmp_type}, must be 0")
    if len(data) < 4 + fixed:
        raise LkeError(f"ICMPv6 type {icmp_type} of {len(data)} octets is too short")
    if _checksum(source, destination, data) != 0:
        raise LkeError("ICMPv6 checksum does not verify", reason="bad-checksum")
    options = _decode_options(data[4 + fixed:], icmp_type, codes)
    body = data[4:4 + fixed]
    if icmp_type == ROUTER_SOLICITATION:
        message: NdMessage = RouterSolicitation(options)
    elif icmp_type == ROUTER_ADVERTISEMENT:
        hop_limit, flags, lifetime, reachable, retrans = _RA_FIXED.unpack(body)
        message = RouterAdvertisement(lifetime, flags, hop_limit, reachable, retrans, options)
    elif icmp_type == NEIGHBOR_SOLICITATION:
        message = NeighborSolicitation(IPv6Address(body[4:]), options)
    else:
        message = NeighborAdvertisement(IPv6Address(body[4:]), body[0] & 0xE0, options)
    span = _dad_span(data, icmp_type, codes)
    signed = None if span is None else _mac_input(data, span, source, destination)
    return Decoded(message, signed)


def verify_dad(decoded: Decoded, kbm: bytes) -> DadAuthentication:
    """The message's DAD Authentication option if its HMAC is Kbm's, else
    :class:`LkeAuthenticationError` (also when it has no such option)."""
    option = decoded.message.option(DadAuthentication)
    if option is None or decoded.signed is None:
        raise LkeAuthenticationError("no DAD Authentication option")
    if not equal(hmac_sha1(kbm, decoded.signed), option.hmac):
        raise LkeAuthenticationError("the DAD Authentication HMAC does not verify")
    return option
