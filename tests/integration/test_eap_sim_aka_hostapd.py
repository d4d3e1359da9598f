"""EAP-SIM, EAP-AKA and EAP-AKA' end to end: the MN's methods against Debian's hostapd as
RADIUS EAP server, its vectors from ``mip6-auc`` (eap_sim_db=unix:...), both ends holding the
same MSK; pseudonyms and fast re-authentication on the second run; resynchronisation."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from aaa_mip6 import pki
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration import hostapd as hostapd_support
from tests.integration.radius_eap_driver import RadiusEapDriver
from tests.support import stop_process

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(hostapd_support.binary() is None,
                                 reason="hostapd is not installed")]

AUC = Path(sys.executable).with_name("mip6-auc")
IMSI = "232010000000000"
# TS 35.208 test set 20's K and OPc; the SQN the USIM and the AuC start from.
K, OPC = "90dca4eda45b53cf0f12d7c9c3bc6a89", "cb9cccc4b9258e6dca4760379fb82581"
AMF, SQN = "8000", "000000000020"
TRIPLET_IMSI = "232010000000001"
TRIPLETS = [("a0a1a2a3a4a5a6a7", "d1d2d3d4", "101112131415161718191a1b1c1d1e1f"),
            ("b0b1b2b3b4b5b6b7", "e1e2e3e4", "202122232425262728292a2b2c2d2e2f"),
            ("c0c1c2c3c4c5c6c7", "f1f2f3f4", "303132333435363738393a3b3c3d3e3f")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("simaka")
    directory.chmod(0o700)
    milenage = directory / "milenage.db"
    pki.write_private(milenage, f"# IMSI Ki OPc AMF SQN\n{IMSI} {K} {OPC} {AMF} {SQN}\n".encode())
    triplets = directory / "triplets.db"
    pki.write_private(triplets, "".join(f"{TRIPLET_IMSI}:{kc}:{sres}:{rand}\n"
                                        for kc, sres, rand in TRIPLETS).encode())
    socket_path = directory / "auc.sock"
    log = (directory / "auc.log").open("w")
    auc = subprocess.Popen([str(AUC), "--socket", str(socket_path), "--milenage", str(milenage),
                            "--triplets", str(triplets), "--log-level", "debug"],
                           stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while not socket_path.exists() and auc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert socket_path.exists(), (directory / "auc.log").read_text()
    try:
        with hostapd_support.running_hostapd(
                directory, extra=hostapd_support.sim_aka_config(socket_path)) as server:
            yield server, directory, milenage
    finally:
        stop_process(auc)
        log.close()


def usim(directory: Path, name: str, sqn: str = SQN) -> Path:
    path = directory / f"{name}.usim"
    pki.write_private(path, f"{IMSI} {K} {OPC} {AMF} {sqn}\n".encode())
    return path


def run(server, method: str, **credentials):
    peer = EapPeer(method, EapCredentials("unused", **credentials))
    identity = peer.method.identity()
    return RadiusEapDriver(server.host, server.port, server.secret).authenticate(peer, identity)


@pytest.mark.parametrize("method", ["sim", "aka", "aka-prime"])
def test_full_authentication_then_fast_reauthentication(lab, method):
    server, directory, _ = lab
    state = directory / f"{method}.state"
    first = run(server, method, usim=usim(directory, method), eap_state=state,
                realm="wlan.example.org")
    assert first.accepted and first.peer.success, first.peer.method.failed_reason
    assert first.peer.method.identity_sent.startswith({"sim": "1", "aka": "0",
                                                       "aka-prime": "6"}[method])
    assert len(first.msk) == 64 and first.peer.msk == first.msk
    assert state.stat().st_mode & 0o777 == 0o600
    # hostapd handed out a pseudonym and a re-authentication identity: the next bootstrap
    # re-authenticates fast, without a new vector from the AuC.
    second = run(server, method, usim=usim(directory, method), eap_state=state,
                 realm="wlan.example.org")
    assert second.accepted and second.peer.msk == second.msk
    assert second.peer.method.reauthenticating
    assert second.msk != first.msk


def test_sim_with_fixed_triplets(lab):
    server, directory, _ = lab
    triplets = directory / "mn-triplets"
    pki.write_private(triplets, "".join(f"{TRIPLET_IMSI}:{kc}:{sres}:{rand}\n"
                                        for kc, sres, rand in TRIPLETS).encode())
    result = run(server, "sim", sim_triplets=triplets)
    assert result.accepted and result.peer.msk == result.msk


def test_usim_ahead_of_the_auc_resynchronises(lab):
    server, directory, _ = lab
    ahead = usim(directory, "ahead", sqn="000000100000")
    result = run(server, "aka", usim=ahead, eap_state=directory / "ahead.state")
    assert result.accepted, result.peer.method.failed_reason
    assert result.peer.msk == result.msk


def test_wrong_key_is_rejected(lab):
    server, directory, _ = lab
    wrong = directory / "wrong.usim"
    pki.write_private(wrong, f"{IMSI} {'00' * 16} {OPC} {AMF} {SQN}\n".encode())
    result = run(server, "aka", usim=wrong)
    assert not result.accepted and result.msk is None
    assert "AUTN does not verify" in result.peer.method.failed_reason


def test_aka_prime_network_name_mismatch_fails(lab):
    server, directory, _ = lab
    result = run(server, "aka-prime", usim=usim(directory, "netname"),
                 network_name="HRPD")
    assert not result.accepted
    assert "network name" in result.peer.method.failed_reason


def test_sim_with_triplets_against_freeradius(freeradius, tmp_path):
    """FreeRADIUS 3.2's EAP-SIM with the triplets in its users file; both MSKs equal."""
    from tests.integration import freeradius as freeradius_support

    triplets = tmp_path / "sim-triplets"
    pki.write_private(triplets, "".join(
        f"{freeradius_support.SIM_IMSI}:{kc}:{sres}:{rand}\n"
        for kc, sres, rand in freeradius_support.SIM_TRIPLETS).encode())
    result = run(freeradius, "sim", sim_triplets=triplets)
    assert result.accepted, result.peer.method.failed_reason
    assert len(result.msk) == 64 and result.peer.msk == result.msk
