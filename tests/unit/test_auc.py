"""mip6-auc's rules: hlr_auc_gw requests in, vectors and SQN changes out; bad input is
FAILURE or nothing, never an exception; SQNs are durable and never issued twice."""

import json

import pytest
from hypothesis import given, strategies as st

from aaa_mip6.errors import ConfigError
from aaa_mip6.milenage import Milenage
from auc.core import SQN_STEP, AuthenticationCentre, MilenageSubscriber
from auc.db import SqnState, load_milenage, load_triplets

IMSI = "232010000000000"
K, OPC = bytes.fromhex("90dca4eda45b53cf0f12d7c9c3bc6a89"), bytes.fromhex(
    "cb9cccc4b9258e6dca4760379fb82581")
TRIPLET = (bytes.fromhex("a0a1a2a3a4a5a6a7"), bytes.fromhex("d1d2d3d4"), bytes(range(16)))


def centre(sqn=0):
    return AuthenticationCentre({IMSI: MilenageSubscriber(Milenage(K, OPC), b"\x80\x00", sqn)},
                                {"232010000000001": [TRIPLET]}, random=lambda n: b"\x11" * n)


def test_aka_vector_verifies_on_the_usim_and_moves_the_sqn():
    auc = centre(sqn=64)
    reply = auc.handle(f"AKA-REQ-AUTH 0{IMSI}")
    command, subject, rand, autn, ik, ck, res = reply.text.split()
    assert (command, subject) == ("AKA-RESP-AUTH", f"0{IMSI}")
    sqn, vector = Milenage(K, OPC).check_autn(bytes.fromhex(rand), bytes.fromhex(autn))
    assert int.from_bytes(sqn, "big") == 64 + SQN_STEP
    assert (vector.ik.hex(), vector.ck.hex(), vector.res.hex()) == (ik, ck, res)
    assert reply.sqn_changes == {IMSI: 64 + SQN_STEP}
    second = auc.handle(f"AKA-REQ-AUTH {IMSI}")
    assert second.sqn_changes == {IMSI: 64 + 2 * SQN_STEP}


def test_auts_resynchronises_to_the_usim_sqn():
    auc = centre()
    rand = bytes(range(16))
    usim_sqn = (5000).to_bytes(6, "big")
    auts = Milenage(K, OPC).auts(rand, usim_sqn)
    reply = auc.handle(f"AKA-AUTS {IMSI} {auts.hex()} {rand.hex()}")
    assert reply.text is None and reply.sqn_changes == {IMSI: 5000}
    next_vector = auc.handle(f"AKA-REQ-AUTH {IMSI}")
    assert next_vector.sqn_changes == {IMSI: 5000 + SQN_STEP}


def test_a_forged_auts_changes_nothing():
    auc = centre(sqn=96)
    reply = auc.handle(f"AKA-AUTS {IMSI} {'00' * 14} {'11' * 16}")
    assert reply.text is None and reply.sqn_changes == {} and "MAC-S" in reply.reason
    assert auc.milenage[IMSI].sqn == 96


def test_sim_triplets_come_from_the_file_else_from_milenage():
    auc = centre()
    fixed = auc.handle("SIM-REQ-AUTH 1232010000000001 2").text.split()
    assert fixed[2] == f"{TRIPLET[0].hex()}:{TRIPLET[1].hex()}:{TRIPLET[2].hex()}"
    assert len(fixed) == 4
    computed = auc.handle(f"SIM-REQ-AUTH {IMSI} 3").text.split()[2:]
    kc, sres, rand = computed[0].split(":")
    assert Milenage(K, OPC).gsm_triplet(bytes.fromhex(rand)) == (bytes.fromhex(sres),
                                                                 bytes.fromhex(kc))
    assert len(computed) == 3


@pytest.mark.parametrize("request_text, reply_text", [
    ("AKA-REQ-AUTH 999990000000000", "AKA-RESP-AUTH 999990000000000 FAILURE"),
    ("SIM-REQ-AUTH 999990000000000 3", "SIM-RESP-AUTH 999990000000000 FAILURE"),
    (f"SIM-REQ-AUTH {IMSI} zero", f"SIM-RESP-AUTH {IMSI} FAILURE"),
    (f"GSM-AUTH-REQ {IMSI} 1234", f"GSM-AUTH-RESP {IMSI} FAILURE"),
])
def test_bad_requests_get_failure_and_a_reason(request_text, reply_text):
    reply = centre().handle(request_text)
    assert reply.text == reply_text and reply.reason and reply.sqn_changes == {}


@given(st.text(max_size=200))
def test_any_text_gets_a_reply_or_nothing_never_an_exception(text):
    reply = centre().handle(text)
    assert reply.text is None or reply.text.split()[0] in (
        "SIM-RESP-AUTH", "AKA-RESP-AUTH", "GSM-AUTH-RESP")


def test_state_survives_a_restart_and_never_goes_back(tmp_path):
    state = SqnState(tmp_path / "sqn.json")
    state.commit({IMSI: 4096})
    assert (tmp_path / "sqn.json").stat().st_mode & 0o777 == 0o600
    subscribers = {IMSI: MilenageSubscriber(Milenage(K, OPC), b"\x80\x00", 32)}
    SqnState(tmp_path / "sqn.json").apply(subscribers)
    assert subscribers[IMSI].sqn == 4096
    assert json.loads((tmp_path / "sqn.json").read_text()) == {IMSI: 4096}


def test_files_in_hlr_auc_gw_format(tmp_path):
    milenage = tmp_path / "milenage.db"
    milenage.write_text(f"# comment\n{IMSI} {K.hex()} {OPC.hex()} 8000 000000000020\n")
    assert load_milenage(milenage)[IMSI].sqn == 0x20
    triplets = tmp_path / "triplets"
    triplets.write_text("232010000000001:a0a1a2a3a4a5a6a7:d1d2d3d4:" + "00" * 16 + "\n")
    assert len(load_triplets(triplets)["232010000000001"]) == 1


@pytest.mark.parametrize("line, words", [
    (f"{IMSI} {K.hex()} {OPC.hex()} 8000", "expected 'IMSI Ki OPc AMF SQN"),
    (f"12ab {K.hex()} {OPC.hex()} 8000 000000000000", "IMSI '12ab'"),
    (f"{IMSI} zz {OPC.hex()} 8000 000000000000", "Ki is not hexadecimal"),
    (f"{IMSI} {K.hex()} {OPC.hex()[:-2]} 8000 000000000000", "OPc must be 32 hex digits"),
])
def test_bad_milenage_lines_name_the_field_and_line(tmp_path, line, words):
    path = tmp_path / "milenage.db"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=words) as error:
        load_milenage(path)
    assert "line 1" in str(error.value) and K.hex() not in str(error.value)
