"""EAP bootstrap end to end: the MN's EAP peer -> a real ``mip6-hac`` -> RADIUS -> a real
EAP server (FreeRADIUS 3.2 and hostapd).

Every method the MN speaks succeeds through the HAC; the HAC only accepts the MN's
Done when its ``auth`` verifies with the MSK the EAP server handed the HAC, so a
success of a keyed method proves both ends hold the same MSK. A wrong password or an
untrusted client certificate gives 401; the home addresses FreeRADIUS returns
(Framed-IPv6-Address, Framed-IP-Address) reach the MN. The checks are
:class:`tests.integration.hac_eap_matrix.HacEapMatrix`'s: here they fill the "via HAC,
RADIUS" columns of the interop matrix, test_hac_eap_diameter.py runs them through
Diameter.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aaa_mip6 import pki
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup
from tests.integration import interop_report
from tests.integration.hac_eap_matrix import HacEapMatrix, bootstrap
from tests.integration.interop_report import PATH_HAC_RADIUS, Case

pytestmark = pytest.mark.integration

MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
SERVERS = {"FreeRADIUS": "freeradius", "hostapd": "hostapd"}  # report name -> fixture


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


def test_identity_from_mn_id_setting(tmp_path, freeradius):
    with hac_process(tmp_path, freeradius, eap={"identity_from_mn_id": True}) as process:
        case = Case("md5")
        result, peer = bootstrap(process, "md5", case.credentials(freeradius))
    assert peer.success and result.sa.mn_id == freeradius.user


def test_mip6_mn_bootstrap_with_eap_prints_the_aaa_home_address(freeradius, tmp_path):
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
