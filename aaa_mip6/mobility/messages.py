"""The Mobility Header: its messages, their options and its checksum.

The Mobility Header checksum covers the RFC 8200 §8.1 pseudo-header of the packet
that would carry it, so the decoder takes the source and destination addresses and
checks the checksum with them. :mod:`aaa_mip6.mobility.payloads` puts a Mobility Header
behind the extension header that carries the home address in RFC 6618 PType 8.

Formats: RFC 6275 §6.1 (Mobility Header, BU, BA, Binding Error), §6.2 (mobility
options and their alignment); RFC 5555 §3.1-3.2 (IPv4 Home Address, IPv4 Address
Acknowledgement and IPv4 Care-of Address options). Every decoder raises only
:class:`MobilityError`.

IPv4 addresses given where an IPv6 address belongs (an IPv4-only home address or
home agent) are used in their IPv4-mapped form ``::ffff:a.b.c.d``, as RFC 5555
does; decoders return that IPv6 form (``.ipv4_mapped`` gives the IPv4 address).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar

from ..addresses import as_ipv6
from ..errors import MobilityError
from ..iana import NEXT_HEADER_MOBILITY, NEXT_HEADER_NONE

MAX_MOBILITY_HEADER_OCTETS = (0xFF + 1) * 8  # Header Len is one octet of 8-octet units
LIFETIME_UNIT_SECONDS = 4  # BU/BA Lifetime and Binding Refresh Advice interval


def lifetime_units(seconds: int) -> int:
    """The wire value (4-second units) for a lifetime, rounded down and capped at 0xFFFF."""
    if seconds < 0:
        raise ValueError("a lifetime cannot be negative")
    return min(seconds // LIFETIME_UNIT_SECONDS, 0xFFFF)


def check_uint(name: str, value: int, bits: int) -> None:
    """ValueError unless ``value`` fits an unsigned field of ``bits`` bits."""
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must fit in {bits} bits, got {value}")


# --------------------------------------------------------------------------- numbers


class MHType(enum.IntEnum):
    """Mobility Header types (RFC 6275 §6.1.2-6.1.9)."""

    BINDING_REFRESH_REQUEST = 0
    HOME_TEST_INIT = 1
    CARE_OF_TEST_INIT = 2
    HOME_TEST = 3
    CARE_OF_TEST = 4
    BINDING_UPDATE = 5
    BINDING_ACKNOWLEDGEMENT = 6
    BINDING_ERROR = 7


class BindingUpdateFlag(enum.IntFlag):
    """Binding Update flags (IANA "Binding Update Flags"); the low 6 bits are reserved."""

    ACKNOWLEDGE = 0x8000  # A, RFC 6275: a Binding Acknowledgement is requested
    HOME_REGISTRATION = 0x4000  # H, RFC 6275: the receiver is to be the home agent
    LINK_LOCAL_COMPATIBILITY = 0x2000  # L, RFC 6275: the home address has the link-local IID
    KEY_MANAGEMENT_COMPATIBILITY = 0x1000  # K, RFC 6275: the SA survives movement
    MAP_REGISTRATION = 0x0800  # M, RFC 5380
    MOBILE_ROUTER = 0x0400  # R, RFC 3963
    PROXY_REGISTRATION = 0x0200  # P, RFC 5213
    FORCE_UDP_ENCAPSULATION = 0x0100  # F, RFC 5555
    TLV_HEADER_FORMAT = 0x0080  # T, RFC 5845
    BULK_BINDING_UPDATE = 0x0040  # B, RFC 6602


class BindingAckFlag(enum.IntFlag):
    """Binding Acknowledgement flags (IANA "Binding Acknowledgment Flags"); low 3 bits reserved."""

    KEY_MANAGEMENT_COMPATIBILITY = 0x80  # K, RFC 6275
    MOBILE_ROUTER = 0x40  # R, RFC 3963
    PROXY_REGISTRATION = 0x20  # P, RFC 5213
    TLV_HEADER_FORMAT = 0x10  # T, RFC 5845
    BULK_BINDING_UPDATE = 0x08  # B, RFC 6602


class BindingAckStatus(enum.IntEnum):
    """Binding Acknowledgement status: every RFC 6275 §6.1.8 value and RFC 6618's 176.

    Values below 128 mean the Binding Update was accepted, 128 and above that it
    was rejected; a value not listed here is kept as a plain int by the parser.
    """

    ACCEPTED = 0
    ACCEPTED_PREFIX_DISCOVERY_NECESSARY = 1
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE = 133
    DUPLICATE_ADDRESS_DETECTION_FAILED = 134
    SEQUENCE_NUMBER_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_CARE_OF_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    INVALID_CARE_OF_ADDRESS = 174
    REINIT_SA_WITH_HAC = 176  # RFC 6618: go back to the HAC for a new SA


class BindingErrorStatus(enum.IntEnum):
    """Binding Error status (RFC 6275 §6.1.9); a value not listed is kept as a plain int."""

    UNKNOWN_BINDING_FOR_HOME_ADDRESS = 1  # no binding for the Home Address option's address
    UNRECOGNIZED_MH_TYPE = 2


class IPv4AckStatus(enum.IntEnum):
    """IPv4 Address Acknowledgement option status (RFC 5555 §3.2.1); < 128 is success."""

    SUCCESS = 0
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INCORRECT_IPV4_HOME_ADDRESS = 130
    INVALID_IPV4_ADDRESS = 131
    DYNAMIC_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_AVAILABLE = 132
    PREFIX_ALLOCATION_UNAUTHORIZED = 133


def known_value(enum_type: type[enum.IntEnum], value: int) -> enum.IntEnum | int:
    """The enum member for a known wire value, else the bare int (kept, not rejected)."""
    try:
        return enum_type(value)
    except ValueError:
        return value


# --------------------------------------------------------------------------- options


class OptionType(enum.IntEnum):
    """Mobility option types this codec understands (IANA "Mobility Options")."""

    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_CARE_OF_ADDRESS = 3
    IPV4_HOME_ADDRESS = 29
    IPV4_ADDRESS_ACKNOWLEDGEMENT = 30
    IPV4_CARE_OF_ADDRESS = 32


def _fixed_length(option: str, data: bytes, length: int) -> None:
    if len(data) != length:
        raise MobilityError(f"{option} option has Length {len(data)}, must be {length}")


@dataclass(frozen=True, slots=True)
class BindingRefreshAdvice:
    """RFC 6275 §6.2.4: when the MN should refresh, in 4-second units; alignment 2n."""

    option_type: ClassVar[int] = OptionType.BINDING_REFRESH_ADVICE
    alignment: ClassVar[tuple[int, int]] = (2, 0)

    interval_units: int

    def __post_init__(self):
        check_uint("refresh interval", self.interval_units, 16)

    @property
    def interval_seconds(self) -> int:
        return self.interval_units * LIFETIME_UNIT_SECONDS

    def data(self) -> bytes:
        return struct.pack("!H", self.interval_units)

    @classmethod
    def from_data(cls, data: bytes) -> BindingRefreshAdvice:
        _fixed_length("Binding Refresh Advice", data, 2)
        return cls(int.from_bytes(data, "big"))


@dataclass(frozen=True, slots=True)
class AlternateCareOfAddress:
    """RFC 6275 §6.2.5: the care-of address to bind instead of the source; alignment 8n+6."""

    option_type: ClassVar[int] = OptionType.ALTERNATE_CARE_OF_ADDRESS
    alignment: ClassVar[tuple[int, int]] = (8, 6)

    address: IPv6Address

    def data(self) -> bytes:
        return self.address.packed

    @classmethod
    def from_data(cls, data: bytes) -> AlternateCareOfAddress:
        _fixed_length("Alternate Care-of Address", data, 16)
        return cls(IPv6Address(data))


_IPV4_PREFIX_SHIFT = 10  # Prefix-len is the top 6 bits of a 16-bit field
_IPV4_HOA_PREFIX_REQUESTED = 0x0200  # P flag, the bit after Prefix-len


@dataclass(frozen=True, slots=True)
class IPv4HomeAddress:
    """RFC 5555 §3.1.1: the IPv4 home address the MN asks for; alignment 4n.

    ``0.0.0.0`` asks the HA to assign one. ``prefix_length`` is 32 for one address;
    ``request_prefix`` (P) asks for a mobile network prefix (RFC 5555 NEMO use).
    """

    option_type: ClassVar[int] = OptionType.IPV4_HOME_ADDRESS
    alignment: ClassVar[tuple[int, int]] = (4, 0)

    address: IPv4Address
    prefix_length: int = 32
    request_prefix: bool = False

    def __post_init__(self):
        if not 0 <= self.prefix_length <= 32:
            raise ValueError(f"IPv4 prefix length must be 0..32, got {self.prefix_length}")

    def data(self) -> bytes:
        word = self.prefix_length << _IPV4_PREFIX_SHIFT
        if self.request_prefix:
            word |= _IPV4_HOA_PREFIX_REQUESTED
        return struct.pack("!H", word) + self.address.packed

    @classmethod
    def from_data(cls, data: bytes) -> IPv4HomeAddress:
        _fixed_length("IPv4 Home Address", data, 6)
        word = int.from_bytes(data[:2], "big")
        prefix_length = _ipv4_prefix_length(word >> _IPV4_PREFIX_SHIFT)
        return cls(IPv4Address(data[2:]), prefix_length, bool(word & _IPV4_HOA_PREFIX_REQUESTED))


def _ipv4_prefix_length(value: int) -> int:
    if value > 32:
        raise MobilityError(f"IPv4 Prefix-len {value} is longer than 32")
    return value


@dataclass(frozen=True, slots=True)
class IPv4AddressAcknowledgement:
    """RFC 5555 §3.2.1: the HA's answer to an IPv4 Home Address option; alignment 4n."""

    option_type: ClassVar[int] = OptionType.IPV4_ADDRESS_ACKNOWLEDGEMENT
    alignment: ClassVar[tuple[int, int]] = (4, 0)

    status: int  # IPv4AckStatus where known
    address: IPv4Address
    prefix_length: int = 32

    def __post_init__(self):
        check_uint("IPv4 acknowledgement status", self.status, 8)
        if not 0 <= self.prefix_length <= 32:
            raise ValueError(f"IPv4 prefix length must be 0..32, got {self.prefix_length}")

    @property
    def accepted(self) -> bool:
        return self.status < 128

    def data(self) -> bytes:
        return bytes([self.status, self.prefix_length << 2]) + self.address.packed

    @classmethod
    def from_data(cls, data: bytes) -> IPv4AddressAcknowledgement:
        _fixed_length("IPv4 Address Acknowledgement", data, 6)
        prefix_length = _ipv4_prefix_length(data[1] >> 2)
        return cls(known_value(IPv4AckStatus, data[0]), IPv4Address(data[2:]), prefix_length)


