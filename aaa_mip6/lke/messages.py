"""The LKE Mobility Header messages (draft-liu-mobileip-lke-01 §2.1, §3.2; docs/lke.md).

Five messages: Key Exchange Request and Acknowledgement (MH types of their own), the
Binding Update and Acknowledgement to the previous AR (RFC 6275 §6.1.7-6.1.8 layouts,
MH types 5 and 6) and Finished (a type of its own). Each is the whole Mobility Header,
without the IPv6 header: ``encode(source, destination, ...)`` fills in the checksum for
the IPv6 addresses that will carry it, ``decode(data, source, destination, ...)``
checks it.

The profile's readings (docs/lke.md gives the reasons):

- The address an LBSA is for travels inside the MH in a Care-of Address option (the
  draft's Home Address option and "Destination Address option"): the MN's care-of
  address in the KE Request and Ack, its previous care-of address in the BU, BA and
  Finished. So the MACs cover it, and Linux delivers the packets without xfrm states.
- Every MAC (the KE Ack's HMAC, the BU's, BA's and Finished's authenticator) is carried
  in a Binding Authorization Data option (RFC 6275 §6.2.7, the last option) and is
  HMAC-SHA1(Kbm, source | destination | MH), where MH is the Mobility Header with the
  Checksum field zero and the option's value left out (RFC 6275 §5.2.6's rule). The KE
  Ack carries all 20 octets, the others the first 12 (96 bits).
- The KE Request's Key Exchange Data is as long as the AR key's modulus; its decoder is
  told that length (``key_octets``): nothing else delimits it.
- Unknown mobility options are skipped (RFC 6275 §6.2.1); a known one twice, or a
  required one missing, makes the message malformed.

Every decoder raises only :class:`~aaa_mip6.errors.LkeError` (reason ``malformed``,
``bad-checksum``, ``unknown-mh-type``); ``verify`` raises
:class:`~aaa_mip6.errors.LkeAuthenticationError` (``bad-hmac``).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from ..errors import LkeAuthenticationError, LkeError
from ..iana import NEXT_HEADER_NONE
from ..mobility.messages import (
    LIFETIME_UNIT_SECONDS,
    BindingAckStatus,
    BindingUpdateFlag,
    aligned_padding,
    check_uint,
    known_value,
    mobility_checksum,
)
from .codepoints import BINDING_AUTHORIZATION_DATA, EXPERIMENTAL, CodePoints
from .crypto import AUTHENTICATOR_OCTETS, HMAC_OCTETS, equal, hmac_sha1

MH_BINDING_UPDATE = 5  # RFC 6275 §6.1.7
MH_BINDING_ACK = 6  # RFC 6275 §6.1.8
_HEADER = struct.Struct("!BBBBH")  # Payload Proto, Header Len, MH Type, Reserved, Checksum
_MAX_OCTETS = 256 * 8
_ADDRESS_ALIGNMENT = (8, 6)  # as RFC 6275's Alternate Care-of Address: the address 8-aligned
_LIFETIME_ALIGNMENT = (2, 0)
_FINISHED_REQUEST_ALIGNMENT = (4, 0)  # the nonce 4-aligned
_AUTH_ALIGNMENT = (8, 2)  # RFC 6275 §6.2.7
_FINISHED_REQUEST = struct.Struct("!BxI")  # r bit + Reserved, Nonce
_FINISHED_REQUESTED = 0x80


class KeAckStatus(enum.IntEnum):
    """Key Exchange Acknowledgement status (the draft lists none; docs/lke.md): < 128 accepted."""

    ACCEPTED = 0
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    CARE_OF_NOT_ON_LINK = 131


def _option(option_type: int, value: bytes, offset: int, alignment: tuple[int, int]) -> bytes:
    return aligned_padding(offset, alignment) + bytes([option_type, len(value)]) + value


class _Options:
    """The mobility options of one message: known values by type, and where the Binding
    Authorization Data value sits (for the MAC input)."""

    def __init__(self, data: bytes, start: int, known: set[int]):
        self.values: dict[int, bytes] = {}
        self.auth_span: tuple[int, int] | None = None
        offset = start
        while offset < len(data):
            option_type = data[offset]
            if option_type == 0:  # Pad1
                offset += 1
                continue
            if offset + 2 > len(data) or offset + 2 + data[offset + 1] > len(data):
                raise LkeError(f"mobility option type {option_type} runs past its header")
            end = offset + 2 + data[offset + 1]
            if self.auth_span is not None and option_type != 1:
                raise LkeError("an option follows the Binding Authorization Data option")
            if option_type in known:
                if option_type in self.values:
                    raise LkeError(f"mobility option type {option_type} appears twice")
                self.values[option_type] = data[offset + 2:end]
                if option_type == BINDING_AUTHORIZATION_DATA:
                    self.auth_span = (offset + 2, end)
            offset = end

    def address(self, option_type: int, name: str) -> IPv6Address:
        return IPv6Address(self.required(option_type, name, 16))

    def required(self, option_type: int, name: str, length: int) -> bytes:
        value = self.values.get(option_type)
        if value is None:
            raise LkeError(f"the {name} option is missing")
        if len(value) != length:
            raise LkeError(f"the {name} option has Length {len(value)}, must be {length}")
        return value


def _frame(mh_type: int, body: bytes, source: IPv6Address, destination: IPv6Address) -> bytearray:
    """The Mobility Header around ``body`` (already padded to 8n - 6), checksum filled in."""
    length = _HEADER.size + len(body)
    if length % 8 or length > _MAX_OCTETS:
        raise ValueError(f"a Mobility Header of {length} octets cannot be framed")
    header = bytearray(_HEADER.pack(NEXT_HEADER_NONE, length // 8 - 1, mh_type, 0, 0) + body)
    header[4:6] = mobility_checksum(source, destination, bytes(header)).to_bytes(2, "big")
    return header


def _unframe(data: bytes, mh_type: int, fixed: int, source: IPv6Address,
             destination: IPv6Address) -> None:
    """Check the header of a Mobility Header of ``mh_type`` with ``fixed`` octets after it."""
    if len(data) < 8 or len(data) != (data[1] + 1) * 8:
        raise LkeError(f"Mobility Header Len does not match its {len(data)} octets")
    if data[2] != mh_type:
        raise LkeError(f"MH type {data[2]}, expected {mh_type}", reason="unknown-mh-type")
    if len(data) < _HEADER.size + fixed:
        raise LkeError(f"MH type {mh_type} needs {_HEADER.size + fixed} octets, got {len(data)}")
    if mobility_checksum(source, destination, data) != 0:
        raise LkeError("Mobility Header checksum does not verify", reason="bad-checksum")


def _mac_input(data: bytes | bytearray, span: tuple[int, int], source: IPv6Address,
               destination: IPv6Address) -> bytes:
    """source | destination | the MH with Checksum zero and the MAC value left out."""
    start, end = span
    return (source.packed + destination.packed + bytes(data[:4]) + b"\x00\x00"
            + bytes(data[6:start]) + bytes(data[end:]))


def _sign(body: bytearray, mh_type: int, mac_octets: int, kbm: bytes, source: IPv6Address,
          destination: IPv6Address) -> bytes:
    """Frame ``body`` (ending in a BAD option of ``mac_octets`` zeros), MAC it, checksum it."""
    header = _frame(mh_type, bytes(body), source, destination)
    span = (len(header) - mac_octets, len(header))
    header[span[0]:] = hmac_sha1(kbm, _mac_input(header, span, source, destination))[:mac_octets]
    header[4:6] = b"\x00\x00"
    header[4:6] = mobility_checksum(source, destination, bytes(header)).to_bytes(2, "big")
    return bytes(header)


def _body_with_auth(fixed: bytes, options: bytes, mac_octets: int) -> bytearray:
    """``fixed`` and ``options`` then the BAD option (value zero), padded to 8n."""
    body = bytearray(fixed + options)
    body += _option(BINDING_AUTHORIZATION_DATA, bytes(mac_octets), _HEADER.size + len(body),
                    _AUTH_ALIGNMENT)
    # 8n+2 alignment and a 12- or 20-octet value end the option on an 8-octet boundary,
    # so the MAC is the header's last octets (_sign relies on it)
    assert (_HEADER.size + len(body)) % 8 == 0
    return body


@dataclass(frozen=True, slots=True)
class _Authenticated:
    """What every MAC-carrying message keeps from decoding, for :meth:`verify`."""

    authenticator: bytes
    signed: bytes = field(repr=False)

    def verify(self, kbm: bytes) -> None:
        """Raise :class:`LkeAuthenticationError` unless the MAC is Kbm's."""
        expected = hmac_sha1(kbm, self.signed)[:len(self.authenticator)]
        if not equal(expected, self.authenticator):
            raise LkeAuthenticationError("the MAC does not verify under the LBSA's Kbm")


