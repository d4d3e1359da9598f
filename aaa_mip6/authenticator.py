"""The ``auth`` message authenticator and its channel binding (RFC 6618 §5.8, §5.9).

``auth = HMAC-SHA256(key, label | msg-octets | CB-octets)`` where the label is
``MN`` or ``HAC`` after the sender, ``msg-octets`` are the Content octets
before the ``auth`` line exactly as sent, and ``CB-octets`` the RFC 5929
tls-server-end-point hash of the HAC's certificate. Binding ``auth`` to the
certificate is what defeats a man in the middle holding another certificate.
Draft -01 had no label; that form exists only behind ``draft01=True``.
"""

from __future__ import annotations

import enum
import hmac

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from .errors import AuthenticatorError

EAP_KEY = b"1"
"""The key of EAP Init and Mid messages, and of Done when the method derived no MSK."""


class Sender(enum.Enum):
    """Who sent the message; the value is the label RFC 6618 puts before the octets."""

    MN = b"MN"
    HAC = b"HAC"


def channel_binding(der_cert: bytes) -> bytes:
    """RFC 5929 §4.1 tls-server-end-point: the hash of the DER certificate.

    The hash is the one of the certificate's signature algorithm, SHA-256 where
    that is MD5 or SHA-1. Raises :class:`AuthenticatorError` for a certificate
    that does not parse or whose signature uses no single hash (e.g. Ed25519),
    for which RFC 5929 leaves the binding undefined.
    """
    try:
        algorithm = x509.load_der_x509_certificate(der_cert).signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm):
        algorithm = None
    if algorithm is None:
        raise AuthenticatorError(
            "certificate has no tls-server-end-point channel binding", reason="channel-binding"
        )
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der_cert)
    return digest.finalize()


def compute(key: bytes, sender: Sender, signed_octets: bytes, channel_binding: bytes,
            *, draft01: bool = False) -> bytes:
    """The 32-octet ``auth`` value over ``signed_octets`` bound to ``channel_binding``."""
    if not key:
        raise ValueError("the auth key must not be empty")
    if not channel_binding:
        raise ValueError("the channel binding must not be empty")
    label = b"" if draft01 else sender.value
    return hmac.digest(key, label + signed_octets + channel_binding, "sha256")


def verify(key: bytes, sender: Sender, signed_octets: bytes, channel_binding: bytes,
           received: bytes, *, draft01: bool = False) -> None:
    """Raise :class:`AuthenticatorError` unless ``received`` is the right ``auth``.

    The comparison takes constant time.
    """
    expected = compute(key, sender, signed_octets, channel_binding, draft01=draft01)
    if not hmac.compare_digest(expected, received):
        raise AuthenticatorError(f"auth from the {sender.name} does not verify")
