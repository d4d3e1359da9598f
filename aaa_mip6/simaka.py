"""What EAP-SIM (RFC 4186), EAP-AKA (RFC 4187) and EAP-AKA' (RFC 5448, RFC 9048) share:
the message and AT_* attribute codec, AT_MAC, AT_ENCR_DATA, and the key derivations.

Sans-I/O. A message is the Type-Data of an EAP packet of one of the three types: Subtype,
two reserved octets, then attributes (RFC 4186 §8.1). Attributes are kept in wire order as
(type, value) pairs; ``value`` is everything after the Type and Length octets, so each
attribute's own layout (reserved octets, actual-length fields) is read by the helpers below.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .eap import EapError

# EAP method types (IANA).
EAP_SIM = 18
EAP_AKA = 23
EAP_AKA_PRIME = 50


class Subtype(enum.IntEnum):
    AKA_CHALLENGE = 1
    AKA_AUTHENTICATION_REJECT = 2
    AKA_SYNCHRONIZATION_FAILURE = 4
    AKA_IDENTITY = 5
    SIM_START = 10
    SIM_CHALLENGE = 11
    NOTIFICATION = 12
    REAUTHENTICATION = 13
    CLIENT_ERROR = 14


class At(enum.IntEnum):
    """Attribute types (RFC 4186 §11, RFC 4187 §11, RFC 5448 §3, RFC 9048 §4)."""

    RAND = 1
    AUTN = 2
    RES = 3
    AUTS = 4
    PADDING = 6
    NONCE_MT = 7
    PERMANENT_ID_REQ = 10
    MAC = 11
    NOTIFICATION = 12
    ANY_ID_REQ = 13
    IDENTITY = 14
    VERSION_LIST = 15
    SELECTED_VERSION = 16
    FULLAUTH_ID_REQ = 17
    COUNTER = 19
    COUNTER_TOO_SMALL = 20
    NONCE_S = 21
    CLIENT_ERROR_CODE = 22
    KDF_INPUT = 23
    KDF = 24
    IV = 129
    ENCR_DATA = 130
    NEXT_PSEUDONYM = 132
    NEXT_REAUTH_ID = 133
    CHECKCODE = 134
    RESULT_IND = 135
    BIDDING = 136


SKIPPABLE = 128  # attribute types from 128 up may be ignored when unknown (RFC 4186 §8.1)
MAC_SIZE = 16
NONCE_SIZE = 16
KDF_AKA_PRIME = 1  # AT_KDF value: RFC 5448 §3.3's key derivation
BIDDING_SUPPORTS_AKA_PRIME = 0x8000  # AT_BIDDING D bit (RFC 9048 §4)


class ClientError(enum.IntEnum):
    """AT_CLIENT_ERROR_CODE values (RFC 4186 §10.19)."""

    UNABLE_TO_PROCESS = 0
    UNSUPPORTED_VERSION = 1
    INSUFFICIENT_CHALLENGES = 2
    RANDS_NOT_FRESH = 3


class SimAkaError(EapError):
    """A SIM/AKA message or attribute that breaks its RFC."""


@dataclass
class Message:
    """One EAP-SIM/AKA/AKA' message: the Subtype and its attributes in wire order."""

    subtype: int
    attributes: list[tuple[int, bytes]] = field(default_factory=list)

    def get(self, kind: int) -> bytes | None:
        """The value of the one attribute of ``kind``, None if absent; twice is an error."""
        values = [value for attribute, value in self.attributes if attribute == kind]
        if len(values) > 1:
            raise SimAkaError(f"attribute {_name(kind)} appears {len(values)} times")
        return values[0] if values else None

    def has(self, kind: int) -> bool:
        return self.get(kind) is not None

    def add(self, kind: int, value: bytes) -> "Message":
        if (2 + len(value)) % 4:
            raise ValueError(f"{_name(kind)}: value of {len(value)} octets is not 4n+2")
        self.attributes.append((kind, value))
        return self

    def encode(self) -> bytes:
        out = bytearray(struct.pack("!BH", self.subtype, 0))
        for kind, value in self.attributes:
            out += bytes([kind, (2 + len(value)) // 4]) + value
        return bytes(out)


def _name(kind: int) -> str:
    try:
        return f"AT_{At(kind).name}"
    except ValueError:
        return f"attribute {kind}"


def decode(type_data: bytes, known: frozenset[int] = frozenset(At)) -> Message:
    """Parse Type-Data; an unknown non-skippable attribute is an error, a skippable one is
    dropped (RFC 4186 §8.1). Raises :class:`SimAkaError`."""
    if len(type_data) < 3:
        raise SimAkaError(f"SIM/AKA message of {len(type_data)} octets: no Subtype and Reserved")
    message = Message(type_data[0])
    offset = 3
    while offset < len(type_data):
        if offset + 2 > len(type_data):
            raise SimAkaError("truncated attribute header")
        kind, length = type_data[offset], type_data[offset + 1] * 4
        if length == 0:
            raise SimAkaError(f"{_name(kind)} with length 0")
        if offset + length > len(type_data):
            raise SimAkaError(f"{_name(kind)} of {length} octets overruns the message")
        value = bytes(type_data[offset + 2:offset + length])
        if kind in known:
            message.attributes.append((kind, value))
        elif kind < SKIPPABLE:
            raise SimAkaError(f"unknown non-skippable attribute {kind}")
        offset += length
    return message


# --- attribute layouts ---------------------------------------------------------------------

def fixed(message: Message, kind: int, size: int) -> bytes | None:
    """A value of two reserved octets and ``size`` octets (AT_RAND of AKA, AT_AUTN, AT_MAC,
    AT_NONCE_MT, AT_NONCE_S, AT_IV), or None if absent."""
    value = message.get(kind)
    if value is None:
        return None
    if len(value) != 2 + size:
        raise SimAkaError(f"{_name(kind)} of {len(value)} octets, expected {2 + size}")
    return value[2:]


def fixed_value(data: bytes) -> bytes:
    """The value of a reserved-octets-then-data attribute."""
    return bytes(2) + data


def short(message: Message, kind: int) -> int | None:
    """A 16-bit value attribute (AT_COUNTER, AT_NOTIFICATION, AT_KDF, AT_SELECTED_VERSION,
    AT_CLIENT_ERROR_CODE, AT_RESULT_IND's reserved, AT_BIDDING)."""
    value = message.get(kind)
    if value is None:
        return None
    if len(value) != 2:
        raise SimAkaError(f"{_name(kind)} of {len(value)} octets, expected 2")
    return struct.unpack("!H", value)[0]


def short_value(number: int) -> bytes:
    return struct.pack("!H", number)


def counted(value: bytes, kind: int, unit_bits: bool = False) -> bytes:
    """The data of an actual-length attribute (AT_IDENTITY, AT_VERSION_LIST, AT_KDF_INPUT,
    AT_NEXT_PSEUDONYM, AT_NEXT_REAUTH_ID; AT_RES counts bits)."""
    if len(value) < 2:
        raise SimAkaError(f"{_name(kind)} without its length field")
    length = struct.unpack_from("!H", value)[0]
    if unit_bits:
        if length % 8:
            raise SimAkaError(f"{_name(kind)} of {length} bits is not whole octets")
        length //= 8
    if length > len(value) - 2:
        raise SimAkaError(f"{_name(kind)} says {length} octets, holds {len(value) - 2}")
    return value[2:2 + length]


def counted_value(data: bytes, unit_bits: bool = False) -> bytes:
    padding = -(len(data) + 4) % 4
    return struct.pack("!H", len(data) * 8 if unit_bits else len(data)) + data + bytes(padding)


# --- AT_MAC (RFC 4186 §10.14, RFC 5448 §3.4) -----------------------------------------------

def _eap_packet(code: int, identifier: int, eap_type: int, type_data: bytes) -> bytes:
    return struct.pack("!BBHB", code, identifier, 5 + len(type_data), eap_type) + type_data


def _zeroed_mac(message: Message) -> bytes:
    zeroed = Message(message.subtype, [(kind, fixed_value(bytes(MAC_SIZE)) if kind == At.MAC
                                        else value) for kind, value in message.attributes])
    return zeroed.encode()


def mac(k_aut: bytes, eap_type: int, code: int, identifier: int, message: Message,
        extra: bytes = b"") -> bytes:
    """AT_MAC over the whole EAP packet with the MAC value zeroed, then ``extra``:
    HMAC-SHA1-128 for SIM and AKA, HMAC-SHA-256-128 for AKA'."""
    digest = hashlib.sha256 if eap_type == EAP_AKA_PRIME else hashlib.sha1
    packet = _eap_packet(code, identifier, eap_type, _zeroed_mac(message))
    return hmac.new(k_aut, packet + extra, digest).digest()[:MAC_SIZE]


def sign(k_aut: bytes, eap_type: int, code: int, identifier: int, message: Message,
         extra: bytes = b"") -> Message:
    """Add AT_MAC to ``message`` (last) and fill it in."""
    message.add(At.MAC, fixed_value(bytes(MAC_SIZE)))
    value = mac(k_aut, eap_type, code, identifier, message, extra)
    message.attributes[-1] = (At.MAC, fixed_value(value))
    return message


def verify(k_aut: bytes, eap_type: int, code: int, identifier: int, message: Message,
           extra: bytes = b"") -> None:
    """Check AT_MAC; SimAkaError when it is missing or wrong."""
    received = fixed(message, At.MAC, MAC_SIZE)
    if received is None:
        raise SimAkaError("AT_MAC missing", reason="bad-mac")
    if not hmac.compare_digest(received, mac(k_aut, eap_type, code, identifier, message, extra)):
        raise SimAkaError("AT_MAC does not verify", reason="bad-mac")


# --- AT_ENCR_DATA (RFC 4186 §10.12) --------------------------------------------------------

def decrypt(k_encr: bytes, message: Message) -> Message | None:
    """The attributes inside AT_ENCR_DATA (AES-128-CBC, IV from AT_IV), or None if absent."""
    encrypted = message.get(At.ENCR_DATA)
    if encrypted is None:
        return None
    iv = fixed(message, At.IV, 16)
    if iv is None:
        raise SimAkaError("AT_ENCR_DATA without AT_IV")
    data = encrypted[2:]
    if len(data) % 16:
        raise SimAkaError("AT_ENCR_DATA is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(k_encr), modes.CBC(iv)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    return decode(bytes(3) + plain)


def encrypt(k_encr: bytes, iv: bytes, inner: Message, message: Message) -> Message:
    """Add AT_IV and AT_ENCR_DATA holding ``inner``'s attributes, padded with AT_PADDING."""
    plain = inner.encode()[3:]
    pad = -len(plain) % 16
    if pad:
        plain += bytes([At.PADDING, pad // 4]) + bytes(pad - 2)
    encryptor = Cipher(algorithms.AES(k_encr), modes.CBC(iv)).encryptor()
    message.add(At.IV, fixed_value(iv))
    return message.add(At.ENCR_DATA, bytes(2) + encryptor.update(plain) + encryptor.finalize())


# --- key derivation ------------------------------------------------------------------------

def fips186_prf(key: bytes, length: int) -> bytes:
    """FIPS 186-2 change notice 1 random number generator with the SHA-1 G function, as
    RFC 4186 §7 and RFC 4187 §7 use it (XSEED = MK, no optional input)."""
    xkey = int.from_bytes(key, "big")
    out = bytearray()
    while len(out) < length:
        for _ in range(2):
            xval = xkey.to_bytes(20, "big")
            w = _sha1_g(xval)
            out += w
            xkey = (1 + xkey + int.from_bytes(w, "big")) % (1 << 160)
    return bytes(out[:length])


def _sha1_g(block: bytes) -> bytes:
    """SHA-1's compression function over ``block`` padded with zeros to 64 octets, without
    the final length padding (FIPS 186-2 Appendix 3.3)."""
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    w = list(struct.unpack("!16I", block + bytes(64 - len(block))))
    for t in range(16, 80):
        x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]
        w.append(((x << 1) | (x >> 31)) & 0xFFFFFFFF)
    a, b, c, d, e = h
    for t in range(80):
        if t < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif t < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif t < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        temp = (((a << 5) | (a >> 27)) + f + e + k + w[t]) & 0xFFFFFFFF
        a, b, c, d, e = temp, a, ((b << 30) | (b >> 2)) & 0xFFFFFFFF, c, d
    return struct.pack("!5I", *((x + y) & 0xFFFFFFFF for x, y in zip(h, (a, b, c, d, e))))


@dataclass(frozen=True)
class Keys:
    """The method's keys (K_re only for AKA'). Never log one."""

    k_encr: bytes
    k_aut: bytes
    msk: bytes
    emsk: bytes
    k_re: bytes = b""
    mk: bytes = b""  # SIM/AKA: kept for fast re-authentication

    def __repr__(self) -> str:
        return "Keys(<hidden>)"


def keys_from_mk(mk: bytes) -> Keys:
    """SIM and AKA: K_encr, K_aut, MSK, EMSK from the FIPS PRF over MK (RFC 4186 §7)."""
    stream = fips186_prf(mk, 160)
    return Keys(stream[:16], stream[16:32], stream[32:96], stream[96:160], mk=mk)


def sim_mk(identity: bytes, kcs: list[bytes], nonce_mt: bytes, version_list: bytes,
           selected_version: bytes) -> bytes:
    """RFC 4186 §7: MK = SHA1(Identity | n*Kc | NONCE_MT | Version List | Selected Version)."""
    return hashlib.sha1(identity + b"".join(kcs) + nonce_mt + version_list
                        + selected_version).digest()


def aka_mk(identity: bytes, ik: bytes, ck: bytes) -> bytes:
    """RFC 4187 §7: MK = SHA1(Identity | IK | CK)."""
    return hashlib.sha1(identity + ik + ck).digest()


def reauth_keys(identity: bytes, counter: int, nonce_s: bytes,
                mk: bytes) -> tuple[bytes, bytes, bytes]:
    """SIM/AKA fast re-authentication (RFC 4186 §7): (XKEY', MSK, EMSK)."""
    xkey = hashlib.sha1(identity + struct.pack("!H", counter) + nonce_s + mk).digest()
    stream = fips186_prf(xkey, 128)
    return xkey, stream[:64], stream[64:]


def prf_prime(key: bytes, seed: bytes, length: int) -> bytes:
    """PRF' of RFC 5448 §3.4.1: HMAC-SHA-256 in counter mode."""
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(key, block + seed + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def ck_ik_prime(ck: bytes, ik: bytes, network_name: bytes,
                sqn_xor_ak: bytes) -> tuple[bytes, bytes]:
    """(CK', IK') of RFC 5448 §3.3 / TS 33.402 Annex A.2: FC 0x20, P0 the access network
    name, P1 SQN xor AK."""
    s = (b"\x20" + network_name + struct.pack("!H", len(network_name))
         + sqn_xor_ak + struct.pack("!H", len(sqn_xor_ak)))
    out = hmac.new(ck + ik, s, hashlib.sha256).digest()
    return out[:16], out[16:]


def aka_prime_keys(ck_prime: bytes, ik_prime: bytes, identity: bytes) -> Keys:
    """RFC 5448 §3.3: MK = PRF'(IK'|CK', "EAP-AKA'"|Identity) split into K_encr, K_aut,
    K_re, MSK, EMSK."""
    mk = prf_prime(ik_prime + ck_prime, b"EAP-AKA'" + identity, 208)
    return Keys(k_encr=mk[:16], k_aut=mk[16:48], k_re=mk[48:80], msk=mk[80:144],
                emsk=mk[144:208])


def aka_prime_reauth_keys(k_re: bytes, identity: bytes, counter: int,
                          nonce_s: bytes) -> tuple[bytes, bytes]:
    """RFC 5448 §3.3: (MSK, EMSK) of a fast re-authentication."""
    stream = prf_prime(k_re, b"EAP-AKA' re-auth" + identity + struct.pack("!H", counter)
                       + nonce_s, 128)
    return stream[:64], stream[64:]


def checkcode(eap_type: int, identity_packets: list[bytes]) -> bytes:
    """AT_CHECKCODE value (RFC 4187 §10.13): empty when no AKA-Identity round took place,
    else the hash of those EAP packets (SHA-1; SHA-256 for AKA')."""
    if not identity_packets:
        return bytes(2)
    digest = hashlib.sha256 if eap_type == EAP_AKA_PRIME else hashlib.sha1
    return bytes(2) + digest(b"".join(identity_packets)).digest()