def _authenticated(data: bytes, options: _Options, mac_octets: int, source: IPv6Address,
                   destination: IPv6Address) -> _Authenticated:
    value = options.required(BINDING_AUTHORIZATION_DATA, "Binding Authorization Data",
                             mac_octets)
    return _Authenticated(value, _mac_input(data, options.auth_span, source, destination))


class _Signed:
    """What the four MAC-carrying messages share: a lifetime in 4-second units and the
    MAC check of a decoded message (``auth``)."""

    __slots__ = ()

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime * LIFETIME_UNIT_SECONDS

    def verify(self, kbm: bytes) -> None:
        """Raise :class:`LkeAuthenticationError` unless the decoded MAC is Kbm's."""
        if self.auth is None:
            raise LkeAuthenticationError("the message was not decoded: no MAC to check")
        self.auth.verify(kbm)


class _Answer(_Signed):
    """A KE Ack or BA: a status below 128 accepts."""

    __slots__ = ()

    @property
    def accepted(self) -> bool:
        return self.status < 128


# --------------------------------------------------------------------------- KE Request


_KE_REQUEST_FIXED = struct.Struct("!H")  # Seq#


@dataclass(frozen=True, slots=True)
class KeyExchangeRequest:
    """Draft §3.2.1, MN -> AR link-local. ``requested_lifetime`` in 4-second units."""

    sequence: int
    care_of: IPv6Address
    requested_lifetime: int
    key_exchange_data: bytes = field(repr=False)

    def __post_init__(self):
        check_uint("sequence number", self.sequence, 16)
        check_uint("requested lifetime", self.requested_lifetime, 16)
        if not self.key_exchange_data or len(self.key_exchange_data) % 8:
            raise ValueError("Key Exchange Data must be a non-empty multiple of 8 octets")

    @property
    def requested_seconds(self) -> int:
        return self.requested_lifetime * LIFETIME_UNIT_SECONDS

    def encode(self, source: IPv6Address, destination: IPv6Address,
               codes: CodePoints = EXPERIMENTAL) -> bytes:
        body = bytearray(_KE_REQUEST_FIXED.pack(self.sequence) + self.key_exchange_data)
        body += _option(codes.requested_lifetime, struct.pack("!H", self.requested_lifetime),
                        _HEADER.size + len(body), _LIFETIME_ALIGNMENT)
        body += _option(codes.care_of_address, self.care_of.packed, _HEADER.size + len(body),
                        _ADDRESS_ALIGNMENT)
        body += aligned_padding(_HEADER.size + len(body), (8, 0))
        return bytes(_frame(codes.ke_request, bytes(body), source, destination))

    @classmethod
    def decode(cls, data: bytes, source: IPv6Address, destination: IPv6Address,
               codes: CodePoints = EXPERIMENTAL, *, key_octets: int) -> KeyExchangeRequest:
        _unframe(data, codes.ke_request, _KE_REQUEST_FIXED.size + key_octets, source,
                 destination)
        (sequence,) = _KE_REQUEST_FIXED.unpack_from(data, _HEADER.size)
        start = _HEADER.size + _KE_REQUEST_FIXED.size
        key_exchange_data = data[start:start + key_octets]
        options = _Options(data, start + key_octets,
                           {codes.requested_lifetime, codes.care_of_address})
        (lifetime,) = struct.unpack(
            "!H", options.required(codes.requested_lifetime, "Requested Lifetime", 2))
        care_of = options.address(codes.care_of_address, "Care-of Address")
        try:
            return cls(sequence, care_of, lifetime, key_exchange_data)
        except ValueError as exc:
            raise LkeError(str(exc)) from None


