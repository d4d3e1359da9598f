"""RFC 6618 PType 8 payloads: the IPv6 extension header that carries the home address,
then a Mobility Header (:mod:`aaa_mip6.mobility.messages`).

RFC 6618 §6 carries Mobile IPv6 signaling inside its own protected packets,
without an IPv6 header: MN->HA is a Destination Options header holding the Home
Address option, then the Mobility Header with the Binding Update; HA->MN is a
type 2 Routing header holding the home address, then the Mobility Header with
the Binding Acknowledgement or a Binding Error (spec notes §6; docs/protocol.md).
The Mobility Header checksum still covers the pseudo-header of the packet that
would carry it, so the decoders take the home agent's address and check it.

Formats: RFC 6275 §6.3 (Home Address option), §6.4 (type 2 Routing header). Every
decoder raises only :class:`~aaa_mip6.errors.MobilityError`.

IPv4 addresses given where an IPv6 address belongs (an IPv4-only home address or
home agent) are used in their IPv4-mapped form ``::ffff:a.b.c.d``, as RFC 5555
does; decoders return that IPv6 form (``.ipv4_mapped`` gives the IPv4 address).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ..addresses import as_ipv6
from ..errors import MobilityError
from ..iana import NEXT_HEADER_DESTINATION_OPTIONS, NEXT_HEADER_MOBILITY, NEXT_HEADER_ROUTING
from .messages import (
    BindingAck,
    BindingError,
    BindingUpdate,
    MobilityMessage,
    aligned_padding,
    decode_mobility_header,
    encode_mobility_header,
    walk_options,
)


# --------------------------------------------------------------------------- IPv6 extension headers

HOME_ADDRESS_OPTION_TYPE = 201  # RFC 6275 §6.3, alignment 8n+6
_HOME_ADDRESS_ALIGNMENT = (8, 6)
_EXTENSION_HEADER_OCTETS = 24  # both headers carrying one address: Hdr Ext Len 2
_ROUTING_TYPE_2 = struct.Struct("!BBBB4x16s")  # Next Header, Hdr Ext Len, Type, Segments Left


def encode_home_address_destination_options(
    home_address: IPv4Address | IPv6Address, next_header: int = NEXT_HEADER_MOBILITY
) -> bytes:
    """A Destination Options header with the Home Address option, padded to 8n+6."""
    options = aligned_padding(2, _HOME_ADDRESS_ALIGNMENT)
    options += bytes([HOME_ADDRESS_OPTION_TYPE, 16]) + as_ipv6(home_address).packed
    options += aligned_padding(2 + len(options), (8, 0))
    return bytes([next_header, (2 + len(options)) // 8 - 1]) + options


def decode_home_address_destination_options(data: bytes) -> tuple[int, IPv6Address, int]:
    """Parse the Destination Options header at the start of ``data``.

    Returns (next header, home address, header length in octets). Exactly one Home
    Address option is required. Other unknown options are skipped when their type's
    two high bits say "skip" (RFC 8200 §4.2), otherwise the header is rejected.
    """
    if len(data) < 2:
        raise MobilityError("Destination Options header is shorter than 2 octets")
    length = (data[1] + 1) * 8
    if length > len(data):
        raise MobilityError(f"Destination Options header of {length} octets is cut off")
    home_address = None
    for option_type, value in walk_options(data[2:length], "destination"):
        if option_type == HOME_ADDRESS_OPTION_TYPE:
            if home_address is not None:
                raise MobilityError("more than one Home Address option")
            if len(value) != 16:
                raise MobilityError(f"Home Address option has Length {len(value)}, must be 16")
            home_address = IPv6Address(value)
        elif option_type >> 6 != 0:
            raise MobilityError(
                f"unrecognised destination option type {option_type} must not be skipped"
            )
    if home_address is None:
        raise MobilityError("Destination Options header without a Home Address option")
    return data[0], home_address, length


def encode_type2_routing_header(
    home_address: IPv4Address | IPv6Address, next_header: int = NEXT_HEADER_MOBILITY
) -> bytes:
    """The type 2 Routing header (RFC 6275 §6.4): Segments Left 1, the home address."""
    return _ROUTING_TYPE_2.pack(next_header, 2, 2, 1, as_ipv6(home_address).packed)


def decode_type2_routing_header(data: bytes) -> tuple[int, IPv6Address, int]:
    """Parse the type 2 Routing header at the start of ``data``.

    Returns (next header, home address, header length in octets).
    """
    if len(data) < _ROUTING_TYPE_2.size:
        raise MobilityError(f"type 2 Routing header needs 24 octets, got {len(data)}")
    next_header, header_len, routing_type, segments_left, address = _ROUTING_TYPE_2.unpack_from(
        data
    )
    if routing_type != 2:
        raise MobilityError(f"Routing Type is {routing_type}, expected 2")
    if header_len != 2:
        raise MobilityError(f"type 2 Routing header has Hdr Ext Len {header_len}, must be 2")
    if segments_left != 1:
        raise MobilityError(f"type 2 Routing header has Segments Left {segments_left}, must be 1")
    return next_header, IPv6Address(address), _ROUTING_TYPE_2.size


# --------------------------------------------------------------------------- PType 8 payloads


@dataclass(frozen=True)
class _Signaling:
    """One direction of PType 8 signaling: the extension header that carries the home
    address in front of the Mobility Header, and the message that must follow it."""

    name: str
    next_header: int
    header_name: str
    encode_header: Callable[[IPv4Address | IPv6Address], bytes]
    decode_header: Callable[[bytes], tuple[int, IPv6Address, int]]
    message_type: type | tuple[type, ...]
    message_name: str
    from_mn: bool

    def addresses(self, home_address, home_agent) -> tuple:
        """(source, destination) of the Mobility Header's pseudo-header."""
        return (home_address, home_agent) if self.from_mn else (home_agent, home_address)

    def encode(self, home_address, home_agent, message) -> tuple[int, bytes]:
        payload = self.encode_header(home_address)
        payload += encode_mobility_header(message, *self.addresses(home_address, home_agent))
        return self.next_header, payload

    def decode(self, next_header: int, payload: bytes, home_agent) -> tuple[IPv6Address, object]:
        if next_header != self.next_header:
            raise MobilityError(
                f"{self.name} signaling must start with {self.header_name}, got {next_header}"
            )
        inner, home_address, offset = self.decode_header(payload)
        message = _decode_inner(inner, payload[offset:],
                                *self.addresses(home_address, home_agent))
        if not isinstance(message, self.message_type):
            raise MobilityError(f"{self.name} signaling carries no {self.message_name}")
        return home_address, message


