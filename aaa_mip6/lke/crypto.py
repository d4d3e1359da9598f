"""The LKE's cryptography (docs/lke.md, "Cryptography"), through the ``cryptography`` library.

- The AR's key is RSA (draft §4.1), advertised as a SubjectPublicKeyInfo DER in the LKE
  Capability option. The draft recommends 1024 bits; this profile generates 2048 and an
  MN accepts 2048..4096 by default.
- Kbm travels RSA-OAEP encrypted (MGF1 and hash SHA-256), with the care-of address the
  LBSA is for as the OAEP label: a Key Exchange Request whose Care-of Address option was
  changed on the way does not decrypt.
- Every MAC is HMAC-SHA1 under Kbm (draft §1.1, RFC 2104); the BU, BA and Finished carry
  its first 96 bits (RFC 6275 §5.2.6), the KE Ack and the DAD options all 160.
"""

from __future__ import annotations

import hmac
from hashlib import sha1
from ipaddress import IPv6Address

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import LkeKeyExchangeError, LkePublicKeyError
from .lbsa import KBM_OCTETS

DEFAULT_KEY_BITS = 2048
MIN_KEY_BITS = 2048
MAX_KEY_BITS = 4096
HMAC_OCTETS = 20
AUTHENTICATOR_OCTETS = 12  # RFC 6275 §5.2.6: the first 96 bits of the HMAC
_PUBLIC_EXPONENT = 65537


def _oaep(care_of: IPv6Address) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()),
                        algorithm=hashes.SHA256(), label=care_of.packed)


def generate_key(bits: int = DEFAULT_KEY_BITS) -> rsa.RSAPrivateKey:
    """A new AR key pair (bits a multiple of 64, so the ciphertext fills whole 8-octet units)."""
    if bits % 64 or not MIN_KEY_BITS // 2 <= bits <= MAX_KEY_BITS:
        raise ValueError(f"RSA key size must be a multiple of 64 in 1024..{MAX_KEY_BITS}")
    return rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=bits)


def encode_public_key(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """The SubjectPublicKeyInfo DER the LKE Capability option carries."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def decode_public_key(der: bytes, min_bits: int = MIN_KEY_BITS,
                      max_bits: int = MAX_KEY_BITS) -> rsa.RSAPublicKey:
    """An advertised key: RSA, ``min_bits``..``max_bits``, a multiple of 64 bits."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise LkePublicKeyError("the LKE public key is not a SubjectPublicKeyInfo DER") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise LkePublicKeyError("the LKE public key is not an RSA key")
    if not min_bits <= key.key_size <= max_bits or key.key_size % 64:
        raise LkePublicKeyError(
            f"the LKE RSA key has {key.key_size} bits, accepted: {min_bits}..{max_bits}")
    return key


def encode_private_key(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the shell writes it 0600)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def decode_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """A key written by :func:`encode_private_key`; ValueError if it is not an RSA key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the AR key is not an RSA key")
    return key


def wrap_kbm(public_key: rsa.RSAPublicKey, kbm: bytes, care_of: IPv6Address) -> bytes:
    """The Key Exchange Data: Kbm under RSA-OAEP-SHA256, labelled with the care-of address."""
    if len(kbm) != KBM_OCTETS:
        raise ValueError(f"Kbm must be {KBM_OCTETS} octets")
    return public_key.encrypt(kbm, _oaep(care_of))


def unwrap_kbm(private_key: rsa.RSAPrivateKey, data: bytes, care_of: IPv6Address) -> bytes:
    """Kbm from Key Exchange Data, or :class:`LkeKeyExchangeError` (nothing more is said:
    no oracle on why it failed)."""
    try:
        kbm = private_key.decrypt(data, _oaep(care_of))
    except ValueError:
        raise LkeKeyExchangeError("the Key Exchange Data does not decrypt") from None
    if len(kbm) != KBM_OCTETS:
        raise LkeKeyExchangeError("the Key Exchange Data does not hold a 16-octet Kbm")
    return kbm


def hmac_sha1(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA1 (RFC 2104), 20 octets."""
    return hmac.new(key, data, sha1).digest()


def equal(a: bytes, b: bytes) -> bool:
    """Compare MACs in constant time."""
    return hmac.compare_digest(a, b)