# --------------------------------------------------------------------------- KE Ack


_KE_ACK_FIXED = struct.Struct("!BxHH")  # Status, Reserved, Seq#, Lifetime


@dataclass(frozen=True, slots=True)
class KeyExchangeAck(_Answer):
    """Draft §3.2.2, AR link-local -> MN link-local; ``lifetime`` (granted, 4-second
    units); ``ar_address`` is the AR's global address, where the BU will go."""

    status: int
    sequence: int
    lifetime: int
    care_of: IPv6Address
    ar_address: IPv6Address
    auth: _Authenticated | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        check_uint("status", self.status, 8)
        check_uint("sequence number", self.sequence, 16)
        check_uint("lifetime", self.lifetime, 16)

    def encode(self, source: IPv6Address, destination: IPv6Address, kbm: bytes,
               codes: CodePoints = EXPERIMENTAL) -> bytes:
        fixed = _KE_ACK_FIXED.pack(self.status, self.sequence, self.lifetime)
        options = _option(codes.ar_address, self.ar_address.packed,
                          _HEADER.size + len(fixed), _ADDRESS_ALIGNMENT)
        options += _option(codes.care_of_address, self.care_of.packed,
                           _HEADER.size + len(fixed) + len(options), _ADDRESS_ALIGNMENT)
        body = _body_with_auth(fixed, options, HMAC_OCTETS)
        return _sign(body, codes.ke_ack, HMAC_OCTETS, kbm, source, destination)

    @classmethod
    def decode(cls, data: bytes, source: IPv6Address, destination: IPv6Address,
               codes: CodePoints = EXPERIMENTAL) -> KeyExchangeAck:
        _unframe(data, codes.ke_ack, _KE_ACK_FIXED.size, source, destination)
        status, sequence, lifetime = _KE_ACK_FIXED.unpack_from(data, _HEADER.size)
        options = _Options(data, _HEADER.size + _KE_ACK_FIXED.size,
                           {codes.ar_address, codes.care_of_address, codes.ke_hmac})
        ar_address = options.address(codes.ar_address, "AR Address")
        care_of = options.address(codes.care_of_address, "Care-of Address")
        auth = _authenticated(data, options, HMAC_OCTETS, source, destination)
        return cls(status, sequence, lifetime, care_of, ar_address, auth)


