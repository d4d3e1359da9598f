"""EAP-SIM, EAP-AKA and EAP-AKA' end to end: the MN's methods against Debian's hostapd as
RADIUS EAP server, its vectors from ``mip6-auc`` (eap_sim_db=unix:...), both ends holding the
same MSK; pseudonyms and fast re-authentication on the second run; resynchronisation."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from aaa_mip6.milenage import Milenage
from lab.servers import auc
from lab.servers import hostapd as hostapd_support
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration.radius_eap_driver import RadiusEapDriver

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(hostapd_support.binary() is None,
                                 reason="hostapd is not installed")]



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("simaka")
    with auc.running_sim_aka_server(directory) as server:
        yield server.hostapd, directory, None


def usim(directory: Path, name: str, sqn: str = auc.SQN) -> Path:
    return auc.usim_file(directory / f"{name}.usim", sqn=sqn)


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
    result = run(server, "sim", sim_triplets=auc.triplets_file(directory / "mn-triplets"))
    assert result.accepted and result.peer.msk == result.msk


def test_usim_ahead_of_the_auc_resynchronises(lab):
    server, directory, _ = lab
    ahead = usim(directory, "ahead", sqn="000000100000")
    result = run(server, "aka", usim=ahead, eap_state=directory / "ahead.state")
    assert result.accepted, result.peer.method.failed_reason
    assert result.peer.msk == result.msk


def test_wrong_key_is_rejected(lab):
    server, directory, _ = lab
    result = run(server, "aka", usim=auc.usim_file(directory / "wrong.usim", k="00" * 16))
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
    from lab.servers import freeradius as freeradius_support

    triplets = auc.triplets_file(tmp_path / "sim-triplets", freeradius_support.SIM_IMSI,
                                 freeradius_support.SIM_TRIPLETS)
    result = run(freeradius, "sim", sim_triplets=triplets)
    assert result.accepted, result.peer.method.failed_reason
    assert len(result.msk) == 64 and result.peer.msk == result.msk


class ExternalSim:
    """wpa_supplicant's external SIM interface (external_sim=1): eapol_test asks its control
    socket for GSM-AUTH / UMTS-AUTH; this answers with the project's Milenage, as a card
    reader would. Debian's eapol_test has no built-in SIM or USIM simulator."""

    def __init__(self, control_dir: Path, interface: str):
        self.path = control_dir / interface
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.local = control_dir / "monitor"
        self.socket.bind(str(self.local))
        self.socket.settimeout(1.0)
        self.usim = Milenage(bytes.fromhex(auc.K), bytes.fromhex(auc.OPC))
        self.answered = 0

    def connect(self, deadline: float) -> None:
        while not self.path.exists():
            if time.monotonic() > deadline:
                raise AssertionError("eapol_test opened no control socket")
            time.sleep(0.05)
        self.socket.connect(str(self.path))
        self.socket.send(b"ATTACH")

    def answer(self, line: str) -> None:
        request = line.split(">", 1)[-1].split(" needed", 1)[0]
        network, kind, *values = request[len("CTRL-REQ-SIM-"):].split(":")
        if kind == "UMTS-AUTH":
            rand, autn = bytes.fromhex(values[0]), bytes.fromhex(values[1])
            _, vector = self.usim.check_autn(rand, autn)
            reply = f"UMTS-AUTH:{vector.ik.hex()}:{vector.ck.hex()}:{vector.res.hex()}"
        else:
            pairs = [self.usim.gsm_triplet(bytes.fromhex(rand)) for rand in values]
            reply = "GSM-AUTH:" + ":".join(f"{kc.hex()}:{sres.hex()}" for sres, kc in pairs)
        self.socket.send(f"CTRL-RSP-SIM-{network}:{reply}".encode())
        self.answered += 1

    def serve(self, process: subprocess.Popen, deadline: float) -> None:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                text = self.socket.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            if "CTRL-REQ-SIM-" in text:
                self.answer(text)


@pytest.mark.skipif(shutil.which("eapol_test") is None, reason="eapol_test is not installed "
                    "(Debian package eapoltest)")
@pytest.mark.parametrize("method, prefix", [("SIM", "1"), ("AKA", "0"), ("AKA'", "6")])
def test_eapol_test_authenticates_against_hostapd_and_mip6_auc(lab, tmp_path, method, prefix):
    """wpa_supplicant's own SIM/AKA/AKA' peer (eapol_test, its SIM answered through the
    external SIM interface) against the same hostapd + mip6-auc: the AuC interoperates on its
    own, not only with this project's MN."""
    server, _, _ = lab
    control = tmp_path / "ctrl"
    control.mkdir(mode=0o700)
    config = tmp_path / "eapol.conf"
    config.write_text(f"ctrl_interface={control}\nexternal_sim=1\n"
                      f"network={{\n  key_mgmt=IEEE8021X\n  eap={method}\n"
                      f'  identity="{prefix}{auc.IMSI}@wlan.example.org"\n}}\n')
    sim = ExternalSim(control, "test")
    deadline = time.monotonic() + 30
    process = subprocess.Popen(["eapol_test", "-c", str(config), "-a", server.host,
                                "-p", str(server.port), "-s", server.secret.decode(),
                                "-t", "20", "-W", "-i", "test"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sim.connect(deadline)
        sim.serve(process, deadline)
        output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
        sim.socket.close()
    assert sim.answered >= 1
    assert process.returncode == 0 and output.rstrip().endswith("SUCCESS"), output[-3000:]
