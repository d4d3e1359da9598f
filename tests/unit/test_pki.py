"""aaa_mip6.pki's leaf certificates: which TLS roles their extended key usage allows."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from aaa_mip6 import pki

SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.mark.parametrize("options, usages", [
    ({}, {SERVER}),
    ({"client": True}, {CLIENT}),
    ({"client": True, "server": True}, {CLIENT, SERVER}),  # an agent: accepts and connects
    ({"server": True}, {SERVER}),
])
def test_extended_key_usage(tmp_path, options, usages):
    ca = pki.make_ca(tmp_path, "ca")
    leaf = pki.make_cert(tmp_path, ca, "leaf", dns_names=("leaf.example",), **options)
    found = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(found) == usages
