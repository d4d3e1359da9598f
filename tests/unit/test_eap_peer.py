"""The EAP peer state machine (mn.eap.peer) and the MD5, GTC and MSCHAPv2 methods."""

import struct

import pytest
from hypothesis import given, strategies as st

from aaa_mip6 import mschap
from aaa_mip6.eap import Code, EapError, EapPacket, Type, decode
from aaa_mip6.errors import ConfigError
from mn.eap import EapCredentials
from mn.eap import peer as peer_module
from mn.eap.peer import EapPeer

CREDENTIALS = EapCredentials("mn1@example.org", "secret-password")
PEER_METHODS = ["md5", "gtc", "mschapv2", "pwd"]


def request(identifier, method_type, data=b""):
    return EapPacket(Code.REQUEST, identifier, method_type, data).encode()


def success(identifier):
    return EapPacket(Code.SUCCESS, identifier).encode()


def md5_request(identifier, challenge=bytes(range(16))):
    return request(identifier, Type.MD5_CHALLENGE, bytes([len(challenge)]) + challenge)


# --- Identity, Nak, Notification, retransmission --------------------------------------------

def test_identity_is_answered_with_the_identity():
    response = decode(EapPeer("md5", CREDENTIALS).receive(request(5, Type.IDENTITY)))
    assert (response.code, response.identifier, response.type) == (Code.RESPONSE, 5, Type.IDENTITY)
    assert response.data == b"mn1@example.org"


def test_identity_uses_the_anonymous_outer_identity_when_configured():
    credentials = EapCredentials("real@example.org", "pw", anonymous_identity="anon@example.org")
    response = decode(EapPeer("md5", credentials).receive(request(1, Type.IDENTITY)))
    assert response.data == b"anon@example.org"


def test_other_method_is_naked_with_the_configured_one():
    response = decode(EapPeer("mschapv2", CREDENTIALS).receive(md5_request(2)))
    assert (response.type, response.data) == (Type.NAK, bytes([Type.MSCHAPV2]))


def test_notification_is_acknowledged_and_recorded():
    peer = EapPeer("md5", CREDENTIALS)
    response = decode(peer.receive(request(3, Type.NOTIFICATION, b"maintenance at 5")))
    assert (response.type, response.data) == (Type.NOTIFICATION, b"")
    assert peer.notifications == ["maintenance at 5"]
    assert not peer.method_selected


def test_retransmitted_request_gets_the_same_response_without_rerunning_the_method():
    peer = EapPeer("mschapv2", CREDENTIALS)
    challenge = mschapv2_challenge(7)
    first = peer.receive(challenge)
    assert peer.receive(challenge) == first  # a fresh run would pick a new peer challenge


def test_identity_during_a_method_is_refused():
    peer = EapPeer("mschapv2", CREDENTIALS)
    peer.receive(mschapv2_challenge(1))
    with pytest.raises(EapError):
        peer.receive(request(2, Type.IDENTITY))


def test_request_of_another_method_after_selection_is_refused():
    peer = EapPeer("mschapv2", CREDENTIALS)
    peer.receive(mschapv2_challenge(1))
    with pytest.raises(EapError):
        peer.receive(md5_request(2))


@pytest.mark.parametrize("method_type", [Type.NAK, 254])
def test_nak_and_expanded_requests_are_refused(method_type):
    with pytest.raises(EapError):
        EapPeer("md5", CREDENTIALS).receive(request(1, method_type, b"\x04"))


def test_response_packets_are_refused():
    with pytest.raises(EapError):
        EapPeer("md5", CREDENTIALS).receive(EapPacket(Code.RESPONSE, 1, Type.IDENTITY).encode())


# --- Success and Failure ------------------------------------------------------------------------

def test_success_before_the_method_is_done_is_refused():
    peer = EapPeer("md5", CREDENTIALS)
    peer.receive(request(1, Type.IDENTITY))
    with pytest.raises(EapError):
        peer.receive(success(1))
    assert not peer.success


