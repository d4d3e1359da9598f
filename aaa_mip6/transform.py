"""The MN-HA packet transform of RFC 6618 §6 (Figures 6-9), sans-I/O.

::

    |PType(4)|SPI(28)|  Sequence Number(32)  |  IV (CBC suites)  |
    |  Payload ... Padding 1,2,3,... | Pad Length | Next Header |  ICV(12) |

The ICV covers everything from PType up to Next Header (after encryption, as in
ESP, RFC 4303 §3.3.4). PType 0 packets carry SPI 0, Sequence 0 and the bare
payload, nothing else; SPI 0 is used with PType 0 and with nothing else.

Receiving checks the ICV before it decrypts or looks at the padding, so a forged
packet costs one MAC and reveals nothing about the plaintext (RFC 4303 §3.4.4).

CBC runs through one long-lived `cryptography` context per SA direction and
operation instead of a new ``Cipher`` per packet (which costs several times the AES
work on a 1400-octet packet). Each call starts with one throw-away block, so no call
depends on the one before:

- decrypting, the packet's IV block goes in first: its output (garbage, dropped) is
  chained from the previous packet, and every later block is chained from the IV,
  which is exactly CBC with that IV;
- encrypting, a fresh random block R goes in first and its output, E(R xor the
  previous block), becomes the IV: uniformly random and unpredictable because R is
  (RFC 3602 §2.2; NIST SP 800-38A appendix C derives IVs by encrypting under the
  same key), and every later block is chained from it.
"""

from __future__ import annotations

import enum
import functools
import os
import struct
from hmac import compare_digest
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from .errors import ConfigError, IntegrityError, PacketError
from .replay import DEFAULT_WINDOW, SEQ_LIMIT, ReplayWindow
from .sa import SCOPE_ALL, SCOPE_SIGNALING, SPI_MAX, SPI_MIN, SecurityAssociation
from .suites import ICV_LENGTH, SUITES, CipherSuite


class PType(enum.IntEnum):
    """RFC 6618 Packet Type registry."""

    PLAIN = 0
    ENCRYPTED_IP = 1
    MOBILITY = 8


PROTECTED = frozenset((PType.ENCRYPTED_IP, PType.MOBILITY))
_PLAIN = PType.PLAIN  # a module global is cheaper to reach than an enum member, per packet
_PTYPES = {ptype.value: ptype for ptype in PType}
_HEADER = struct.Struct("!II")
HEADER_LENGTH = _HEADER.size
_SPI_BITS = 28
_SPI_MASK = (1 << _SPI_BITS) - 1
_TRAILER_LENGTH = 2  # Pad Length, Next Header
# RFC 4303 §2.4 default padding: 1, 2, 3, ...; index = Pad Length.
_PADDING = tuple(bytes(range(1, length + 1)) for length in range(256))

# Ask for a new SA when fewer outbound sequence numbers than this remain.
DEFAULT_REKEY_MARGIN = 1 << 28


class SequenceExhausted(Exception):
    """The outbound counter used every 32-bit number: the SA must be replaced."""


class PacketHeader(NamedTuple):
    """The clear header of a received packet, as :func:`peek` reads it (not yet authenticated)."""

    ptype: PType
    spi: int
    seq: int


# PacketHeader(...) without NamedTuple's Python-level __new__: one per received packet.
_packet_header = functools.partial(tuple.__new__, PacketHeader)


class Unprotected(NamedTuple):
    """A received packet once verified: ``next_header`` is None for PType 0.

    A NamedTuple rather than a frozen dataclass: it is built once per packet, and
    costs a fifth as much.
    """

    ptype: PType
    spi: int
    seq: int
    payload: bytes
    next_header: int | None


def peek(packet) -> PacketHeader:
    """Read the header without any key, so the HA can find the SA first.

    Nothing here is authenticated yet; it only rejects headers no SA could accept.
    """
    if len(packet) < HEADER_LENGTH:
        raise PacketError(f"packet of {len(packet)} octets is shorter than its header")
    word, seq = _HEADER.unpack_from(packet)
    ptype = _PTYPES.get(word >> _SPI_BITS)
    if ptype is None:
        raise PacketError(f"unknown PType {word >> _SPI_BITS}")
    spi = word & _SPI_MASK
    if (ptype is _PLAIN) != (spi == 0):
        raise PacketError(f"PType {ptype.value} with SPI {spi}: SPI 0 goes with PType 0 only")
    if seq and ptype is _PLAIN:
        raise PacketError("PType 0 packet with a non-zero sequence number")
    return _packet_header((ptype, spi, seq))


def encode_plain(payload) -> bytes:
    """A PType 0 packet: SPI 0, Sequence 0, then the tunneled packet as it is."""
    return bytes(HEADER_LENGTH) + bytes(payload)


def decode_plain(packet) -> bytes:
    """The tunneled packet of a PType 0 packet."""
    ptype, _, _ = peek(packet)
    if ptype is not PType.PLAIN:
        raise PacketError(f"expected PType 0, got {ptype.value}", reason="wrong-ptype")
    return bytes(packet[HEADER_LENGTH:])


