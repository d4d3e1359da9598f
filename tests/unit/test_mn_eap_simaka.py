"""The MN's EAP-AKA, EAP-AKA' and EAP-SIM against a server built from the same library parts:
the RFC rules the peer must keep, and every bad input answered as the RFCs say."""

import logging
import os

import pytest

from aaa_mip6 import simaka
from aaa_mip6.eap import Code, EapPacket, Type
from aaa_mip6.milenage import Milenage
from aaa_mip6.simaka import At, Message, Subtype
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer

IMSI = "232010000000000"
K, OPC = bytes.fromhex("90dca4eda45b53cf0f12d7c9c3bc6a89"), bytes.fromhex(
    "cb9cccc4b9258e6dca4760379fb82581")
AMF = b"\x80\x00"
USIM = Milenage(K, OPC)


@pytest.fixture
def usim(tmp_path):
    path = tmp_path / "mn.usim"
    path.write_text(f"{IMSI} {K.hex()} {OPC.hex()} {AMF.hex()} 000000000040\n")
    return path


def peer_for(method, usim, tmp_path, **extra):
    return EapPeer(method, EapCredentials("unused", usim=usim, eap_state=tmp_path / "state",
                                          realm="example.org", **extra))


def request(eap_type, identifier, message):
    return EapPacket(Code.REQUEST, identifier, eap_type, message.encode()).encode()


def challenge(eap_type, identity, sqn, *, network=b"WLAN", tamper=None, extra_attributes=()):
    """A server's AKA/AKA' challenge for ``identity`` at ``sqn``; returns (packet, keys, res)."""
    rand = os.urandom(16)
    autn, vector = USIM.generate(rand, sqn.to_bytes(6, "big"), AMF)
    message = Message(Subtype.AKA_CHALLENGE)
    message.add(At.RAND, simaka.fixed_value(rand)).add(At.AUTN, simaka.fixed_value(autn))
    if eap_type == simaka.EAP_AKA_PRIME:
        message.add(At.KDF, simaka.short_value(1))
        message.add(At.KDF_INPUT, simaka.counted_value(network))
        ck, ik = simaka.ck_ik_prime(vector.ck, vector.ik, network, autn[:6])
        keys = simaka.aka_prime_keys(ck, ik, identity.encode())
    else:
        keys = simaka.keys_from_mk(simaka.aka_mk(identity.encode(), vector.ik, vector.ck))
    for kind, value in extra_attributes:
        message.add(kind, value)
    simaka.sign(keys.k_aut, eap_type, 1, 7, message)
    packet = bytearray(request(eap_type, 7, message))
    if tamper is not None:
        packet[tamper] ^= 0x01
    return bytes(packet), keys, vector.res


def answer(peer, packet):
    response = peer.receive(packet)
    return response[1], response[4], simaka.decode(response[5:])


def identity_round(peer):
    return peer.receive(EapPacket(Code.REQUEST, 1, Type.IDENTITY).encode())[5:].decode()


@pytest.mark.parametrize("method, eap_type, prefix", [
    ("aka", simaka.EAP_AKA, "0"), ("aka-prime", simaka.EAP_AKA_PRIME, "6")])
def test_full_authentication_gives_the_servers_msk(usim, tmp_path, method, eap_type, prefix):
    peer = peer_for(method, usim, tmp_path)
    identity = identity_round(peer)
    assert identity == f"{prefix}{IMSI}@example.org"
    packet, keys, res = challenge(eap_type, identity, 0x40 + 32)
    _, _, reply = answer(peer, packet)
    assert reply.subtype == Subtype.AKA_CHALLENGE
    assert simaka.counted(reply.get(At.RES), At.RES, unit_bits=True) == res
    simaka.verify(keys.k_aut, eap_type, 2, 7, reply)
    assert peer.msk == keys.msk
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o600


def test_a_replayed_or_old_sqn_draws_a_synchronisation_failure_the_auc_can_read(usim, tmp_path):
    peer = peer_for("aka", usim, tmp_path)
    identity = identity_round(peer)
    packet, _, _ = challenge(simaka.EAP_AKA, identity, 0x40)  # not above the USIM's SQN
    _, _, reply = answer(peer, packet)
    assert reply.subtype == Subtype.AKA_SYNCHRONIZATION_FAILURE
    rand = simaka.fixed(simaka.decode(packet[5:]), At.RAND, 16)
    assert USIM.sqn_from_auts(rand, reply.get(At.AUTS)) == (0x40).to_bytes(6, "big")
    assert not peer.method_done


def test_an_sqn_far_ahead_is_not_accepted(usim, tmp_path):
    peer = peer_for("aka", usim, tmp_path)
    packet, _, _ = challenge(simaka.EAP_AKA, identity_round(peer), 0x40 + (1 << 29))
    assert answer(peer, packet)[2].subtype == Subtype.AKA_SYNCHRONIZATION_FAILURE


