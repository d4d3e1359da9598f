"""What the runners of third-party servers (FreeRADIUS, hostapd, freeDiameterd) share when
they write a server's configuration: quoting and EAP server certificates."""

from __future__ import annotations

from pathlib import Path

from aaa_mip6 import pki


def quoted(value: str) -> str:
    """``value`` double-quoted for a server's config file (FreeRADIUS, hostapd,
    freeDiameter); the lab's values never need escapes, so quotes and backslashes are refused."""
    if '"' in value or "\\" in value:
        raise ValueError("config values must not contain quotes or backslashes")
    return f'"{value}"'


def eap_server_pki(certs: Path, ca_name: str, server_name: str, client_name: str
                   ) -> tuple[pki.Identity, pki.Identity, pki.Identity]:
    """A CA, an RSA server certificate for ``server_name`` and an EAP-TLS client
    certificate with common name ``client_name``, all in ``certs``: (ca, server, client)."""
    ca = pki.make_ca(certs, common_name=ca_name)
    server = pki.make_cert(certs, ca, "server", common_name=server_name,
                           dns_names=(server_name,), key_type="rsa")
    client = pki.make_cert(certs, ca, "client", common_name=client_name, client=True)
    return ca, server, client
