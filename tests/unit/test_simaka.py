"""The SIM/AKA/AKA' codec and key derivations: the RFCs' appendix vectors, round trips, and
every malformed input a typed error."""

import hashlib
import struct

import pytest
from hypothesis import given, strategies as st

from aaa_mip6 import simaka
from aaa_mip6.simaka import At, Message, SimAkaError

H = bytes.fromhex

# RFC 4186 Appendix A: the full-authentication example.
SIM_IDENTITY = b"1244070100000001@eapsim.foo"
SIM_KCS = [H("a0a1a2a3a4a5a6a7"), H("b0b1b2b3b4b5b6b7"), H("c0c1c2c3c4c5c6c7")]
SIM_SRES = H("d1d2d3d4e1e2e3e4f1f2f3f4")
SIM_NONCE_MT = H("0123456789abcdeffedcba9876543210")
SIM_MK = H("e576d5ca332e9930018bf1baee2763c795b3c712")
SIM_PRF_OUTPUT = H(
    "536e5ebc4465582aa6a8ec9986ebb62025af1942efcbf4bc72b3943421f2a974"
    "39d45aeaf4e30601983e972b6cfd46d1c363773365690d09cd44976b525f47d3"
    "a60a985e955c53b090b2e4b73719196a40254296 8fd14a888f46b9a7886e4488"
    "5949eab0fff69d52315c6c634fd14a7f0d52023d56f79698fa6596abeed4f93f"
    "bb48eb534d985414ceed0d9a8ed33c387c9dfdab92ffbdf240fcecf65a2c93b9".replace(" ", ""))
SIM_RESPONSE_MAC = H("f56d6433e68ed2976ac11937fc3d1154")

# RFC 5448 Appendix C, cases 1 and 2 (identity 0555444333222111).
AKA_PRIME_CASES = [
    ("WLAN", "0093962d0dd84aa5684b045c9edffa04", "ccfc230ca74fcc96c0a5d61164f5a76c",
     "766fa0a6c317174b812d52fbcd11a179",
     "0842ea722ff6835bfa2032499fc3ec23c2f0e388b4f07543ffc677f1696d71ea",
     "cf83aa8bc7e0aced892acc98e76a9b2095b558c7795c7094715cb3393aa7d17a",
     "67c42d9aa56c1b79e295e3459fc3d187d42be0bf818d3070e362c5e967a4d544"
     "e8ecfe19358ab3039aff03b7c930588c055babee58a02650b067ec4e9347c75a",
     "f861703cd775590e16c7679ea3874ada866311de290764d760cf76df647ea01c"
     "313f69924bdd7650ca9bac141ea075c4ef9e8029c0e290cdbad5638b63bc23fb"),
    ("HRPD", "3820f0277fa5f77732b1fb1d90c1a0da", "db94a0ab557ef6c9ab48619ca05b9a9f",
     "05ad73ac915fce89ac77e1520d82187b",
     "5b4acaef62c6ebb8882b2f3d534c4b35277337a00184f20ff25d224c04be2afd",
     "3f90bf5c6e5ef325ff04eb5ef6539fa8cca8398194fbd00be425b3f40dba10ac",
     "87b321570117cd6c95ab6c436fb5073ff15cf85505d2bc5bb7355fc21ea8a757"
     "57e8f86a2b138002e05752913bb43b82f868a96117e91a2d95f526677d572900",
     "c891d5f20f148a1007553e2dea555c9cb672e9675f4a66b4bafa027379f93aee"
     "539a5979d0a0042b9d2ae28bed3b17a31dc8ab75072b80bd0c1da612466e402c"),
]
AKA_PRIME_CK = H("5349fbe098649f948f5d2e973a81c00f")
AKA_PRIME_IK = H("9744871ad32bf9bbd1dd5ce54e3e2e5a")
AKA_PRIME_AUTN = H("bb52e91c747ac3ab2a5c23d15ee351d5")


def test_rfc4186_master_key():
    assert simaka.sim_mk(SIM_IDENTITY, SIM_KCS, SIM_NONCE_MT, H("0001"), H("0001")) == SIM_MK


def test_rfc4186_fips_prf_output_and_keys():
    assert simaka.fips186_prf(SIM_MK, 160) == SIM_PRF_OUTPUT
    keys = simaka.keys_from_mk(SIM_MK)
    assert keys.k_encr + keys.k_aut + keys.msk + keys.emsk == SIM_PRF_OUTPUT
    assert "hidden" in repr(keys) and keys.msk.hex() not in repr(keys)


