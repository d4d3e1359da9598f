"""Known-answer tests for aaa_mip6.mschap: RFC 1320 (MD4), RFC 2759 §9.2, RFC 3079 §3.5."""

import pytest
from hypothesis import given, strategies as st

from aaa_mip6 import mschap

# RFC 2759 §9.2 sample (also the RFC 3079 §3.5 input).
USER = b"User"
PASSWORD = "clientPass"
AUTHENTICATOR_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"


@pytest.mark.parametrize("message, digest", [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
])
def test_md4_rfc1320_suite(message, digest):
    assert mschap.md4(message).hex() == digest


@given(st.binary(max_size=300))
def test_md4_digest_is_16_octets_and_sensitive_to_every_length(data):
    assert len(mschap.md4(data)) == 16
    assert mschap.md4(data) != mschap.md4(data + b"\x00")


def test_rfc2759_challenge_hash():
    assert mschap.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER) == \
        bytes.fromhex("D02E4386BCE91226")


def test_rfc2759_password_hashes():
    password_hash = mschap.nt_password_hash(PASSWORD)
    assert password_hash == bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
    assert mschap.hash_nt_password_hash(password_hash) == \
        bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")


def test_rfc2759_nt_response():
    assert mschap.generate_nt_response(
        AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD) == NT_RESPONSE


def test_rfc2759_authenticator_response():
    assert mschap.generate_authenticator_response(
        PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER
    ) == AUTHENTICATOR_RESPONSE


@pytest.mark.parametrize("received, ok", [
    (AUTHENTICATOR_RESPONSE.encode(), True),
    (AUTHENTICATOR_RESPONSE.lower().replace("s=", "S=").encode(), True),
    (AUTHENTICATOR_RESPONSE[:-1].encode() + b"7", False),
    (b"S=" + b"0" * 40, False),
])
def test_check_authenticator_response(received, ok):
    assert mschap.check_authenticator_response(
        received, PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER) is ok


def test_rfc3079_master_and_start_keys():
    password_hash_hash = mschap.hash_nt_password_hash(mschap.nt_password_hash(PASSWORD))
    master = mschap.master_key(password_hash_hash, NT_RESPONSE)
    assert master == bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
    # §3.5.3: the server's 128-bit send start key.
    assert mschap.asymmetric_start_key(master, 16, is_send=True, is_server=True) == \
        bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
    assert mschap.asymmetric_start_key(master, 8, is_send=True, is_server=True) == \
        bytes.fromhex("8B7CDC149B993A1B")


def test_peer_msk_is_what_the_server_sends_as_recv_key_then_send_key():
    master = mschap.master_key(
        mschap.hash_nt_password_hash(mschap.nt_password_hash(PASSWORD)), NT_RESPONSE)
    server_recv = mschap.asymmetric_start_key(master, 16, is_send=False, is_server=True)
    server_send = mschap.asymmetric_start_key(master, 16, is_send=True, is_server=True)
    assert server_recv != server_send
    assert mschap.peer_msk(PASSWORD, NT_RESPONSE) == server_recv + server_send


def test_non_ascii_password_is_hashed_as_utf16le():
    assert mschap.nt_password_hash("pässwörd") == mschap.md4("pässwörd".encode("utf-16-le"))
    assert mschap.nt_password_hash("pässwörd") != mschap.nt_password_hash("passwort")