@dataclass(frozen=True, slots=True)
class IPv4CareOfAddress:
    """RFC 5555 §3.1.2: the MN's IPv4 care-of address; alignment 4n."""

    option_type: ClassVar[int] = OptionType.IPV4_CARE_OF_ADDRESS
    alignment: ClassVar[tuple[int, int]] = (4, 0)

    address: IPv4Address

    def data(self) -> bytes:
        return b"\x00\x00" + self.address.packed

    @classmethod
    def from_data(cls, data: bytes) -> IPv4CareOfAddress:
        _fixed_length("IPv4 Care-of Address", data, 6)
        return cls(IPv4Address(data[2:]))


@dataclass(frozen=True, slots=True)
class UnknownOption:
    """A mobility option this codec does not know, kept as received.

    RFC 6275 §6.2.1: a receiver skips an option it does not understand and goes on
    with the rest of the message. It is kept (not dropped) so the message
    re-encodes to the same options and the HA can count or log it; it is sent
    without alignment padding since its alignment rule is unknown.
    """

    alignment: ClassVar[tuple[int, int]] = (1, 0)

    option_type: int
    value: bytes

    def __post_init__(self):
        check_uint("option type", self.option_type, 8)
        if self.option_type in _OPTION_CLASSES or self.option_type in (
            OptionType.PAD1,
            OptionType.PADN,
        ):
            raise ValueError(f"option type {self.option_type} is a known type")
        check_uint("option length", len(self.value), 8)

    def data(self) -> bytes:
        return self.value