def test_rfc4186_challenge_response_mac_covers_the_sres_values():
    k_aut = simaka.keys_from_mk(SIM_MK).k_aut
    response = simaka.sign(k_aut, simaka.EAP_SIM, 2, 2, Message(simaka.Subtype.SIM_CHALLENGE),
                           extra=SIM_SRES)
    assert simaka.fixed(response, At.MAC, 16) == SIM_RESPONSE_MAC
    packet = struct.pack("!BBHB", 2, 2, 0x1C, simaka.EAP_SIM) + response.encode()
    assert packet.hex() == "0202001c120b00000b050000" + SIM_RESPONSE_MAC.hex()
    simaka.verify(k_aut, simaka.EAP_SIM, 2, 2, response, extra=SIM_SRES)
    with pytest.raises(SimAkaError, match="does not verify"):
        simaka.verify(k_aut, simaka.EAP_SIM, 2, 3, response, extra=SIM_SRES)


@pytest.mark.parametrize("case", AKA_PRIME_CASES, ids=["case1-WLAN", "case2-HRPD"])
def test_rfc5448_key_derivation(case):
    network, ck_p, ik_p, k_encr, k_aut, k_re, msk, emsk = case
    ck_prime, ik_prime = simaka.ck_ik_prime(AKA_PRIME_CK, AKA_PRIME_IK, network.encode(),
                                            AKA_PRIME_AUTN[:6])
    assert (ck_prime.hex(), ik_prime.hex()) == (ck_p, ik_p)
    keys = simaka.aka_prime_keys(ck_prime, ik_prime, b"0555444333222111")
    assert (keys.k_encr.hex(), keys.k_aut.hex(), keys.k_re.hex(), keys.msk.hex(),
            keys.emsk.hex()) == (k_encr, k_aut, k_re, msk, emsk)


def test_aka_master_key_is_sha1_of_identity_ik_ck():
    assert simaka.aka_mk(b"0id", b"I" * 16, b"C" * 16) == hashlib.sha1(
        b"0id" + b"I" * 16 + b"C" * 16).digest()


def test_encrypted_attributes_round_trip_with_padding():
    inner = Message(0).add(At.NEXT_PSEUDONYM, simaka.counted_value(b"pseudonym-7"))
    outer = simaka.encrypt(b"k" * 16, b"i" * 16, inner, Message(simaka.Subtype.SIM_CHALLENGE))
    decoded = simaka.decrypt(b"k" * 16, simaka.decode(outer.encode()))
    assert simaka.counted(decoded.get(At.NEXT_PSEUDONYM), At.NEXT_PSEUDONYM) == b"pseudonym-7"


attribute_values = st.integers(0, 30).map(lambda n: bytes(4 * n + 2))


@given(subtype=st.integers(0, 255), attributes=st.lists(
    st.tuples(st.sampled_from(list(At)), attribute_values), max_size=6))
def test_messages_round_trip(subtype, attributes):
    message = Message(subtype, [(int(kind), value) for kind, value in attributes])
    assert simaka.decode(message.encode()) == message


@given(st.binary(max_size=80))
def test_garbage_raises_only_simaka_error(data):
    try:
        message = simaka.decode(data)
    except SimAkaError:
        return
    assert message.encode()[0] == data[0]


def test_unknown_attributes_skippable_or_not():
    skippable = bytes([11, 0, 0]) + bytes([200, 1, 0, 0])
    assert simaka.decode(skippable).attributes == []
    with pytest.raises(SimAkaError, match="non-skippable attribute 99"):
        simaka.decode(bytes([11, 0, 0]) + bytes([99, 1, 0, 0]))


@pytest.mark.parametrize("data, words", [
    (bytes([11, 0, 0, At.MAC, 0]), "length 0"),
    (bytes([11, 0, 0, At.MAC, 5, 0, 0]), "overruns"),
    (bytes([11, 0, 0, At.MAC]), "truncated"),
    (bytes([11, 0]), "no Subtype"),
])
def test_malformed_messages_name_the_problem(data, words):
    with pytest.raises(SimAkaError, match=words):
        simaka.decode(data)


def test_an_attribute_twice_is_refused():
    message = Message(1).add(At.RAND, bytes(18)).add(At.RAND, bytes(18))
    with pytest.raises(SimAkaError, match="appears 2 times"):
        message.get(At.RAND)


def test_counted_values_check_their_length():
    assert simaka.counted(simaka.counted_value(b"abc"), At.IDENTITY) == b"abc"
    assert simaka.counted(simaka.counted_value(b"r" * 8, unit_bits=True), At.RES,
                          unit_bits=True) == b"r" * 8
    with pytest.raises(SimAkaError, match="says 9 octets"):
        simaka.counted(b"\x00\x09abc\x00", At.IDENTITY)


def test_checkcode_is_empty_without_identity_rounds_and_a_hash_with_them():
    assert simaka.checkcode(simaka.EAP_AKA, []) == bytes(2)
    assert len(simaka.checkcode(simaka.EAP_AKA, [b"x"])) == 22
    assert len(simaka.checkcode(simaka.EAP_AKA_PRIME, [b"x"])) == 34