def test_success_after_the_method_ends_the_conversation():
    peer = EapPeer("md5", CREDENTIALS)
    peer.receive(md5_request(4))
    assert peer.method_done and peer.msk is None  # EAP-MD5 derives no key
    assert peer.receive(success(4)) is None
    assert peer.success and not peer.failure
    with pytest.raises(EapError):
        peer.receive(md5_request(5))


def test_success_with_another_identifier_is_refused():
    peer = EapPeer("md5", CREDENTIALS)
    peer.receive(md5_request(4))
    with pytest.raises(EapError):
        peer.receive(success(9))


@pytest.mark.parametrize("last, success_id", [(4, 5), (255, 0)])
def test_success_one_above_the_last_response_is_accepted(last, success_id):
    """FreeRADIUS's EAP-SIM numbers its Success one above the last Response."""
    peer = EapPeer("md5", CREDENTIALS)
    peer.receive(md5_request(last))
    peer.receive(success(success_id))
    assert peer.success


def test_failure_ends_the_conversation():
    peer = EapPeer("md5", CREDENTIALS)
    peer.receive(request(1, Type.IDENTITY))
    assert peer.receive(EapPacket(Code.FAILURE, 1).encode()) is None
    assert peer.failure and not peer.success


def test_unknown_method_name_is_a_config_error():
    with pytest.raises(ConfigError):
        EapPeer("nosuchmethod", CREDENTIALS)
    with pytest.raises(ConfigError):
        EapPeer("../md5", CREDENTIALS)


def test_missing_dependency_of_a_method_module_is_not_hidden(monkeypatch):
    def import_fails(name):
        raise ModuleNotFoundError("No module named 'somelib'", name="somelib")

    monkeypatch.setattr(peer_module.importlib, "import_module", import_fails)
    with pytest.raises(ModuleNotFoundError):
        EapPeer("brandnew", CREDENTIALS)


# --- EAP-MD5 and EAP-GTC ---------------------------------------------------------------------

def test_md5_response_is_the_rfc1994_hash_and_the_name():
    response = decode(EapPeer("md5", CREDENTIALS).receive(md5_request(7)))
    # MD5(0x07 || "secret-password" || 00 01 .. 0f), computed by hand once.
    assert response.data == bytes([16]) + bytes.fromhex(
        "575430b0eda17d932b0f61f0017bccf7") + b"mn1@example.org"


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x10" + bytes(15)])
def test_md5_truncated_challenge_is_refused(data):
    with pytest.raises(EapError):
        EapPeer("md5", CREDENTIALS).receive(request(1, Type.MD5_CHALLENGE, data))


def test_gtc_answers_the_prompt_with_the_password():
    peer = EapPeer("gtc", CREDENTIALS)
    response = decode(peer.receive(request(2, Type.GTC, b"Password: ")))
    assert (response.type, response.data) == (Type.GTC, b"secret-password")
    assert peer.method_done


@pytest.mark.parametrize("method", PEER_METHODS)
def test_method_without_password_fails_cleanly(method):
    peer = EapPeer(method, EapCredentials("mn1@example.org"))
    first = {"md5": md5_request(1), "gtc": request(1, Type.GTC, b"?"),
             "mschapv2": mschapv2_challenge(1), "pwd": pwd_id_request(1)}[method]
    with pytest.raises(EapError) as caught:
        peer.receive(first)
    assert caught.value.reason == "no-credentials"


# --- EAP-MSCHAPv2 against a tiny server built from aaa_mip6.mschap ---------------------------

AUTH_CHALLENGE = bytes(range(100, 116))


def mschapv2_challenge(identifier, ms_id=0x42):
    body = bytes([16]) + AUTH_CHALLENGE + b"radius"
    return request(identifier, Type.MSCHAPV2, struct.pack("!BBH", 1, ms_id, 4 + len(body)) + body)


def mschapv2_message(identifier, opcode, text, ms_id=0x42):
    return request(identifier, Type.MSCHAPV2, struct.pack("!BBH", opcode, ms_id, 4 + len(text)) + text)