class Sealer:
    """One direction of one SA: protects with, and verifies against, that direction's keys.

    The sender of the direction calls :meth:`protect`, the receiver :meth:`unprotect`.
    Sequence numbers and anti-replay belong to :class:`SaEndpoint`. Its CBC contexts are
    stateful: one thread at a time, as with the SA's sequence numbers.
    """

    __slots__ = ("suite", "spi", "_icv", "_algorithm", "_encrypt", "_decrypt", "_block",
                 "_iv_length", "_min_length")

    def __init__(self, suite: CipherSuite, spi: int, ikey: bytes, ekey: bytes):
        if not SPI_MIN <= spi <= SPI_MAX:
            raise ConfigError(f"SPI {spi} is outside {SPI_MIN}..{SPI_MAX}")
        self.suite = suite
        self.spi = spi
        self._icv, _ = suite.keyed(ikey, ekey)  # checks both key sizes; CBC is chained below
        self._block = suite.block_size
        self._iv_length = suite.iv_length
        self._min_length = HEADER_LENGTH + self._iv_length + self._block + ICV_LENGTH
        if self._iv_length:
            self._algorithm = suite.confidentiality.algorithm(ekey)
            # Made on first use (~0.8 kB each): an HA never encrypts inbound or decrypts outbound.
            self._encrypt = self._decrypt = None
        else:
            self._algorithm = None
            self._encrypt = self._decrypt = bytes  # NULL: the octets as they are

    def __repr__(self) -> str:
        return f"Sealer(suite={self.suite.name}, spi={self.spi})"

    def _chained(self) -> Cipher:
        """CBC under this direction's key; its contexts live as long as the Sealer."""
        return Cipher(self._algorithm, modes.CBC(bytes(self._iv_length)))

    def protect(self, ptype: PType, seq: int, payload, next_header: int) -> bytes:
        """Encrypt ``payload`` and its trailer, prepend header and IV, append the ICV."""
        if ptype not in PROTECTED:
            raise ValueError(f"PType {ptype} is not a protected packet type")
        if not 0 <= seq < SEQ_LIMIT:
            raise ValueError(f"sequence number {seq} is not a 32-bit number")
        pad_length = -(len(payload) + _TRAILER_LENGTH) % self._block
        trailer = _PADDING[pad_length] + bytes((pad_length, next_header))
        encrypt = self._encrypt
        if encrypt is None:
            encrypt = self._encrypt = self._chained().encryptor().update
        # IV and body in one call: the IV is the output of the random first block.
        sealed = encrypt(b"".join((os.urandom(self._iv_length), payload, trailer)))
        signed = _HEADER.pack(ptype << _SPI_BITS | self.spi, seq) + sealed
        return signed + self._icv(signed)

    def unprotect(self, packet) -> Unprotected:
        """Verify the ICV, then decrypt and check the padding; only PType 1 and 8."""
        payload, next_header = self.open(packet)
        word, seq = _HEADER.unpack_from(packet)
        ptype = _PTYPES.get(word >> _SPI_BITS)
        if ptype not in PROTECTED:
            raise PacketError(f"PType {word >> _SPI_BITS} is not a protected packet type")
        if word & _SPI_MASK != self.spi:
            raise PacketError(f"SPI {word & _SPI_MASK} is not this SA's", reason="wrong-spi")
        return Unprotected(ptype, self.spi, seq, payload, next_header)

    def open(self, packet) -> tuple[bytes, int]:
        """(payload, next header): verify the ICV, then decrypt and check the padding.

        The header is only covered by the ICV here, not read: :meth:`unprotect` and
        :class:`SaEndpoint` check it.
        """
        size = len(packet)
        if size < self._min_length:
            raise PacketError(f"protected packet of {size} octets is too short")
        if (size - self._min_length) % self._block:
            raise PacketError(f"encrypted part is not a multiple of {self._block} octets")
        view = memoryview(packet)
        signed_end = size - ICV_LENGTH
        if not compare_digest(self._icv(view[:signed_end]), view[signed_end:]):
            raise IntegrityError(f"ICV of a {size}-octet packet does not verify")
        decrypt = self._decrypt
        if decrypt is None:
            decrypt = self._decrypt = self._chained().decryptor().update
        # IV and body in one call: the IV block's own output is dropped.
        plain = decrypt(view[HEADER_LENGTH:signed_end])
        pad_length = plain[-2]
        payload_end = len(plain) - _TRAILER_LENGTH - pad_length
        if payload_end < self._iv_length or (
            plain[payload_end:-_TRAILER_LENGTH] != _PADDING[pad_length]
        ):
            raise PacketError("padding is not 1, 2, 3, ... (RFC 4303 §2.4)", reason="bad-padding")
        return plain[self._iv_length:payload_end], plain[-1]


