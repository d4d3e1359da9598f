"""A small X.509 toolkit for the lab, the tests and first deployments.

Makes a CA and certificates signed by it (ECDSA P-256 by default, RSA on request)
with the subjectAltName entries RFC 6125 checks need. Private keys are written
0600 from the first byte.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Identity:
    """A certificate and its key, in memory and as PEM files."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    cert_path: Path
    key_path: Path

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file that is 0600 before any byte lands in it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _new_key(key_type: str):
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def _save(directory: Path, name: str, cert: x509.Certificate, key) -> Identity:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return Identity(cert, key, cert_path, key_path)


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=days)
    )


def make_ca(directory: Path, name: str = "ca", *, common_name: str = "aaa-mip6 CA",
            key_type: str = "ec", days: int = 3650) -> Identity:
    """Create a self-signed CA as ``<name>.pem`` and ``<name>.key`` in ``directory``."""
    key = _new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder, days).sign(key, hashes.SHA256())
    return _save(Path(directory), name, cert, key)


def make_cert(directory: Path, ca: Identity, name: str, *, common_name: str | None = None,
              dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = (),
              client: bool = False, server: bool | None = None, key_type: str = "ec",
              days: int = 825, hash_algorithm: hashes.HashAlgorithm | None = None) -> Identity:
    """Create a leaf certificate signed by ``ca``: a server certificate, or a client one
    (``server=True`` as well: both, for an agent that accepts and opens connections).

    ``dns_names`` and ``ip_addresses`` become subjectAltName DNS-IDs and IP-IDs;
    the CN is informational only (RFC 6125: no CN-ID matching).
    """
    key = _new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or name)])
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    if server or (server is None and not client):
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    alt_names = [x509.DNSName(n) for n in dns_names] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses
    ]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = _validity(builder, days).sign(ca.key, hash_algorithm or hashes.SHA256())
    return _save(Path(directory), name, cert, key)
