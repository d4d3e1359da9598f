"""MS-CHAPv2 crypto (RFC 2759 §8) and its MPPE keys (RFC 3079 §3): shared by EAP-MSCHAPv2
and the MSCHAPv2 inside TTLS and PEAP.

OpenSSL 3 has MD4 only in its legacy provider, so the NT password hash uses the
small MD4 below (RFC 1320); DES comes from cryptography's TripleDES with K1=K2=K3.
Passwords are ``str`` and hashed as UTF-16LE, as Windows does.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

CHALLENGE_LENGTH = 16
NT_RESPONSE_LENGTH = 24
SESSION_KEY_LENGTH = 16

_SIGNING_MAGIC = b"Magic server to client signing constant"
_PAD_MAGIC = b"Pad to make it do more than one iteration"
_MASTER_KEY_MAGIC = b"This is the MPPE Master Key"
_CLIENT_SEND_MAGIC = (b"On the client side, this is the send key; "
                      b"on the server side, it is the receive key.")
_CLIENT_RECEIVE_MAGIC = (b"On the client side, this is the receive key; "
                         b"on the server side, it is the send key.")
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


# --- MD4 (RFC 1320) ---------------------------------------------------------------------

def _rotl(value: int, shift: int) -> int:
    value &= 0xFFFFFFFF
    return ((value << shift) | (value >> (32 - shift))) & 0xFFFFFFFF


def _md4_block(state: list[int], block: bytes) -> list[int]:
    x = struct.unpack("<16I", block)
    a, b, c, d = state
    for i in (0, 4, 8, 12):  # round 1: F, no constant
        a = _rotl(a + ((b & c) | (~b & d)) + x[i], 3)
        d = _rotl(d + ((a & b) | (~a & c)) + x[i + 1], 7)
        c = _rotl(c + ((d & a) | (~d & b)) + x[i + 2], 11)
        b = _rotl(b + ((c & d) | (~c & a)) + x[i + 3], 19)
    for i in (0, 1, 2, 3):  # round 2: G, 0x5A827999
        a = _rotl(a + ((b & c) | (b & d) | (c & d)) + x[i] + 0x5A827999, 3)
        d = _rotl(d + ((a & b) | (a & c) | (b & c)) + x[i + 4] + 0x5A827999, 5)
        c = _rotl(c + ((d & a) | (d & b) | (a & b)) + x[i + 8] + 0x5A827999, 9)
        b = _rotl(b + ((c & d) | (c & a) | (d & a)) + x[i + 12] + 0x5A827999, 13)
    for i in (0, 2, 1, 3):  # round 3: H, 0x6ED9EBA1
        a = _rotl(a + (b ^ c ^ d) + x[i] + 0x6ED9EBA1, 3)
        d = _rotl(d + (a ^ b ^ c) + x[i + 8] + 0x6ED9EBA1, 9)
        c = _rotl(c + (d ^ a ^ b) + x[i + 4] + 0x6ED9EBA1, 11)
        b = _rotl(b + (c ^ d ^ a) + x[i + 12] + 0x6ED9EBA1, 15)
    return [(s + v) & 0xFFFFFFFF for s, v in zip(state, (a, b, c, d))]


def md4(data: bytes) -> bytes:
    """The MD4 digest of ``data`` (RFC 1320)."""
    padded = data + b"\x80" + bytes((55 - len(data)) % 64) + struct.pack("<Q", 8 * len(data))
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(padded), 64):
        state = _md4_block(state, padded[offset:offset + 64])
    return struct.pack("<4I", *state)


# --- RFC 2759 §8 --------------------------------------------------------------------------

def _des_key(seven: bytes) -> bytes:
    """Spread 56 key bits over 8 octets (the low parity bit of each octet left 0)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _des_encrypt(block: bytes, seven: bytes) -> bytes:
    key = _des_key(seven)
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash: MD4 of the UTF-16LE password."""
    return md4(password.encode("utf-16-le"))


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    return md4(password_hash)


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: bytes) -> bytes:
    """ChallengeHash: the 8-octet challenge both NT-Response and authenticator use."""
    return hashlib.sha1(peer_challenge + authenticator_challenge + username).digest()[:8]


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse: three DES encryptions of the challenge under the padded hash."""
    key = password_hash + bytes(21 - len(password_hash))
    return b"".join(_des_encrypt(challenge, key[i:i + 7]) for i in (0, 7, 14))


def generate_nt_response(authenticator_challenge: bytes, peer_challenge: bytes,
                         username: bytes, password: str) -> bytes:
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return challenge_response(challenge, nt_password_hash(password))


def generate_authenticator_response(password: str, nt_response: bytes, peer_challenge: bytes,
                                    authenticator_challenge: bytes, username: bytes) -> str:
    """The server's proof, ``"S="`` and 40 upper-case hex digits."""
    password_hash_hash = hash_nt_password_hash(nt_password_hash(password))
    digest = hashlib.sha1(password_hash_hash + nt_response + _SIGNING_MAGIC).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + _PAD_MAGIC).digest()
    return "S=" + digest.hex().upper()


def check_authenticator_response(received: bytes, password: str, nt_response: bytes,
                                 peer_challenge: bytes, authenticator_challenge: bytes,
                                 username: bytes) -> bool:
    """True if ``received`` (the 42 octets ``S=<hex>``) proves the server knows the password."""
    expected = generate_authenticator_response(
        password, nt_response, peer_challenge, authenticator_challenge, username)
    return hmac.compare_digest(received.upper(), expected.encode("ascii"))


# --- RFC 3079 §3.4 ------------------------------------------------------------------------

def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    return hashlib.sha1(password_hash_hash + nt_response + _MASTER_KEY_MAGIC).digest()[:16]


def asymmetric_start_key(master: bytes, length: int, *, is_send: bool, is_server: bool) -> bytes:
    magic = _CLIENT_SEND_MAGIC if is_send != is_server else _CLIENT_RECEIVE_MAGIC
    return hashlib.sha1(master + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:length]


def peer_msk(password: str, nt_response: bytes) -> bytes:
    """The 32-octet EAP-MSCHAPv2 MSK on the peer side.

    It is the peer's send key || its receive key, which is what the server puts
    into MS-MPPE-Recv-Key || MS-MPPE-Send-Key (hostapd and FreeRADIUS agree).
    """
    master = master_key(hash_nt_password_hash(nt_password_hash(password)), nt_response)
    return (asymmetric_start_key(master, SESSION_KEY_LENGTH, is_send=True, is_server=False)
            + asymmetric_start_key(master, SESSION_KEY_LENGTH, is_send=False, is_server=False))