# --------------------------------------------------------------------------- BU, BA


_BU_FIXED = struct.Struct("!HHH")  # Sequence, flags + Reserved, Lifetime
_BU_FLAG_BITS = 0xFFC0


@dataclass(frozen=True, slots=True)
class LkeBindingUpdate(_Signed):
    """Draft §2.1 (a): new CoA -> previous AR, under the LBSA of ``previous``."""

    sequence: int
    lifetime: int
    previous: IPv6Address
    flags: int = BindingUpdateFlag.ACKNOWLEDGE | BindingUpdateFlag.HOME_REGISTRATION
    auth: _Authenticated | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        check_uint("sequence number", self.sequence, 16)
        check_uint("lifetime", self.lifetime, 16)
        if self.flags & ~_BU_FLAG_BITS & 0xFFFF or not 0 <= self.flags <= 0xFFFF:
            raise ValueError("Binding Update flags must be RFC 6275 flag bits")

    def encode(self, source: IPv6Address, destination: IPv6Address, kbm: bytes,
               codes: CodePoints = EXPERIMENTAL) -> bytes:
        fixed = _BU_FIXED.pack(self.sequence, int(self.flags), self.lifetime)
        options = _option(codes.care_of_address, self.previous.packed,
                          _HEADER.size + len(fixed), _ADDRESS_ALIGNMENT)
        body = _body_with_auth(fixed, options, AUTHENTICATOR_OCTETS)
        return _sign(body, MH_BINDING_UPDATE, AUTHENTICATOR_OCTETS, kbm, source, destination)

    @classmethod
    def decode(cls, data: bytes, source: IPv6Address, destination: IPv6Address,
               codes: CodePoints = EXPERIMENTAL) -> LkeBindingUpdate:
        _unframe(data, MH_BINDING_UPDATE, _BU_FIXED.size, source, destination)
        sequence, flags, lifetime = _BU_FIXED.unpack_from(data, _HEADER.size)
        options = _Options(data, _HEADER.size + _BU_FIXED.size,
                           {codes.care_of_address, BINDING_AUTHORIZATION_DATA})
        previous = options.address(codes.care_of_address, "Care-of Address")
        auth = _authenticated(data, options, AUTHENTICATOR_OCTETS, source, destination)
        return cls(sequence, lifetime, previous, flags & _BU_FLAG_BITS, auth)


