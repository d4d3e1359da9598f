"""EAP-SIM, EAP-AKA and EAP-AKA' through a real ``mip6-hac``, with the real ``mip6-mn``
command: the HAC relays to hostapd over RADIUS, and over Diameter through ``mip6-aaa-gw``;
hostapd takes its vectors from ``mip6-auc``. The HAC accepts the MN's Done only with the MSK
hostapd gave it, so a success proves both ends derived the same MSK.

Per method: a full authentication, then a second bootstrap that re-authenticates fast with
the identity hostapd gave (the state file's counter moves, the AuC is not asked again); a
USIM ahead of the AuC resynchronises; a wrong Ki ends in 401.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aaa_mip6 import pki
from lab.processes import free_port
from lab.servers import auc
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup
from tests.integration.gateway import GW_HOST, gateway_process
from tests.integration.test_hac_eap_diameter import (
    HAC_HOST,
    EapOnlyHac,
    diameter_settings,
)

pytestmark = pytest.mark.integration

MN = Path(sys.executable).with_name("mip6-mn")
REALM = "wlan.example.org"
PREFIX = {"sim": "1", "aka": "0", "aka-prime": "6"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with auc.running_sim_aka_server(tmp_path_factory.mktemp("hac-simaka")) as running:
        yield running


def radius_hac(directory: Path, radius) -> HacProcess:
    secret = directory / "radius.secret"
    directory.mkdir(parents=True, exist_ok=True)
    pki.write_private(secret, radius.secret + b"\n")
    return HacProcess(make_setup(directory), config=TEST_CONFIG, extra_args=[
        "--radius-server", f"{radius.host}:{radius.port}", "--radius-secret-file", str(secret)])


def mn_bootstrap(hac: HacProcess, method: str, usim: Path,
                 *more: str) -> subprocess.CompletedProcess:
    mn_id = f"{PREFIX[method]}{auc.IMSI}@{REALM}"
    return subprocess.run(
        [str(MN), "bootstrap", "--hac", hac.address, "--ca", str(hac.setup.ca.cert_path),
         "--id", mn_id, "--eap", method, "--usim", str(usim), "--realm", REALM, "--json",
         *more], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def hac(server, tmp_path_factory):
    with radius_hac(tmp_path_factory.mktemp("hac"), server.hostapd) as process:
        yield process


@pytest.mark.parametrize("method", ["sim", "aka", "aka-prime"])
def test_full_then_fast_reauthentication_through_the_hac(hac, server, tmp_path, method):
    usim = auc.usim_file(tmp_path / "alice.usim")
    first = mn_bootstrap(hac, method, usim)
    assert first.returncode == 0, first.stderr + hac.log_tail()
    state_file = Path(f"{usim}.state")
    assert state_file.stat().st_mode & 0o777 == 0o600
    saved = json.loads(state_file.read_text())["methods"][method]
    assert saved["pseudonym"] and saved["reauth_id"] and saved["counter"] == 0
    second = mn_bootstrap(hac, method, usim)
    assert second.returncode == 0, second.stderr + hac.log_tail()
    again = json.loads(state_file.read_text())["methods"][method]
    assert again["counter"] >= 1, "the second bootstrap re-authenticated fast"
    assert json.loads(second.stdout)["mip6-spi"] != json.loads(first.stdout)["mip6-spi"]


def test_usim_ahead_of_the_auc_resynchronises_through_the_hac(hac, tmp_path):
    usim = auc.usim_file(tmp_path / "ahead.usim", sqn="000000400000")
    run = mn_bootstrap(hac, "aka", usim)
    assert run.returncode == 0, run.stderr + hac.log_tail()
    assert json.loads(Path(f"{usim}.state").read_text())["sqn"] > "000000400000"


def test_wrong_ki_gives_401(hac, tmp_path):
    run = mn_bootstrap(hac, "aka", auc.usim_file(tmp_path / "wrong.usim", k="11" * 16))
    assert run.returncode == 1
    assert "401" in run.stderr
    assert "11" * 16 not in run.stderr + hac.log_tail(200)


def test_aka_over_diameter_through_mip6_aaa_gw(server, tmp_path):
    """HAC (aaa.backend = diameter) -> mip6-aaa-gw -> RADIUS -> hostapd + mip6-auc."""
    ca = pki.make_ca(tmp_path, "diameter-ca")
    gateway = pki.make_cert(tmp_path, ca, "gw", dns_names=(GW_HOST,))
    own = pki.make_cert(tmp_path, ca, "hac-diameter", dns_names=(HAC_HOST,), client=True)
    port = free_port()
    config = {**TEST_CONFIG, "auth": {"methods": ["eap"]}, "aaa": {"backend": "diameter"},
              "diameter": diameter_settings(ca, own, peers=[f"{GW_HOST}=127.0.0.1:{port}"])}
    usim = auc.usim_file(tmp_path / "diameter.usim")
    with gateway_process(tmp_path, server.hostapd, "--origin-host", GW_HOST,
                         "--listen", f"127.0.0.1:{port}", "--cert", str(gateway.cert_path),
                         "--key", str(gateway.key_path), "--peer-ca", str(ca.cert_path)), \
            EapOnlyHac(make_setup(tmp_path / "hac"), config=config) as process:
        runs = [mn_bootstrap(process, "aka-prime", usim, "--timeout", "20") for _ in range(2)]
        for run in runs:
            assert run.returncode == 0, run.stderr + process.log_tail()
    assert json.loads(Path(f"{usim}.state").read_text())["methods"]["aka-prime"]["counter"] >= 1