MobilityOption = (
    BindingRefreshAdvice
    | AlternateCareOfAddress
    | IPv4HomeAddress
    | IPv4AddressAcknowledgement
    | IPv4CareOfAddress
    | UnknownOption
)

_OPTION_CLASSES = {
    cls.option_type: cls
    for cls in (
        BindingRefreshAdvice,
        AlternateCareOfAddress,
        IPv4HomeAddress,
        IPv4AddressAcknowledgement,
        IPv4CareOfAddress,
    )
}


def padding(length: int) -> bytes:
    """``length`` octets of padding: Pad1 for one octet, else one PadN (RFC 6275 §6.2.2-6.2.3).

    The same encoding serves IPv6 Destination Options (RFC 8200 §4.2).
    """
    if length == 0:
        return b""
    if length == 1:
        return b"\x00"
    return bytes([OptionType.PADN, length - 2]) + bytes(length - 2)


def aligned_padding(offset: int, alignment: tuple[int, int]) -> bytes:
    """Padding that moves ``offset`` to the next position of the form xn+y."""
    multiple, remainder = alignment
    return padding((remainder - offset) % multiple)


def _encode_options(options: tuple[MobilityOption, ...], offset: int) -> bytes:
    """Options starting at ``offset`` from the start of the Mobility Header, each
    aligned per its rule, then padded so the whole header is a multiple of 8 octets."""
    out = bytearray()
    for option in options:
        out += aligned_padding(offset + len(out), option.alignment)
        data = option.data()
        out += bytes([option.option_type, len(data)]) + data
    out += aligned_padding(offset + len(out), (8, 0))
    return bytes(out)


