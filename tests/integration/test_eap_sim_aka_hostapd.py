"""EAP-SIM, EAP-AKA and EAP-AKA' end to end: the MN's methods against Debian's hostapd as
RADIUS EAP server, its vectors from ``mip6-auc`` (eap_sim_db=unix:...), both ends holding the
same MSK; pseudonyms and fast re-authentication on the second run; resynchronisation."""

from pathlib import Path

import pytest

from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration import auc
from tests.integration import hostapd as hostapd_support
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
    from tests.integration import freeradius as freeradius_support

    triplets = auc.triplets_file(tmp_path / "sim-triplets", freeradius_support.SIM_IMSI,
                                 freeradius_support.SIM_TRIPLETS)
    result = run(freeradius, "sim", sim_triplets=triplets)
    assert result.accepted, result.peer.method.failed_reason
    assert len(result.msk) == 64 and result.peer.msk == result.msk