def pwd_id_request(identifier):
    return request(identifier, Type.PWD, b"\x01" + struct.pack("!HBB4sB", 19, 1, 1, b"tokn", 0) + b"srv")


def answer_challenge(peer):
    response = decode(peer.receive(mschapv2_challenge(1)))
    opcode, ms_id, ms_length, value_size = struct.unpack_from("!BBHB", response.data)
    assert (opcode, ms_id, ms_length, value_size) == (2, 0x42, len(response.data), 49)
    value = response.data[5:54]
    assert response.data[54:] == b"mn1@example.org"
    peer_challenge, nt_response = value[:16], value[24:48]
    assert nt_response == mschap.generate_nt_response(
        AUTH_CHALLENGE, peer_challenge, b"mn1@example.org", "secret-password")
    return peer_challenge, nt_response


def test_mschapv2_success_verifies_the_server_and_derives_the_msk():
    peer = EapPeer("mschapv2", CREDENTIALS)
    peer_challenge, nt_response = answer_challenge(peer)
    proof = mschap.generate_authenticator_response(
        "secret-password", nt_response, peer_challenge, AUTH_CHALLENGE, b"mn1@example.org")
    response = decode(peer.receive(mschapv2_message(2, 3, proof.encode() + b" M=welcome")))
    assert response.data == b"\x03"
    assert peer.method_done
    assert peer.msk == mschap.peer_msk("secret-password", nt_response) and len(peer.msk) == 32
    assert peer.receive(success(2)) is None and peer.success


def test_mschapv2_wrong_server_proof_is_refused():
    peer = EapPeer("mschapv2", CREDENTIALS)
    answer_challenge(peer)
    with pytest.raises(EapError) as caught:
        peer.receive(mschapv2_message(2, 3, b"S=" + b"A" * 40))
    assert caught.value.reason == "bad-auth"
    assert not peer.method_done and peer.msk is None


def test_mschapv2_failure_is_acknowledged_and_blocks_success():
    peer = EapPeer("mschapv2", CREDENTIALS)
    answer_challenge(peer)
    response = decode(peer.receive(mschapv2_message(2, 4, b"E=691 R=0 V=3 M=denied")))
    assert response.data == b"\x04"
    assert peer.method.failure_message.startswith("E=691")
    with pytest.raises(EapError):
        peer.receive(success(2))


def test_mschapv2_bad_ms_length_is_refused():
    packet = bytearray(mschapv2_challenge(1))
    packet[8] ^= 0xFF  # MS-Length low octet
    with pytest.raises(EapError):
        EapPeer("mschapv2", CREDENTIALS).receive(bytes(packet))


# --- Garbage never escapes EapError --------------------------------------------------------------

method_types = st.sampled_from([1, 2, 3, 4, 6, 26, 52, 254, 0, 255])
eap_requests = st.builds(
    lambda identifier, method_type, data: request(identifier, method_type, data),
    st.integers(0, 255), method_types, st.binary(max_size=120))
eap_ends = st.builds(lambda code, identifier: EapPacket(code, identifier).encode(),
                     st.sampled_from([Code.SUCCESS, Code.FAILURE]), st.integers(0, 255))
inputs = st.lists(st.one_of(st.binary(max_size=80), eap_requests, eap_ends), max_size=6)


@pytest.mark.parametrize("method", PEER_METHODS)
@given(packets=inputs)
def test_peer_garbage_only_raises_eap_error(method, packets):
    peer = EapPeer(method, CREDENTIALS)
    for packet in packets:
        try:
            response = peer.receive(packet)
        except EapError:
            continue
        if response is not None:
            assert decode(response).code is Code.RESPONSE


@given(data=st.binary(max_size=200))
def test_mschapv2_after_challenge_garbage_only_raises_eap_error(data):
    peer = EapPeer("mschapv2", CREDENTIALS)
    answer_challenge(peer)
    try:
        peer.receive(request(2, Type.MSCHAPV2, data))
    except EapError:
        pass
