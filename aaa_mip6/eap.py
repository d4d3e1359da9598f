"""EAP packet codec (RFC 3748 §4): the part the HAC, the AAA clients and the MN share.

The HAC relays EAP packets opaquely, but it must know a packet's code (to spot
Success and Failure) and reject packets whose header lies about their length.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import InvalidInput


class EapError(InvalidInput):
    """An EAP packet that breaks RFC 3748 §4."""


class Code(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class Type(enum.IntEnum):
    """EAP method types (IANA "Method Types") this project knows."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    GTC = 6
    TLS = 13
    TTLS = 21
    PEAP = 25
    MSCHAPV2 = 26
    PWD = 52


_HEADER = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class EapPacket:
    """One EAP packet; ``type`` and ``data`` are None/empty for Success and Failure."""

    code: Code
    identifier: int
    type: int | None = None
    data: bytes = b""

    def encode(self) -> bytes:
        if self.code in (Code.SUCCESS, Code.FAILURE):
            return _HEADER.pack(self.code, self.identifier, 4)
        if self.type is None:
            raise ValueError("Request and Response packets need a type")
        return _HEADER.pack(self.code, self.identifier, 5 + len(self.data)) + bytes(
            [self.type]
        ) + self.data


def decode(packet: bytes) -> EapPacket:
    """Parse one whole EAP packet; raise :class:`EapError` on anything malformed."""
    if len(packet) < 4:
        raise EapError(f"EAP packet of {len(packet)} octets is shorter than its 4-octet header")
    code, identifier, length = _HEADER.unpack_from(packet)
    if length != len(packet):
        raise EapError(f"EAP Length field says {length} octets, packet has {len(packet)}")
    try:
        code = Code(code)
    except ValueError:
        raise EapError(f"unknown EAP code {code}") from None
    if code in (Code.SUCCESS, Code.FAILURE):
        if length != 4:
            raise EapError(f"EAP {code.name} must be 4 octets, got {length}")
        return EapPacket(code, identifier)
    if length < 5:
        raise EapError(f"EAP {code.name} without a Type octet")
    return EapPacket(code, identifier, packet[4], bytes(packet[5:]))
