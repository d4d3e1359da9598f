"""The MN's password EAP methods against a real FreeRADIUS 3.2, relayed over RADIUS."""

import pytest

from aaa_mip6.eap import EapError
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration.radius_eap_driver import RadiusEapDriver, split_eap_message

pytestmark = pytest.mark.integration

KEYED_METHODS = {"mschapv2": 32, "pwd": 64}  # MSK octets; md5 and gtc derive none


def run(server, method, password):
    peer = EapPeer(method, EapCredentials(server.user, password))
    return RadiusEapDriver(server.host, server.port, server.secret).authenticate(peer, server.user)


@pytest.mark.parametrize("method", ["md5", "gtc", "mschapv2", "pwd"])
def test_method_succeeds_and_both_ends_hold_the_same_msk(freeradius, method):
    accepted, msk, peer, reply = run(freeradius, method, freeradius.password)
    assert accepted and peer.success and peer.method_done
    if method in KEYED_METHODS:
        assert msk is not None and len(msk) == KEYED_METHODS[method]
        assert peer.msk == msk
    else:
        assert msk is None and peer.msk is None
    assert reply["Framed-IPv6-Address"] == [freeradius.framed_ipv6_address]
    assert reply["Framed-IP-Address"] == [freeradius.framed_ip_address]
    prefix = freeradius.home_link_prefix
    assert reply["MIP6-Home-Link-Prefix"] == [bytes([prefix.prefixlen])
                                              + prefix.network_address.packed]


@pytest.mark.parametrize("method", ["md5", "gtc", "mschapv2"])
def test_wrong_password_gets_access_reject(freeradius, method):
    accepted, msk, peer, _ = run(freeradius, method, "wrong-" + freeradius.password)
    assert not accepted and msk is None
    assert peer.failure and not peer.success


def test_pwd_wrong_password_is_stopped_by_the_peer_before_it_confirms(freeradius):
    # RFC 5931 confirm exchange: the peer must not send its confirm when the server's fails;
    # answering would give a fake server an offline dictionary attack.
    try:
        accepted, msk, peer, _ = run(freeradius, "pwd", "wrong-" + freeradius.password)
    except EapError as caught:
        assert caught.reason == "bad-auth"  # the server's confirm did not verify
        return
    # FreeRADIUS 3.2.1 at times ends the exchange at the peer's commit instead ("Failed
    # continuing EAP PWD session" in its log; seen in full runs only, cause not found):
    # then it never sent a confirm, and the peer sent none either. The refusal itself is
    # tests/unit/test_eap_pwd.py's.
    assert not accepted and msk is None
    assert peer.failure and not peer.method_done and peer.msk is None


def test_eap_message_split_and_join_at_253_octets():
    packet = bytes(range(256)) * 3
    chunks = split_eap_message(packet)
    assert [len(c) for c in chunks] == [253, 253, 253, 9]
    assert b"".join(chunks) == packet
