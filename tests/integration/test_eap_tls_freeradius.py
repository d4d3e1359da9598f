"""EAP-TLS, TTLS and PEAP on the MN against a real FreeRADIUS 3.2: results and MSKs."""

from __future__ import annotations

import dataclasses

import pytest
from pyrad import packet

from aaa_mip6 import pki
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration.radius_eap_driver import RadiusEapDriver

pytestmark = pytest.mark.integration

TLS_VERSIONS = ["1.2", "1.3"]


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory):
    """A CA FreeRADIUS does not trust, with a client and a CA file of its own."""
    directory = tmp_path_factory.mktemp("foreign-pki")
    ca = pki.make_ca(directory, common_name="not the RADIUS CA")
    return ca, pki.make_cert(directory, ca, "client", common_name="mn-tls@example.org",
                             client=True)


def _authenticate(server, method: str, credentials: EapCredentials):
    peer = EapPeer(method, credentials)
    outer = credentials.anonymous_identity or credentials.identity
    return RadiusEapDriver(server.host, server.port, server.secret).authenticate(peer, outer)


def _tls_credentials(server, version: str) -> EapCredentials:
    return EapCredentials(server.tls_user, client_cert=server.client_cert,
                          client_key=server.client_key, ca_cert=server.ca_cert,
                          tls_max_version=version)


def _password_credentials(server, version: str, phase2: str | None = None) -> EapCredentials:
    return EapCredentials(server.user, password=server.password,
                          anonymous_identity=server.anonymous_identity, ca_cert=server.ca_cert,
                          phase2=phase2, tls_max_version=version)


def _assert_accepted(run, version: str) -> None:
    assert run.accepted and run.peer.success
    assert run.peer.method.engine.tls_version == f"TLSv{version}"
    assert run.msk is not None and len(run.msk) == 64
    assert run.peer.msk == run.msk


def _assert_rejected(run) -> None:
    assert not run.accepted and run.reply.code == packet.AccessReject
    assert run.peer.failure and not run.peer.success


def _log_count(server, text: str) -> int:
    return server.log_path.read_text(errors="replace").count(text)


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_eap_tls_succeeds_with_radius_msk(freeradius, version):
    _assert_accepted(_authenticate(freeradius, "tls", _tls_credentials(freeradius, version)),
                     version)


@pytest.mark.parametrize("version", TLS_VERSIONS)
@pytest.mark.parametrize("phase2", ["pap", "mschapv2"])
def test_ttls_succeeds_with_radius_msk(freeradius, version, phase2):
    credentials = _password_credentials(freeradius, version, phase2)
    _assert_accepted(_authenticate(freeradius, "ttls", credentials), version)


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_peap_succeeds_with_radius_msk(freeradius, version):
    credentials = _password_credentials(freeradius, version)
    _assert_accepted(_authenticate(freeradius, "peap", credentials), version)


@pytest.mark.parametrize("method, phase2", [("ttls", "pap"), ("ttls", "mschapv2"),
                                            ("peap", None)])
def test_wrong_password_is_rejected(freeradius, method, phase2):
    credentials = dataclasses.replace(_password_credentials(freeradius, "1.2", phase2),
                                      password="not-the-password")
    _assert_rejected(_authenticate(freeradius, method, credentials))


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_eap_tls_client_from_another_ca_is_rejected(freeradius, foreign_pki, version):
    _, client = foreign_pki
    credentials = dataclasses.replace(_tls_credentials(freeradius, version),
                                      client_cert=client.cert_path, client_key=client.key_path)
    unknown_issuer = "unable to get local issuer certificate"
    before = _log_count(freeradius, unknown_issuer)
    _assert_rejected(_authenticate(freeradius, "tls", credentials))
    assert _log_count(freeradius, unknown_issuer) > before


def test_peer_refuses_a_server_its_ca_did_not_sign(freeradius, foreign_pki):
    ca, _ = foreign_pki
    credentials = dataclasses.replace(_password_credentials(freeradius, "1.2", "pap"),
                                      ca_cert=ca.cert_path)
    before = _log_count(freeradius, "Alert read:fatal:unknown CA")
    run = _authenticate(freeradius, "ttls", credentials)
    _assert_rejected(run)
    assert "certificate verify failed" in run.peer.method.failure
    assert _log_count(freeradius, "Alert read:fatal:unknown CA") > before  # our alert went out