_MN_TO_HA = _Signaling(
    "MN->HA", NEXT_HEADER_DESTINATION_OPTIONS, "Destination Options",
    encode_home_address_destination_options, decode_home_address_destination_options,
    BindingUpdate, "Binding Update", from_mn=True,
)
_HA_TO_MN = _Signaling(
    "HA->MN", NEXT_HEADER_ROUTING, "a Routing header",
    encode_type2_routing_header, decode_type2_routing_header,
    BindingAck, "Binding Acknowledgement", from_mn=False,
)


# What an MN may receive: the HA sends a Binding Error behind the same Routing header.
_HA_TO_MN_ANY = dataclasses.replace(
    _HA_TO_MN, message_type=(BindingAck, BindingError),
    message_name="Binding Acknowledgement or Binding Error",
)


def encode_binding_update_payload(
    home_address: IPv4Address | IPv6Address,
    home_agent: IPv4Address | IPv6Address,
    update: BindingUpdate,
) -> tuple[int, bytes]:
    """MN->HA PType 8 payload: (Next Header 60, Destination Options + Mobility Header)."""
    return _MN_TO_HA.encode(home_address, home_agent, update)


def decode_binding_update_payload(
    next_header: int, payload: bytes, home_agent: IPv4Address | IPv6Address
) -> tuple[IPv6Address, BindingUpdate]:
    """HA side: the home address and the Binding Update, checksum checked against it."""
    return _MN_TO_HA.decode(next_header, payload, home_agent)


def encode_binding_ack_payload(
    home_address: IPv4Address | IPv6Address,
    home_agent: IPv4Address | IPv6Address,
    ack: BindingAck,
) -> tuple[int, bytes]:
    """HA->MN PType 8 payload: (Next Header 43, type 2 Routing header + Mobility Header)."""
    return _HA_TO_MN.encode(home_address, home_agent, ack)


def decode_binding_ack_payload(
    next_header: int, payload: bytes, home_agent: IPv4Address | IPv6Address
) -> tuple[IPv6Address, BindingAck]:
    """MN side: the home address and the Binding Acknowledgement, checksum checked.

    The pseudo-header is that of the packet the HA would send: source the HA,
    destination the home address (the final destination of the Routing header).
    """
    return _HA_TO_MN.decode(next_header, payload, home_agent)


def encode_binding_error_payload(
    home_address: IPv4Address | IPv6Address,
    home_agent: IPv4Address | IPv6Address,
    error: BindingError,
) -> tuple[int, bytes]:
    """HA->MN PType 8 payload: (Next Header 43, type 2 Routing header + Binding Error).

    The same chain and pseudo-header as a Binding Acknowledgement, so the MN reads both
    the same way (docs/protocol.md, "PType 8 payloads").
    """
    return _HA_TO_MN.encode(home_address, home_agent, error)


def decode_home_agent_payload(
    next_header: int, payload: bytes, home_agent: IPv4Address | IPv6Address
) -> tuple[IPv6Address, BindingAck | BindingError]:
    """MN side: the home address and the Binding Acknowledgement or Binding Error."""
    return _HA_TO_MN_ANY.decode(next_header, payload, home_agent)


def _decode_inner(
    next_header: int,
    data: bytes,
    source: IPv4Address | IPv6Address,
    destination: IPv4Address | IPv6Address,
) -> MobilityMessage:
    if next_header != NEXT_HEADER_MOBILITY:
        raise MobilityError(f"extension header is followed by {next_header}, not a Mobility Header")
    return decode_mobility_header(data, source, destination)