def walk_options(data: bytes, kind: str) -> Iterator[tuple[int, bytes]]:
    """(type, value) of each type-length-value option in ``data``, padding skipped.

    Mobility options and IPv6 Destination options share this layout and the
    Pad1 (0) / PadN (1) encoding.
    """
    offset = 0
    while offset < len(data):
        option_type = data[offset]
        if option_type == OptionType.PAD1:
            offset += 1
            continue
        if offset + 2 > len(data):
            raise MobilityError(f"{kind} option type {option_type} is cut off before its Length")
        end = offset + 2 + data[offset + 1]
        if end > len(data):
            raise MobilityError(f"{kind} option type {option_type} runs past its header")
        if option_type != OptionType.PADN:
            yield option_type, data[offset + 2 : end]
        offset = end


def _decode_options(data: bytes) -> tuple[MobilityOption, ...]:
    """Parse the option area; padding is dropped, unknown options are kept.

    Alignment is a sender's duty (RFC 6275 §6.2.1) and is not checked on receive.
    """
    options = []
    for option_type, value in walk_options(data, "mobility"):
        option_class = _OPTION_CLASSES.get(option_type)
        if option_class is None:
            options.append(UnknownOption(option_type, value))
        else:
            options.append(option_class.from_data(value))
    return tuple(options)


# --------------------------------------------------------------------------- messages

_MH_FIXED = struct.Struct("!BBBBH")  # Payload Proto, Header Len, MH Type, Reserved, Checksum
_BU_FIXED = struct.Struct("!HHH")  # Sequence, flags + reserved, Lifetime
_BA_FIXED = struct.Struct("!BBHH")  # Status, flags + reserved, Sequence, Lifetime
_BE_FIXED = struct.Struct("!Bx16s")  # Status, Reserved, Home Address


@dataclass(frozen=True, slots=True)
class BindingUpdate:
    """RFC 6275 §6.1.7. ``lifetime_units`` is the wire value (4-second units)."""

    mh_type: ClassVar[int] = MHType.BINDING_UPDATE
    fixed: ClassVar[struct.Struct] = _BU_FIXED

    sequence: int
    lifetime_units: int
    flags: BindingUpdateFlag = BindingUpdateFlag.ACKNOWLEDGE | BindingUpdateFlag.HOME_REGISTRATION
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self):
        check_uint("sequence number", self.sequence, 16)
        check_uint("lifetime", self.lifetime_units, 16)

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime_units * LIFETIME_UNIT_SECONDS

    def body(self) -> bytes:
        return _BU_FIXED.pack(self.sequence, self.flags, self.lifetime_units)

    @classmethod
    def from_body(cls, body: bytes) -> BindingUpdate:
        sequence, flags, lifetime = _BU_FIXED.unpack_from(body)
        options = _decode_options(body[_BU_FIXED.size :])
        return cls(sequence, lifetime, BindingUpdateFlag(flags & _BU_FLAG_BITS), options)


@dataclass(frozen=True, slots=True)
class BindingAck:
    """RFC 6275 §6.1.8. ``status`` is a :class:`BindingAckStatus` where known."""

    mh_type: ClassVar[int] = MHType.BINDING_ACKNOWLEDGEMENT
    fixed: ClassVar[struct.Struct] = _BA_FIXED

    status: int
    sequence: int
    lifetime_units: int
    flags: BindingAckFlag = BindingAckFlag(0)
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self):
        check_uint("status", self.status, 8)
        check_uint("sequence number", self.sequence, 16)
        check_uint("lifetime", self.lifetime_units, 16)

    @property
    def accepted(self) -> bool:
        return self.status < 128

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime_units * LIFETIME_UNIT_SECONDS

    def body(self) -> bytes:
        return _BA_FIXED.pack(self.status, self.flags, self.sequence, self.lifetime_units)

    @classmethod
    def from_body(cls, body: bytes) -> BindingAck:
        status, flags, sequence, lifetime = _BA_FIXED.unpack_from(body)
        options = _decode_options(body[_BA_FIXED.size :])
        return cls(
            known_value(BindingAckStatus, status),
            sequence,
            lifetime,
            BindingAckFlag(flags & _BA_FLAG_BITS),
            options,
        )