_BA_FIXED = struct.Struct("!BBHH")  # Status, flags + Reserved, Sequence, Lifetime


@dataclass(frozen=True, slots=True)
class LkeBindingAck(_Answer):
    """Draft §2.1 (b): previous AR -> new CoA. ``finished_nonce`` set: the Finished Request
    option (draft §3.2.3) with its r bit, asking for a Finished message."""

    status: int
    sequence: int
    lifetime: int
    previous: IPv6Address
    finished_nonce: int | None = None
    auth: _Authenticated | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        check_uint("status", self.status, 8)
        check_uint("sequence number", self.sequence, 16)
        check_uint("lifetime", self.lifetime, 16)
        if self.finished_nonce is not None:
            check_uint("nonce", self.finished_nonce, 32)

    def encode(self, source: IPv6Address, destination: IPv6Address, kbm: bytes,
               codes: CodePoints = EXPERIMENTAL) -> bytes:
        fixed = _BA_FIXED.pack(self.status, 0, self.sequence, self.lifetime)
        options = _option(codes.care_of_address, self.previous.packed,
                          _HEADER.size + len(fixed), _ADDRESS_ALIGNMENT)
        if self.finished_nonce is not None:
            options += _option(codes.finished_request,
                               _FINISHED_REQUEST.pack(_FINISHED_REQUESTED, self.finished_nonce),
                               _HEADER.size + len(fixed) + len(options),
                               _FINISHED_REQUEST_ALIGNMENT)
        body = _body_with_auth(fixed, options, AUTHENTICATOR_OCTETS)
        return _sign(body, MH_BINDING_ACK, AUTHENTICATOR_OCTETS, kbm, source, destination)

    @classmethod
    def decode(cls, data: bytes, source: IPv6Address, destination: IPv6Address,
               codes: CodePoints = EXPERIMENTAL) -> LkeBindingAck:
        _unframe(data, MH_BINDING_ACK, _BA_FIXED.size, source, destination)
        status, _, sequence, lifetime = _BA_FIXED.unpack_from(data, _HEADER.size)
        options = _Options(data, _HEADER.size + _BA_FIXED.size,
                           {codes.care_of_address, codes.finished_request,
                            BINDING_AUTHORIZATION_DATA})
        previous = options.address(codes.care_of_address, "Care-of Address")
        nonce = None
        if codes.finished_request in options.values:
            flags, value = _FINISHED_REQUEST.unpack(options.required(
                codes.finished_request, "Finished Request", _FINISHED_REQUEST.size))
            nonce = value if flags & _FINISHED_REQUESTED else None
        auth = _authenticated(data, options, AUTHENTICATOR_OCTETS, source, destination)
        return cls(known_value(BindingAckStatus, status), sequence, lifetime, previous, nonce, auth)


