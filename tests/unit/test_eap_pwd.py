"""EAP-pwd (mn.eap.pwd): P-256 arithmetic, the RFC 5931 KDF, and whole exchanges
against a small server written here from the RFC (FreeRADIUS is the real check,
in tests/integration/test_eap_freeradius.py)."""

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings, strategies as st

from aaa_mip6.eap import Code, EapError, EapPacket, Type, decode
from mn.eap import EapCredentials
from mn.eap import pwd
from mn.eap.peer import EapPeer

G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
PEER_ID = "mn1@example.org"
SERVER_ID = b"radius.example.org"
PASSWORD = "secret-password"
TOKEN = bytes([1, 2, 3, 4])


# --- P-256 ---------------------------------------------------------------------------------------

@settings(max_examples=10)
@given(st.integers(1, pwd.ORDER - 1))
def test_multiply_matches_cryptography_public_keys(scalar):
    public = ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_numbers()
    assert pwd.multiply(scalar, G) == (public.x, public.y)


def test_group_laws():
    assert pwd.on_curve(*G)
    assert pwd.add(G, G) == pwd.multiply(2, G)
    assert pwd.add(G, pwd.negate(G)) is None
    assert pwd.multiply(pwd.ORDER, G) is None
    assert pwd.add(None, G) == G


def test_point_with_x_picks_the_parity():
    odd, even = pwd.point_with_x(G[0], True), pwd.point_with_x(G[0], False)
    assert {odd, even} == {G, pwd.negate(G)}
    assert odd[1] & 1 and not even[1] & 1


