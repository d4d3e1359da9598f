"""Ciphersuite table, key generation, and the RFC known-answer tests of every algorithm."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.errors import ConfigError
from aaa_mip6.suites import (
    AES_128_CBC,
    AES_XCBC_MAC_96,
    HMAC_SHA1_96,
    NULL,
    SUITES,
    TRIPLE_DES_CBC,
    new_keys,
    suite_by_code,
)

# name, code, (ikey, icv), (ekey, iv), block alignment — RFC 6618 §5.6.2 / notes §5.
TABLE = [
    ("NULL_SHA", "0002", 20, 12, 0, 0, 4),
    ("NULL_SHA256", "003b", 16, 12, 0, 0, 4),
    ("3DES_EDE_CBC_SHA", "000a", 20, 12, 24, 8, 8),
    ("AES_128_CBC_SHA", "002f", 20, 12, 16, 16, 16),
    ("AES_128_CBC_SHA256", "003c", 16, 12, 16, 16, 16),
]


@pytest.mark.parametrize("name, code, ikey, icv, ekey, iv, block", TABLE)
def test_suite_table(name, code, ikey, icv, ekey, iv, block):
    suite = SUITES[name]
    assert suite.name == name
    assert suite.code == bytes.fromhex(code)
    assert (suite.ikey_length, suite.icv_length) == (ikey, icv)
    assert (suite.ekey_length, suite.iv_length, suite.block_size) == (ekey, iv, block)
    assert suite_by_code(bytes.fromhex(code)) is suite


def test_exactly_the_five_suites_and_unknown_codes():
    assert set(SUITES) == {row[0] for row in TABLE}
    assert suite_by_code(b"\x00\x35") is None
    assert suite_by_code(b"") is None
    with pytest.raises(TypeError):
        SUITES["X"] = SUITES["NULL_SHA"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SUITES["NULL_SHA"].code = b"\x00\x2f"


@pytest.mark.parametrize("name", list(SUITES))
def test_new_keys_are_sized_fresh_and_hidden(name):
    suite = SUITES[name]
    keys, again = new_keys(suite), new_keys(suite)
    assert len(keys.mn_to_ha_ikey) == len(keys.ha_to_mn_ikey) == suite.ikey_length
    assert len(keys.mn_to_ha_ekey) == len(keys.ha_to_mn_ekey) == suite.ekey_length
    assert keys.mn_to_ha_ikey != keys.ha_to_mn_ikey != again.ha_to_mn_ikey
    if suite.ekey_length:
        assert keys.mn_to_ha_ekey != keys.ha_to_mn_ekey
    text = repr(keys)
    for key in dataclasses.astuple(keys):
        if key:
            assert key.hex() not in text and repr(key) not in text


@pytest.mark.parametrize("name", list(SUITES))
def test_suite_rejects_wrong_key_sizes_without_showing_them(name):
    suite = SUITES[name]
    ikey, ekey = b"\x5a" * suite.ikey_length, b"\xa5" * suite.ekey_length
    suite.keyed(ikey, ekey)
    for bad in ((ikey + b"\x5a", ekey), (ikey[:-1], ekey), (ikey, ekey + b"\xa5")):
        with pytest.raises(ConfigError) as caught:
            suite.keyed(*bad)
        assert "5a5a" not in str(caught.value) and "a5a5" not in str(caught.value)


# RFC 2202 §3, every HMAC-SHA-1 case, truncated to 96 bits as RFC 2404 uses it.
RFC2202 = [
    (b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
    (b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    (b"\xaa" * 20, b"\xdd" * 50, "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
    (bytes(range(1, 26)), b"\xcd" * 50, "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
    (b"\x0c" * 20, b"Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
    (
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "aa4ae5e15272d00e95705637ce8a3b55ed402112",
    ),
    (
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
        "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
    ),
]


@pytest.mark.parametrize("key, data, digest", RFC2202)
def test_hmac_sha1_96_rfc2202(key, data, digest):
    assert HMAC_SHA1_96.keyed(key)(data) == bytes.fromhex(digest)[:12]


def test_hmac_sha1_96_rfc2202_case5_digest96():
    # RFC 2202 prints the 96-bit truncation for case 5 explicitly.
    assert HMAC_SHA1_96.keyed(b"\x0c" * 20)(b"Test With Truncation").hex() == (
        "4c1a03424b55e07fe7f27be1"
    )


# RFC 3566 §4.6, all seven AES-XCBC-MAC-96 cases; key 000102...0f.
RFC3566 = [
    (b"", "75f0251d528ac01c4573dfd5"),
    (bytes(range(3)), "5b376580ae2f19afe7219cee"),
    (bytes(range(16)), "d2a246fa349b68a79998a439"),
    (bytes(range(20)), "47f51b4564966215b8985c63"),
    (bytes(range(32)), "f54f0ec8d2b9f3d36807734b"),
    (bytes(range(34)), "becbb3bccdb518a30677d548"),
    (bytes(1000), "f0dafee895db30253761103b"),
]


@pytest.mark.parametrize("message, mac96", RFC3566)
def test_aes_xcbc_mac_96_rfc3566(message, mac96):
    icv = AES_XCBC_MAC_96.keyed(bytes(range(16)))
    assert icv(message) == bytes.fromhex(mac96)
    assert icv(memoryview(message)) == bytes.fromhex(mac96)


@given(st.lists(st.binary(max_size=80), max_size=12))
def test_aes_xcbc_mac_96_chained_context_gives_each_message_its_own_mac(messages):
    # One keyed MAC over a sequence of messages, against a fresh key per message and
    # against the RFC 3566 vectors in between: the kept context never leaks across MACs.
    key = bytes(range(16))
    icv = AES_XCBC_MAC_96.keyed(key)
    for index, message in enumerate(messages):
        assert icv(message) == AES_XCBC_MAC_96.keyed(key)(message)
        vector, mac96 = RFC3566[index % len(RFC3566)]
        assert icv(vector) == bytes.fromhex(mac96)


# RFC 3602 §4 cases 1-4: AES-128-CBC encryption (case 5 is in test_transform.py).
RFC3602 = [
    (
        "06a9214036b8a15b512e03d534120006",
        "3dafba429d9eb430b422da802c9fac41",
        b"Single block msg",
        "e353779c1079aeb82708942dbe77181a",
    ),
    (
        "c286696d887c9aa0611bbb3e2025a45a",
        "562e17996d093d28ddb3ba695a2e6f58",
        bytes(range(32)),
        "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
    ),
    (
        "6c3ea0477630ce21a2ce334aa746c2cd",
        "c782dc4c098c66cbd9cd27d825682c81",
        b"This is a 48-byte message (exactly 3 AES blocks)",
        "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5"
        "021c19216bad525c8579695d83ba2684",
    ),
    (
        "56e47a38c5598974bc46903dba290349",
        "8ce82eefbea0da3c44699ed7db51b7d9",
        bytes(range(0xA0, 0xE0)),
        "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e"
        "35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
    ),
]


@pytest.mark.parametrize("key, iv, plaintext, ciphertext", RFC3602)
def test_aes_128_cbc_rfc3602(key, iv, plaintext, ciphertext):
    cipher = AES_128_CBC.keyed(bytes.fromhex(key))
    assert cipher.encrypt(bytes.fromhex(iv), plaintext) == bytes.fromhex(ciphertext)
    assert cipher.decrypt(bytes.fromhex(iv), bytes.fromhex(ciphertext)) == plaintext


@given(st.binary(min_size=24, max_size=24), st.binary(min_size=8, max_size=8), st.data())
def test_3des_cbc_round_trip(key, iv, data):
    blocks = data.draw(st.binary(max_size=64).map(lambda b: b[: len(b) - len(b) % 8]))
    cipher = TRIPLE_DES_CBC.keyed(key)
    encrypted = cipher.encrypt(iv, blocks)
    assert len(encrypted) == len(blocks)
    assert cipher.decrypt(iv, encrypted) == blocks


def test_null_cipher_is_identity():
    null = NULL.keyed(b"")
    assert null.encrypt(b"", b"abcd") == null.decrypt(b"", memoryview(b"abcd")) == b"abcd"


def test_keyed_objects_do_not_show_keys():
    key = b"\x77" * 16
    assert "7777" not in repr(AES_128_CBC.keyed(key)) and "\\x77" not in repr(
        AES_128_CBC.keyed(key)
    )