# --------------------------------------------------------------------------- Finished


_FINISHED_FIXED = struct.Struct("!BxHHI")  # Status, Reserved, Sequence, Lifetime, Nonce


@dataclass(frozen=True, slots=True)
class Finished(_Signed):
    """Draft §3.2.4: new CoA -> previous AR, answering a BA's Finished Request; status,
    sequence, lifetime and nonce are the BA's."""

    status: int
    sequence: int
    lifetime: int
    nonce: int
    previous: IPv6Address
    auth: _Authenticated | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        check_uint("status", self.status, 8)
        check_uint("sequence number", self.sequence, 16)
        check_uint("lifetime", self.lifetime, 16)
        check_uint("nonce", self.nonce, 32)

    def encode(self, source: IPv6Address, destination: IPv6Address, kbm: bytes,
               codes: CodePoints = EXPERIMENTAL) -> bytes:
        fixed = _FINISHED_FIXED.pack(self.status, self.sequence, self.lifetime, self.nonce)
        options = _option(codes.care_of_address, self.previous.packed,
                          _HEADER.size + len(fixed), _ADDRESS_ALIGNMENT)
        body = _body_with_auth(fixed, options, AUTHENTICATOR_OCTETS)
        return _sign(body, codes.finished, AUTHENTICATOR_OCTETS, kbm, source, destination)

    @classmethod
    def decode(cls, data: bytes, source: IPv6Address, destination: IPv6Address,
               codes: CodePoints = EXPERIMENTAL) -> Finished:
        _unframe(data, codes.finished, _FINISHED_FIXED.size, source, destination)
        status, sequence, lifetime, nonce = _FINISHED_FIXED.unpack_from(data, _HEADER.size)
        options = _Options(data, _HEADER.size + _FINISHED_FIXED.size,
                           {codes.care_of_address, BINDING_AUTHORIZATION_DATA})
        previous = options.address(codes.care_of_address, "Care-of Address")
        auth = _authenticated(data, options, AUTHENTICATOR_OCTETS, source, destination)
        return cls(status, sequence, lifetime, nonce, previous, auth)


# --------------------------------------------------------------------------- dispatch

LkeMessage = KeyExchangeRequest | KeyExchangeAck | LkeBindingUpdate | LkeBindingAck | Finished


def mh_type(data: bytes) -> int | None:
    """The MH Type octet of a Mobility Header, None if too short to have one."""
    return data[2] if len(data) >= 3 else None


def decode_mobility(data: bytes, source: IPv6Address, destination: IPv6Address,
                    codes: CodePoints = EXPERIMENTAL, key_octets: int | None = None
                    ) -> LkeMessage:
    """Whichever LKE message ``data`` is; a KE Request only if ``key_octets`` is given."""
    kind = mh_type(data)
    if kind == codes.ke_request and key_octets is not None:
        return KeyExchangeRequest.decode(data, source, destination, codes,
                                         key_octets=key_octets)
    decoder = {codes.ke_ack: KeyExchangeAck, MH_BINDING_UPDATE: LkeBindingUpdate,
               MH_BINDING_ACK: LkeBindingAck, codes.finished: Finished}.get(kind)
    if decoder is None:
        raise LkeError(f"MH type {kind} is not an LKE message here", reason="unknown-mh-type")
    return decoder.decode(data, source, destination, codes)