def test_point_with_x_off_curve_is_none():
    x = next(x for x in range(1, 50) if pwd.point_with_x(x, True) is None)
    rhs = (x ** 3 + pwd.A * x + pwd.B) % pwd.P
    assert pow(rhs, (pwd.P - 1) // 2, pwd.P) == pwd.P - 1  # Euler: not a square


# --- RFC 5931 functions -----------------------------------------------------------------------

def test_kdf_is_the_counter_mode_of_section_2_5():
    key, label = b"k" * 32, b"label"
    length = struct.pack("!H", 512)
    k1 = hmac.new(key, b"\x00\x01" + label + length, hashlib.sha256).digest()
    k2 = hmac.new(key, k1 + b"\x00\x02" + label + length, hashlib.sha256).digest()
    assert pwd.kdf(key, label, 512) == k1 + k2
    assert pwd.kdf(key, label, 256) != k1  # the length is part of every block


def test_random_function_is_hmac_sha256_with_a_zero_key():
    assert pwd.random_function(b"a", b"b") == hmac.new(bytes(32), b"ab", hashlib.sha256).digest()


def test_password_element_regression_vector():
    # Recorded from this implementation after it authenticated against FreeRADIUS 3.2.
    assert pwd.password_element(TOKEN, PEER_ID.encode(), SERVER_ID, PASSWORD.encode()) == (
        0x1947BECD7DF19E2DA0023A7F9B13B0B84B05F2AF8491A63A5860384537548323,
        0x769A866F6CD117E42B959CD150C4762178EA0907B888AB48BB7DA3E82C5F48AC)


def test_password_element_depends_on_every_input():
    base = pwd.password_element(TOKEN, b"p", b"s", b"pw")
    assert pwd.on_curve(*base)
    assert base != pwd.password_element(b"\x00\x00\x00\x00", b"p", b"s", b"pw")
    assert base != pwd.password_element(TOKEN, b"p", b"s", b"pw2")
    assert base != pwd.password_element(TOKEN, b"q", b"s", b"pw")


# --- whole exchanges against a server built from the RFC --------------------------------------

def pwd_request(identifier, exchange, payload, flags=0):
    return EapPacket(Code.REQUEST, identifier, Type.PWD, bytes([exchange | flags]) + payload).encode()


def id_payload(group=19, function=1, prf=1, prep=0):
    return struct.pack("!HBB4sB", group, function, prf, TOKEN, prep) + SERVER_ID


def element(point):
    return point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")


def scalar(value):
    return value.to_bytes(32, "big")


class Server:
    """Just enough of an RFC 5931 server to drive the peer."""

    def __init__(self, password=PASSWORD):
        self.password = password.encode()
        self.private, mask = 1234567, 7654321
        self.scalar = (self.private + mask) % pwd.ORDER
        self.pwe = None
        self.mask = mask

    def run_to_confirm(self, peer):
        response = decode(peer.receive(pwd_request(1, 1, id_payload())))
        assert response.data[0] == 1 and response.data[1:10] == id_payload()[:9]
        peer_id = response.data[10:]
        assert peer_id == PEER_ID.encode()
        self.pwe = pwd.password_element(TOKEN, peer_id, SERVER_ID, self.password)
        self.element = pwd.negate(pwd.multiply(self.mask, self.pwe))
        response = decode(peer.receive(pwd_request(2, 2, element(self.element) + scalar(self.scalar))))
        assert response.data[0] == 2 and len(response.data) == 97
        peer_element = (int.from_bytes(response.data[1:33], "big"),
                        int.from_bytes(response.data[33:65], "big"))
        self.peer_scalar = int.from_bytes(response.data[65:], "big")
        assert pwd.on_curve(*peer_element) and 1 < self.peer_scalar < pwd.ORDER
        self.peer_bytes = element(peer_element) + scalar(self.peer_scalar)
        shared = pwd.multiply(self.private, pwd.add(
            pwd.multiply(self.peer_scalar, self.pwe), peer_element))
        self.k = scalar(shared[0])
        return pwd.random_function(self.k, element(self.element) + scalar(self.scalar),
                                   self.peer_bytes, pwd.CIPHERSUITE)

    def msk(self, confirm_p, confirm_s):
        master = pwd.random_function(self.k, confirm_p, confirm_s)
        method_id = pwd.random_function(pwd.CIPHERSUITE, scalar(self.peer_scalar), scalar(self.scalar))
        return pwd.kdf(master, bytes([52]) + method_id, 1024)[:64]


def test_full_exchange_gives_both_sides_the_same_msk():
    peer, server = EapPeer("pwd", EapCredentials(PEER_ID, PASSWORD)), Server()
    confirm_s = server.run_to_confirm(peer)
    response = decode(peer.receive(pwd_request(3, 3, confirm_s)))
    confirm_p = response.data[1:]
    assert confirm_p == pwd.random_function(
        server.k, server.peer_bytes, element(server.element) + scalar(server.scalar), pwd.CIPHERSUITE)
    assert peer.method_done and len(peer.msk) == 64
    assert peer.msk == server.msk(confirm_p, confirm_s)
    assert peer.receive(EapPacket(Code.SUCCESS, 3).encode()) is None and peer.success


def test_wrong_password_is_caught_at_the_server_confirm_and_no_confirm_is_sent():
    peer = EapPeer("pwd", EapCredentials(PEER_ID, PASSWORD))
    confirm_s = Server(password="other").run_to_confirm(peer)
    with pytest.raises(EapError) as caught:
        peer.receive(pwd_request(3, 3, confirm_s))
    assert caught.value.reason == "bad-auth"
    assert not peer.method_done and peer.msk is None


def test_fragmented_id_request_is_acknowledged_then_answered():
    peer = EapPeer("pwd", EapCredentials(PEER_ID, PASSWORD))
    whole = id_payload()
    ack = decode(peer.receive(pwd_request(1, 1, struct.pack("!H", len(whole)) + whole[:5],
                                          flags=pwd.LENGTH_BIT | pwd.MORE_BIT)))
    assert ack.data == b"\x01"
    response = decode(peer.receive(pwd_request(2, 1, whole[5:])))
    assert response.data[10:] == PEER_ID.encode()


@pytest.mark.parametrize("payload", [
    id_payload(group=20), id_payload(function=2), id_payload(prf=5), id_payload(prep=1),
])
def test_unsupported_ciphersuite_or_prep_is_refused(payload):
    with pytest.raises(EapError) as caught:
        EapPeer("pwd", EapCredentials(PEER_ID, PASSWORD)).receive(pwd_request(1, 1, payload))
    assert caught.value.reason == "unsupported"


@pytest.mark.parametrize("commit", [
    element(G) + scalar(0), element(G) + scalar(1), element(G) + scalar(pwd.ORDER),
    element((G[0], G[1] ^ 1)) + scalar(5), element(G) + scalar(5)[:-1],
])
def test_bad_server_commit_is_refused(commit):
    peer = EapPeer("pwd", EapCredentials(PEER_ID, PASSWORD))
    peer.receive(pwd_request(1, 1, id_payload()))
    with pytest.raises(EapError):
        peer.receive(pwd_request(2, 2, commit))


def test_exchanges_out_of_order_are_refused():
    peer = EapPeer("pwd", EapCredentials(PEER_ID, PASSWORD))
    with pytest.raises(EapError) as caught:
        peer.receive(pwd_request(1, 2, element(G) + scalar(5)))
    assert caught.value.reason == "unexpected"


@settings(max_examples=30)
@given(stage=st.integers(0, 2), data=st.binary(max_size=120))
def test_garbage_at_every_stage_only_raises_eap_error(stage, data):
    peer, server = EapPeer("pwd", EapCredentials(PEER_ID, PASSWORD)), Server()
    if stage:
        server.run_to_confirm(peer) if stage == 2 else peer.receive(pwd_request(1, 1, id_payload()))
    try:
        response = peer.receive(EapPacket(Code.REQUEST, 9, Type.PWD, data).encode())
    except EapError:
        return
    assert decode(response).code is Code.RESPONSE
