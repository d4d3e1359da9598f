"""EAP bootstrap end to end: the MN's EAP peer -> a real ``mip6-hac`` -> RADIUS -> a real
EAP server (FreeRADIUS 3.2 and hostapd).

Every method the MN speaks succeeds through the HAC; the HAC only accepts the MN's
Done when its ``auth`` verifies with the MSK the EAP server handed the HAC, so a
success of a keyed method proves both ends hold the same MSK. A wrong password or an
untrusted client certificate gives 401; the home addresses FreeRADIUS returns
(Framed-IPv6-Address, Framed-IP-Address) reach the MN. :class:`HacEapMatrix` holds
these checks for any HAC path: here they fill the "via HAC, RADIUS" columns of the
interop matrix, test_hac_eap_diameter.py runs them through Diameter.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aaa_mip6 import pki
from aaa_mip6.tls import ClientTLS
from mn import client
from mn.bootstrap import BootstrapFailed, EapBootstrap
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration import interop_report
from tests.integration.freeradius import freeradius  # noqa: F401 (fixture)
from tests.integration.hacproc import HOA_PREFIX, TEST_CONFIG, HacProcess, make_setup
from tests.integration.hostapd import hostapd  # noqa: F401 (fixture)
from tests.integration.interop_report import (
    ACCEPT_CASES,
    PATH_HAC_RADIUS,
    UNKNOWN_CA_CASES,
    WRONG_PASSWORD_CASES,
    Case,
)
from tests.support import run_on_fresh_reactor

pytestmark = pytest.mark.integration

MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
SERVERS = {"FreeRADIUS": "freeradius", "hostapd": "hostapd"}  # report name -> fixture


def bootstrap(hac: HacProcess, method: str, creds: EapCredentials) -> tuple:
    """(result, peer) of one EAP bootstrap through ``hac``."""
    peer = EapPeer(method, creds)
    machine = EapBootstrap(creds.identity, peer)

    async def scenario(reactor):
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)
        return await client.bootstrap(reactor, tls, hac.port, machine)

    return run_on_fresh_reactor(scenario), peer


def _ids(cases: list[Case]) -> list[str]:
    return [case.test_id for case in cases]


class HacEapMatrix:
    """The matrix cases through a running HAC.

    A module using it provides the fixtures ``hac`` (a running :class:`HacProcess`)
    and ``eap_server`` (the FreeRadius or Hostapd at the far end).
    """

    @staticmethod
    def run(hac: HacProcess, eap_server, case: Case, creds: EapCredentials) -> tuple:
        reason = interop_report.unsupported(eap_server, case)
        if reason is not None:
            pytest.skip(reason)
        return bootstrap(hac, case.method, creds)

    @pytest.mark.parametrize("case", ACCEPT_CASES, ids=_ids(ACCEPT_CASES))
    def test_accept(self, hac, eap_server, case):
        creds = case.credentials(eap_server)
        result, peer = self.run(hac, eap_server, case, creds)
        assert peer.success and peer.method_done
        if case.tls:
            assert peer.method.engine.tls_version == f"TLSv{case.tls}"
        # the HAC verified the Done auth with the AAA's MSK: both ends hold this one
        assert (None if peer.msk is None else len(peer.msk)) == interop_report.msk_length(case)
        sa, boot = result
        assert sa.mn_id == creds.identity and sa.home_address6 == boot.home_address6
        framed6 = getattr(eap_server, "framed_ipv6_address", None)
        if framed6 is None:  # hostapd sends no home address: the HAC's pool gives one
            assert boot.home_address6 in ipaddress.IPv6Network(HOA_PREFIX)
        else:
            assert boot.home_address6 == ipaddress.IPv6Address(framed6)
            assert boot.home_address4 == ipaddress.IPv4Address(eap_server.framed_ip_address)

    @pytest.mark.parametrize("case", WRONG_PASSWORD_CASES, ids=_ids(WRONG_PASSWORD_CASES))
    def test_wrong_password_gives_401(self, hac, eap_server, case):
        with pytest.raises(BootstrapFailed) as caught:
            self.run(hac, eap_server, case, case.wrong_password(eap_server))
        if case.method != "pwd":
            assert (caught.value.reason, caught.value.status) == ("status", 401)
            return
        assert caught.value.reason == "bad-auth"  # RFC 5931: the peer never sends its Confirm
        result, _ = self.run(hac, eap_server, case, case.credentials(eap_server))
        assert result.sa.spi  # and the HAC serves the next MN

    @pytest.mark.parametrize("case", UNKNOWN_CA_CASES, ids=_ids(UNKNOWN_CA_CASES))
    def test_unknown_client_ca_gives_401(self, hac, eap_server, case, tmp_path):
        foreign = interop_report.make_foreign_client(tmp_path)
        with pytest.raises(BootstrapFailed) as caught:
            self.run(hac, eap_server, case, case.foreign_client(eap_server, foreign))
        assert (caught.value.reason, caught.value.status) == ("status", 401)


# --- HAC -> RADIUS -> FreeRADIUS / hostapd -----------------------------------------------


def hac_process(directory: Path, radius, **config) -> HacProcess:
    setup = make_setup(directory)
    secret_file = directory / "radius.secret"
    pki.write_private(secret_file, radius.secret + b"\n")
    return HacProcess(setup, config={**TEST_CONFIG, **config}, extra_args=[
        "--radius-server", f"{radius.host}:{radius.port}",
        "--radius-secret-file", str(secret_file)])


@pytest.fixture(scope="session", autouse=True)
def interop_matrix_report(request) -> interop_report.InteropReport:
    """This module's cells in the session's matrix (docs/interop.md at the end)."""
    return interop_report.join(request.config, __name__,
                               interop_report.param_cell(PATH_HAC_RADIUS))


@pytest.fixture(scope="module", params=list(SERVERS))
def server_name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def eap_server(request, server_name):
    """The running server named by ``server_name`` (skips if not installed)."""
    return request.getfixturevalue(SERVERS[server_name])


@pytest.fixture(scope="module")
def hac(tmp_path_factory, eap_server):
    with hac_process(tmp_path_factory.mktemp("hac-eap"), eap_server) as process:
        yield process


class TestHacRadius(HacEapMatrix):
    """Every matrix case, HAC relaying to RADIUS."""


def test_identity_from_mn_id_setting(tmp_path, freeradius):  # noqa: F811
    with hac_process(tmp_path, freeradius, eap={"identity_from_mn_id": True}) as process:
        case = Case("md5")
        result, peer = bootstrap(process, "md5", case.credentials(freeradius))
    assert peer.success and result.sa.mn_id == freeradius.user


def test_mip6_mn_bootstrap_with_eap_prints_the_aaa_home_address(freeradius, tmp_path):  # noqa: F811
    password_file = tmp_path / "password"
    pki.write_private(password_file, freeradius.password.encode() + b"\n")
    with hac_process(tmp_path / "hac", freeradius) as process:
        run = subprocess.run(
            [str(MN_SCRIPT), "bootstrap", "--hac", process.address,
             "--ca", str(process.setup.ca.cert_path), "--id", freeradius.user,
             "--eap", "ttls", "--phase2", "mschapv2",
             "--anonymous-identity", freeradius.anonymous_identity,
             "--password-file", str(password_file), "--eap-ca", str(freeradius.ca_cert),
             "--json"],
            capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    output = json.loads(run.stdout)
    assert ipaddress.IPv6Address(output["mip6-ip6-hoa"]) == ipaddress.IPv6Address(
        freeradius.framed_ipv6_address)
    assert output["mn-id"] == freeradius.user
