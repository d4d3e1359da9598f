"""EAP bootstrap end to end: the MN's EAP peer -> a real ``mip6-hac`` -> real FreeRADIUS 3.2.

Every method the MN speaks succeeds through the HAC; the HAC only accepts the MN's
Done when its ``auth`` verifies with the MSK FreeRADIUS handed the HAC, so a success
of a keyed method proves both ends hold the same MSK. A wrong password or an
untrusted client certificate gives 401; the home addresses FreeRADIUS returns
(Framed-IPv6-Address, Framed-IP-Address) reach the MN.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aaa_mip6 import pki
from mn import client
from mn.bootstrap import BootstrapFailed, EapBootstrap
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from aaa_mip6.tls import ClientTLS
from tests.integration.freeradius import freeradius  # noqa: F401 (fixture)
from tests.integration.hacproc import TEST_CONFIG, HacProcess, make_setup
from tests.support import run_on_fresh_reactor

pytestmark = pytest.mark.integration

MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
KEYED_MSK_LENGTH = {"md5": None, "gtc": None, "mschapv2": 32}  # others: 64

ACCEPT_CASES = [
    ("md5", None, None), ("gtc", None, None), ("mschapv2", None, None), ("pwd", None, None),
    ("tls", None, "1.2"), ("tls", None, "1.3"),
    ("ttls", "pap", "1.2"), ("ttls", "pap", "1.3"),
    ("ttls", "mschapv2", "1.2"), ("ttls", "mschapv2", "1.3"),
    ("peap", None, "1.2"), ("peap", None, "1.3"),
]


def hac_process(directory: Path, radius, **config) -> HacProcess:
    setup = make_setup(directory)
    secret_file = directory / "radius.secret"
    pki.write_private(secret_file, radius.secret + b"\n")
    return HacProcess(setup, config={**TEST_CONFIG, **config}, extra_args=[
        "--radius-server", f"{radius.host}:{radius.port}",
        "--radius-secret-file", str(secret_file)])


@pytest.fixture(scope="module")
def hac(tmp_path_factory, freeradius):  # noqa: F811 (fixture)
    with hac_process(tmp_path_factory.mktemp("hac-eap"), freeradius) as process:
        yield process


def credentials(radius, method: str, phase2: str | None, tls: str | None) -> EapCredentials:
    if method == "tls":
        return EapCredentials(radius.tls_user, client_cert=radius.client_cert,
                              client_key=radius.client_key, ca_cert=radius.ca_cert,
                              tls_max_version=tls)
    if tls:
        return EapCredentials(radius.user, radius.password,
                              anonymous_identity=radius.anonymous_identity,
                              ca_cert=radius.ca_cert, phase2=phase2, tls_max_version=tls)
    return EapCredentials(radius.user, radius.password)


def bootstrap(hac: HacProcess, method: str, creds: EapCredentials) -> tuple:
    """(result, peer) of one EAP bootstrap through ``hac``."""
    peer = EapPeer(method, creds)
    machine = EapBootstrap(creds.identity, peer)

    async def scenario(reactor):
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)
        return await client.bootstrap(reactor, tls, hac.port, machine)

    return run_on_fresh_reactor(scenario), peer


@pytest.mark.parametrize("method, phase2, tls", ACCEPT_CASES,
                         ids=[f"{m}{'/' + p if p else ''}{'-tls' + t if t else ''}"
                              for m, p, t in ACCEPT_CASES])
def test_every_method_succeeds_through_the_hac(hac, freeradius, method, phase2, tls):  # noqa: F811
    creds = credentials(freeradius, method, phase2, tls)
    result, peer = bootstrap(hac, method, creds)
    assert peer.success and peer.method_done
    if tls:
        assert peer.method.engine.tls_version == f"TLSv{tls}"
    expected_length = KEYED_MSK_LENGTH.get(method, 64)
    # the HAC verified the Done auth with the AAA's MSK: both ends hold this one
    assert (None if peer.msk is None else len(peer.msk)) == expected_length
    sa, boot = result
    assert sa.mn_id == creds.identity
    assert boot.home_address6 == ipaddress.IPv6Address(freeradius.framed_ipv6_address)
    assert boot.home_address4 == ipaddress.IPv4Address(freeradius.framed_ip_address)
    assert sa.home_address6 == boot.home_address6


@pytest.mark.parametrize("method, phase2, tls", [
    ("md5", None, None), ("gtc", None, None), ("mschapv2", None, None),
    ("ttls", "pap", "1.2"), ("ttls", "mschapv2", "1.3"), ("peap", None, "1.2"),
])
def test_a_wrong_password_gives_401(hac, freeradius, method, phase2, tls):  # noqa: F811
    creds = dataclasses.replace(credentials(freeradius, method, phase2, tls), password="wrong")
    with pytest.raises(BootstrapFailed) as caught:
        bootstrap(hac, method, creds)
    assert (caught.value.reason, caught.value.status) == ("status", 401)


def test_pwd_with_a_wrong_password_stops_at_the_mn_and_the_hac_goes_on(hac, freeradius):  # noqa: F811
    creds = dataclasses.replace(credentials(freeradius, "pwd", None, None), password="wrong")
    with pytest.raises(BootstrapFailed) as caught:
        bootstrap(hac, "pwd", creds)
    assert caught.value.reason == "bad-auth"  # RFC 5931: the peer never sends its Confirm
    result, _ = bootstrap(hac, "pwd", credentials(freeradius, "pwd", None, None))
    assert result.sa.spi


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_an_untrusted_client_certificate_gives_401(hac, freeradius, tmp_path, tls):  # noqa: F811
    ca = pki.make_ca(tmp_path, common_name="not the RADIUS CA")
    foreign = pki.make_cert(tmp_path, ca, "client", common_name=freeradius.tls_user,
                            client=True)
    creds = dataclasses.replace(credentials(freeradius, "tls", None, tls),
                                client_cert=foreign.cert_path, client_key=foreign.key_path)
    with pytest.raises(BootstrapFailed) as caught:
        bootstrap(hac, "tls", creds)
    assert (caught.value.reason, caught.value.status) == ("status", 401)


def test_identity_from_mn_id_setting(tmp_path, freeradius):  # noqa: F811
    with hac_process(tmp_path, freeradius, eap={"identity_from_mn_id": True}) as hac:
        result, peer = bootstrap(hac, "md5", credentials(freeradius, "md5", None, None))
    assert peer.success and result.sa.mn_id == freeradius.user


def test_mip6_mn_bootstrap_with_eap_prints_the_aaa_home_address(hac, freeradius, tmp_path):  # noqa: F811
    password_file = tmp_path / "password"
    pki.write_private(password_file, freeradius.password.encode() + b"\n")
    run = subprocess.run(
        [str(MN_SCRIPT), "bootstrap", "--hac", hac.address, "--ca", str(hac.setup.ca.cert_path),
         "--id", freeradius.user, "--eap", "ttls", "--phase2", "mschapv2",
         "--anonymous-identity", freeradius.anonymous_identity,
         "--password-file", str(password_file), "--eap-ca", str(freeradius.ca_cert), "--json"],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    output = json.loads(run.stdout)
    assert ipaddress.IPv6Address(output["mip6-ip6-hoa"]) == ipaddress.IPv6Address(
        freeradius.framed_ipv6_address)
    assert output["mn-id"] == freeradius.user