@dataclass(frozen=True, slots=True)
class BindingError:
    """RFC 6275 §6.1.9: Status | Reserved | Home Address | options.

    ``status`` is a :class:`BindingErrorStatus` where known; ``home_address`` is the one
    the offending packet named (IPv4-mapped for an IPv4-only MN).
    """

    mh_type: ClassVar[int] = MHType.BINDING_ERROR
    fixed: ClassVar[struct.Struct] = _BE_FIXED

    status: int
    home_address: IPv6Address
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self):
        check_uint("status", self.status, 8)

    def body(self) -> bytes:
        return _BE_FIXED.pack(self.status, self.home_address.packed)

    @classmethod
    def from_body(cls, body: bytes) -> BindingError:
        status, home_address = _BE_FIXED.unpack_from(body)
        options = _decode_options(body[_BE_FIXED.size :])
        return cls(known_value(BindingErrorStatus, status), IPv6Address(home_address), options)


_BU_FLAG_BITS = sum(BindingUpdateFlag)
_BA_FLAG_BITS = sum(BindingAckFlag)
_MESSAGE_CLASSES = {cls.mh_type: cls for cls in (BindingUpdate, BindingAck, BindingError)}

MobilityMessage = BindingUpdate | BindingAck | BindingError


# --------------------------------------------------------------------------- checksum


def mobility_checksum(
    source: IPv4Address | IPv6Address, destination: IPv4Address | IPv6Address, header: bytes
) -> int:
    """RFC 6275 §6.1.1: the checksum of a Mobility Header (Next Header 135).

    Over a header whose Checksum field holds a correct checksum this returns 0.
    """
    return pseudo_header_checksum(source, destination, NEXT_HEADER_MOBILITY, header)


def pseudo_header_checksum(
    source: IPv4Address | IPv6Address,
    destination: IPv4Address | IPv6Address,
    next_header: int,
    payload: bytes,
) -> int:
    """RFC 8200 §8.1: one's complement of the one's complement sum of the pseudo-header
    (source, destination, length, ``next_header``) and ``payload`` (Mobility Header,
    ICMPv6: RFC 4443 §2.3); 0 over a payload whose checksum field is right."""
    pseudo = (
        as_ipv6(source).packed
        + as_ipv6(destination).packed
        + struct.pack("!IxxxB", len(payload), next_header)
    )
    data = pseudo + payload + b"\x00" * (len(payload) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def encode_mobility_header(
    message: MobilityMessage,
    source: IPv4Address | IPv6Address,
    destination: IPv4Address | IPv6Address,
) -> bytes:
    """The whole Mobility Header with its checksum for the given pseudo-header addresses."""
    body = message.body()
    options = _encode_options(message.options, _MH_FIXED.size + len(body))
    length = _MH_FIXED.size + len(body) + len(options)
    if length > MAX_MOBILITY_HEADER_OCTETS:
        raise ValueError(f"Mobility Header of {length} octets exceeds {MAX_MOBILITY_HEADER_OCTETS}")
    header = bytearray(
        _MH_FIXED.pack(NEXT_HEADER_NONE, length // 8 - 1, message.mh_type, 0, 0) + body + options
    )
    header[4:6] = mobility_checksum(source, destination, bytes(header)).to_bytes(2, "big")
    return bytes(header)


def decode_mobility_header(
    data: bytes,
    source: IPv4Address | IPv6Address,
    destination: IPv4Address | IPv6Address,
) -> MobilityMessage:
    """Parse exactly one Mobility Header filling ``data`` and verify its checksum.

    Raises :class:`MobilityError` (reason ``bad-checksum`` or ``unknown-mh-type`` where
    those apply) for anything else. Payload Proto and Reserved are not checked.
    """
    if len(data) < 8:
        raise MobilityError(f"Mobility Header of {len(data)} octets is shorter than 8")
    _, header_len, mh_type, _, _ = _MH_FIXED.unpack_from(data)
    length = (header_len + 1) * 8
    if length != len(data):
        raise MobilityError(f"Mobility Header Len says {length} octets, {len(data)} are there")
    message_class = _MESSAGE_CLASSES.get(mh_type)
    if message_class is None:
        raise MobilityError(
            f"Mobility Header type {mh_type} is not handled", reason="unknown-mh-type"
        )
    needed = _MH_FIXED.size + message_class.fixed.size
    if length < needed:
        raise MobilityError(f"{message_class.__name__} needs {needed} octets, got {length}")
    if mobility_checksum(source, destination, data) != 0:
        raise MobilityError("Mobility Header checksum does not verify", reason="bad-checksum")
    return message_class.from_body(data[_MH_FIXED.size :])