_ALLOWED_PTYPES = {
    SCOPE_SIGNALING: frozenset((PType.MOBILITY, PType.PLAIN)),
    SCOPE_ALL: PROTECTED,
}
ROLES = ("mn", "ha")


class SaEndpoint:
    """An SA as one end (``"mn"`` or ``"ha"``) uses it.

    It sends with its own direction's keys and a counter whose first value is 0,
    receives with the peer's keys behind an anti-replay window, and enforces the
    SA's scope: signaling only (mobility protected, data plain) or signaling and
    data (everything protected). A received packet outside the scope is refused
    with reason "wrong-ptype" so the HA can count it.
    """

    def __init__(
        self,
        sa: SecurityAssociation,
        role: str,
        *,
        window_size: int = DEFAULT_WINDOW,
        rekey_margin: int = DEFAULT_REKEY_MARGIN,
        next_sequence: int = 0,
    ):
        suite = SUITES.get(sa.suite)
        if suite is None:
            raise ConfigError(f"SA {sa.spi} names an unknown ciphersuite {sa.suite!r}")
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if sa.scope not in _ALLOWED_PTYPES:
            raise ConfigError(f"SA {sa.spi} has an unknown scope {sa.scope!r}")
        if not 0 <= next_sequence <= SEQ_LIMIT:
            raise ValueError(f"next_sequence {next_sequence} is outside 0..2**32")
        mn_to_ha = Sealer(suite, sa.spi, sa.mn_to_ha_ikey, sa.mn_to_ha_ekey)
        ha_to_mn = Sealer(suite, sa.spi, sa.ha_to_mn_ikey, sa.ha_to_mn_ekey)
        if role == "mn":
            self._outbound, self._inbound = mn_to_ha, ha_to_mn
        else:
            self._outbound, self._inbound = ha_to_mn, mn_to_ha
        self.spi = sa.spi
        self.role = role
        self.replay = ReplayWindow(window_size)
        self.rekey_margin = rekey_margin
        self._allowed = _ALLOWED_PTYPES[sa.scope]
        self._next_sequence = next_sequence

    def __repr__(self) -> str:
        return (
            f"SaEndpoint(spi={self.spi}, role={self.role}, "
            f"suite={self._outbound.suite.name}, next_sequence={self._next_sequence})"
        )

    @property
    def next_sequence(self) -> int:
        """The number the next protected packet will carry (persist it to resume)."""
        return self._next_sequence

    @property
    def sequence_remaining(self) -> int:
        """How many protected packets may still be sent under this SA."""
        return SEQ_LIMIT - self._next_sequence

    @property
    def near_wrap(self) -> bool:
        """True once fewer than ``rekey_margin`` numbers remain: time for REINIT_SA_WITH_HAC."""
        return self.sequence_remaining < self.rekey_margin

    def protect(self, ptype: PType, payload, next_header: int | None = None) -> bytes:
        """The packet to send; PType 0 takes no next header and uses no sequence number."""
        if ptype not in self._allowed:
            raise ValueError(f"PType {ptype} is outside this SA's scope")
        if ptype == PType.PLAIN:
            if next_header is not None:
                raise ValueError("a PType 0 packet has no next header")
            return encode_plain(payload)
        if self._next_sequence >= SEQ_LIMIT:
            raise SequenceExhausted(f"SA {self.spi} has used every sequence number")
        packet = self._outbound.protect(ptype, self._next_sequence, payload, next_header)
        self._next_sequence += 1
        return packet

    def unprotect(self, packet, header: PacketHeader | None = None) -> Unprotected:
        """Check scope and replay, verify, then advance the window; PType 0 passes as is.

        ``header`` is what :func:`peek` returned for this packet, when the caller has it.
        """
        header = header or peek(packet)
        ptype, spi, seq = header
        if ptype is _PLAIN and ptype in self._allowed:
            return Unprotected(ptype, 0, 0, bytes(packet[HEADER_LENGTH:]), None)
        return Unprotected(ptype, spi, seq, *self.open(packet, header))

    def open(self, packet, header: PacketHeader) -> tuple[bytes, int]:
        """:meth:`unprotect` of a protected packet as (payload, next header), no wrapper:
        :meth:`verify`, then advance the window."""
        opened = self.verify(packet, header)
        self.replay.accept(header.seq)
        return opened

    def verify(self, packet, header: PacketHeader) -> tuple[bytes, int]:
        """(payload, next header) of a protected packet: scope, replay check, ICV, decryption.

        The window is left as it was: the HA calls ``replay.accept(seq)`` only once it
        keeps the packet, so a verified packet it drops after all moves nothing.
        ``header`` is what :func:`peek` returned (the HA peeks to find the SA).
        """
        ptype, spi, seq = header
        if ptype not in self._allowed:
            raise PacketError(
                f"PType {ptype.value} is outside this SA's scope", reason="wrong-ptype"
            )
        if spi != self.spi:
            raise PacketError(f"SPI {spi} is not this SA's", reason="wrong-spi")
        self.replay.check(seq)
        return self._inbound.open(packet)