def test_an_accepted_sqn_is_never_accepted_again_even_by_a_new_process(usim, tmp_path):
    first = peer_for("aka", usim, tmp_path)
    packet, _, _ = challenge(simaka.EAP_AKA, identity_round(first), 0x80)
    assert answer(first, packet)[2].subtype == Subtype.AKA_CHALLENGE
    again = peer_for("aka", usim, tmp_path)
    identity_round(again)
    assert answer(again, packet)[2].subtype == Subtype.AKA_SYNCHRONIZATION_FAILURE


def test_another_network_key_draws_an_authentication_reject(usim, tmp_path):
    peer = peer_for("aka", usim, tmp_path)
    packet, _, _ = challenge(simaka.EAP_AKA, identity_round(peer), 0x80, tamper=45)  # in MAC-A
    assert answer(peer, packet)[2].subtype == Subtype.AKA_AUTHENTICATION_REJECT
    assert "AUTN does not verify" in peer.method.failed_reason


@pytest.mark.parametrize("offset", [-1, -16])  # last and first octet of AT_MAC's value
def test_a_bad_at_mac_draws_a_client_error_and_no_msk(usim, tmp_path, offset):
    peer = peer_for("aka", usim, tmp_path)
    packet, _, _ = challenge(simaka.EAP_AKA, identity_round(peer), 0x80)
    packet = packet[:offset] + bytes([packet[offset] ^ 1]) + packet[len(packet) + offset + 1:]
    _, _, reply = answer(peer, packet)
    assert reply.subtype == Subtype.CLIENT_ERROR
    assert simaka.short(reply, At.CLIENT_ERROR_CODE) == 0
    assert peer.msk is None and not peer.method_done


@pytest.mark.parametrize("type_data", [
    bytes([Subtype.AKA_CHALLENGE, 0, 0, 99, 1, 0, 0]),  # unknown non-skippable attribute
    bytes([Subtype.AKA_CHALLENGE, 0, 0, At.RAND, 5, 0]),  # truncated
    bytes([Subtype.AKA_CHALLENGE, 0]),  # no reserved octets
    bytes([Subtype.AKA_CHALLENGE, 0, 0]),  # no RAND/AUTN
])
def test_malformed_requests_draw_a_client_error(usim, tmp_path, type_data):
    peer = peer_for("aka", usim, tmp_path)
    identity_round(peer)
    response = peer.receive(EapPacket(Code.REQUEST, 3, simaka.EAP_AKA, type_data).encode())
    assert simaka.decode(response[5:]).subtype == Subtype.CLIENT_ERROR
    assert not peer.method_done


def test_aka_prime_refuses_another_network_name(usim, tmp_path):
    peer = peer_for("aka-prime", usim, tmp_path, network_name="WLAN")
    packet, _, _ = challenge(simaka.EAP_AKA_PRIME, identity_round(peer), 0x80, network=b"HRPD")
    assert answer(peer, packet)[2].subtype == Subtype.AKA_AUTHENTICATION_REJECT
    assert "network name 'HRPD'" in peer.method.failed_reason


def test_aka_refuses_a_bidding_down_from_an_aka_prime_server(usim, tmp_path):
    peer = peer_for("aka", usim, tmp_path)
    identity = identity_round(peer)
    packet, _, _ = challenge(simaka.EAP_AKA, identity, 0x80, extra_attributes=[
        (At.BIDDING, simaka.short_value(simaka.BIDDING_SUPPORTS_AKA_PRIME))])
    assert answer(peer, packet)[2].subtype == Subtype.CLIENT_ERROR
    assert "bidding down" in peer.method.failed_reason


def test_no_key_reaches_the_log(usim, tmp_path, caplog):
    peer = peer_for("aka", usim, tmp_path)
    with caplog.at_level(logging.DEBUG):
        packet, keys, _ = challenge(simaka.EAP_AKA, identity_round(peer), 0x80)
        answer(peer, packet)
        bad, _, _ = challenge(simaka.EAP_AKA, "x", 0xA0, tamper=-1)
        peer_for("aka", usim, tmp_path).receive(bad)
    for secret in (keys.msk, keys.k_aut, keys.k_encr, K, OPC):
        assert secret.hex() not in caplog.text


def test_missing_usim_names_the_flag(tmp_path):
    from aaa_mip6.errors import ConfigError

    with pytest.raises(ConfigError, match="--eap aka needs --usim"):
        EapPeer("aka", EapCredentials("unused"))
    triplets = tmp_path / "t"
    triplets.write_text(f"{IMSI}:{'00' * 8}:{'00' * 4}:{'00' * 16}\n")
    with pytest.raises(ConfigError, match="--sim-triplets serves --eap sim only"):
        EapPeer("aka", EapCredentials("unused", sim_triplets=triplets))
