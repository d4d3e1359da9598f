"""The LKE Mobility Header codecs (aaa_mip6.lke.messages; docs/lke.md, "Message formats"):
round trips, refusals, and known answers for what each MAC covers."""

import hmac
import json
from hashlib import sha1
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aaa_mip6.errors import LkeAuthenticationError, LkeError
from aaa_mip6.lke.codepoints import DRAFT, EXPERIMENTAL, CodePoints
from aaa_mip6.lke.lbsa import Lbsa
from aaa_mip6.lke.messages import (
    Finished,
    KeyExchangeAck,
    KeyExchangeRequest,
    LkeBindingAck,
    LkeBindingUpdate,
    decode_mobility,
)
from aaa_mip6.mobility.messages import mobility_checksum

ip6 = st.ip_addresses(v=6)
u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
kbms = st.binary(min_size=16, max_size=16)
codes = st.sampled_from([EXPERIMENTAL, DRAFT])
key_octets = st.sampled_from([128, 256, 384, 512])

requests = st.builds(lambda seq, coa, life, k: KeyExchangeRequest(seq, coa, life, bytes(k)),
                     u16, ip6, st.integers(1, 0xFFFF), key_octets)
acks = st.builds(KeyExchangeAck, u8, u16, u16, ip6, ip6)
updates = st.builds(LkeBindingUpdate, u16, u16, ip6, st.sampled_from([0xC000, 0x8000, 0x4000, 0]))
bas = st.builds(LkeBindingAck, u8, u16, u16, ip6, st.none() | u32)
finisheds = st.builds(Finished, u8, u16, u16, u32, ip6)
signed_messages = st.one_of(acks, updates, bas, finisheds)


def _fix_checksum(data: bytearray, source, destination) -> bytes:
    data[4:6] = b"\x00\x00"
    data[4:6] = mobility_checksum(source, destination, bytes(data)).to_bytes(2, "big")
    return bytes(data)


@given(requests, ip6, ip6, codes)
def test_key_exchange_request_round_trips(request, source, destination, code_points):
    data = request.encode(source, destination, code_points)
    assert len(data) % 8 == 0 and data[2] == code_points.ke_request
    decoded = KeyExchangeRequest.decode(data, source, destination, code_points,
                                        key_octets=len(request.key_exchange_data))
    assert decoded == request


@given(signed_messages, ip6, ip6, kbms, codes)
def test_signed_messages_round_trip_and_verify(message, source, destination, kbm, code_points):
    data = message.encode(source, destination, kbm, code_points)
    decoded = type(message).decode(data, source, destination, code_points)
    assert decoded == message
    decoded.verify(kbm)
    assert decode_mobility(data, source, destination, code_points) == message


@given(signed_messages, ip6, ip6, kbms, kbms)
def test_a_message_does_not_verify_under_another_kbm(message, source, destination, kbm, other):
    data = message.encode(source, destination, kbm)
    decoded = type(message).decode(data, source, destination)
    if other != kbm:
        with pytest.raises(LkeAuthenticationError):
            decoded.verify(other)


@given(signed_messages, ip6, ip6, kbms, st.data())
def test_every_changed_octet_is_refused_by_the_checksum(message, source, destination, kbm, data):
    encoded = bytearray(message.encode(source, destination, kbm))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(LkeError):
        type(message).decode(bytes(encoded), source, destination).verify(kbm)


@given(signed_messages, ip6, ip6, kbms, st.data())
@settings(max_examples=300)
def test_every_changed_octet_outside_the_checksum_is_refused_by_the_mac(
        message, source, destination, kbm, data):
    """An attacker who fixes up the checksum still cannot change a covered octet."""
    encoded = bytearray(message.encode(source, destination, kbm))
    index = data.draw(st.integers(0, len(encoded) - 1).filter(lambda i: i not in (4, 5)))
    encoded[index] ^= data.draw(st.integers(1, 255))
    tampered = _fix_checksum(encoded, source, destination)
    with pytest.raises(LkeError):
        type(message).decode(tampered, source, destination).verify(kbm)


@given(signed_messages, ip6, ip6, ip6, kbms)
def test_the_mac_covers_the_source_and_destination(message, source, destination, other, kbm):
    data = message.encode(source, destination, kbm)
    if other != source:
        moved = _fix_checksum(bytearray(data), other, destination)
        with pytest.raises(LkeAuthenticationError):
            type(message).decode(moved, other, destination).verify(kbm)


@given(st.binary(max_size=300), ip6, ip6, codes, st.sampled_from([None, 128]))
def test_arbitrary_octets_raise_only_lke_error(data, source, destination, code_points, octets):
    try:
        decode_mobility(data, source, destination, code_points, octets)
    except LkeError:
        pass


def _with_length(data: bytes, source, destination) -> bytes:
    """``data`` with Header Len and checksum fixed up for its length."""
    return _fix_checksum(bytearray(data[:1] + bytes([len(data) // 8 - 1]) + data[2:]),
                         source, destination)


@given(requests, ip6, ip6)
def test_a_request_cut_short_is_refused_and_pad1_octets_are_padding(request, source, destination):
    data = request.encode(source, destination)
    octets = len(request.key_exchange_data)
    with pytest.raises(LkeError):
        KeyExchangeRequest.decode(_with_length(data[:-8], source, destination), source,
                                  destination, key_octets=octets)
    padded = _with_length(data + bytes(8), source, destination)
    assert KeyExchangeRequest.decode(padded, source, destination, key_octets=octets) == request


def test_a_missing_required_option_is_malformed():
    source, destination = IPv6Address("fe80::5"), IPv6Address("fe80::1")
    data = KeyExchangeRequest(1, IPv6Address("2001:db8::5"), 10, bytes(128)).encode(
        source, destination)
    # the Requested Lifetime option (type 250 at offset 136) turned into an unknown type
    changed = bytearray(data)
    assert changed[136] == EXPERIMENTAL.requested_lifetime
    changed[136] = 99
    with pytest.raises(LkeError, match="Requested Lifetime option is missing"):
        KeyExchangeRequest.decode(_fix_checksum(changed, source, destination), source,
                                  destination, key_octets=128)


def test_the_draft_code_points_change_only_the_numbers():
    source, destination, kbm = IPv6Address("fe80::1"), IPv6Address("fe80::5"), bytes(16)
    ack = KeyExchangeAck(0, 7, 100, IPv6Address("2001:db8::5"), IPv6Address("2001:db8::1"))
    experimental = ack.encode(source, destination, kbm, EXPERIMENTAL)
    draft = ack.encode(source, destination, kbm, DRAFT)
    assert (experimental[2], draft[2]) == (254, 9)
    assert experimental[14] == 251 and draft[14] == 4  # the AR Address option
    with pytest.raises(LkeError):
        KeyExchangeAck.decode(draft, source, destination, EXPERIMENTAL)


def test_code_points_must_not_collide():
    with pytest.raises(ValueError):
        CodePoints(ke_request=5)
    with pytest.raises(ValueError):
        CodePoints(ar_address=250)
    with pytest.raises(ValueError):
        CodePoints(capability=254)


# ------------------------------------------------------------------ known answers

KBM = bytes(range(16))
MN_NEW = IPv6Address("2001:db8:2::5")
AR = IPv6Address("2001:db8:1::1")
PREVIOUS = IPv6Address("2001:db8:1::5")


def test_known_answer_binding_update_and_what_its_authenticator_covers():
    data = LkeBindingUpdate(0x1234, 0x96, PREVIOUS).encode(MN_NEW, AR, KBM)
    assert data.hex() == (
        "3b050500832b1234c00000960100fd1020010db80001000000000000000000050100050c"
        "4bc87b228bcd60f7d5b35292")
    # First(96, HMAC-SHA1(Kbm, source | destination | MH)): the MH with the Checksum
    # zero and the 12 authenticator octets left out; the Care-of Address option inside.
    covered = (MN_NEW.packed + AR.packed
               + bytes.fromhex("3b0505000000" "1234c0000096" "0100" "fd10") + PREVIOUS.packed
               + bytes.fromhex("0100" "050c"))
    assert data[-12:] == hmac.new(KBM, covered, sha1).digest()[:12]


def test_known_answer_key_exchange_ack_carries_the_whole_hmac():
    ar_ll, mn_ll = IPv6Address("fe80::1"), IPv6Address("fe80::5")
    data = KeyExchangeAck(0, 0x1234, 1800, PREVIOUS, AR).encode(ar_ll, mn_ll, KBM)
    assert data.hex() == (
        "3b09fe00cc940000123407080100fb1020010db800010000000000000000000101040000"
        "0000fd1020010db8000100000000000000000005010005144366fec85a8917ecac3853a9"
        "7fa3984b663c54df")
    covered = ar_ll.packed + mn_ll.packed + data[:4] + b"\x00\x00" + data[6:-20]
    assert data[-20:] == hmac.new(KBM, covered, sha1).digest()


# ------------------------------------------------------------------ the AR's LBSA record

lbsas = st.builds(Lbsa, ip6, ip6, ip6, ip6, kbms,
                  st.floats(0, 2e9, allow_nan=False), u16, st.none() | u16)


@given(lbsas)
def test_lbsa_records_round_trip(lbsa):
    assert Lbsa.decode(lbsa.encode()) == lbsa


@given(st.binary(max_size=200))
def test_arbitrary_octets_are_no_lbsa_record(data):
    try:
        Lbsa.decode(data)
    except LkeError:
        pass


BAD_FIELDS = {"care_of": [None, 70000, "x", []], "kbm": [None, "zz", "00", 5],
              "ke_sequence": [None, -1, 70000, "1", True], "bu_sequence": [-1, 70000, "1"],
              "expires": [None, "x", [], True]}


@given(lbsas, st.sampled_from([(name, value) for name, values in BAD_FIELDS.items()
                               for value in values]))
def test_a_record_with_a_bad_field_is_refused(lbsa, bad):
    name, value = bad
    record = json.loads(lbsa.encode())
    record[name] = value
    with pytest.raises(LkeError):
        Lbsa.decode(json.dumps(record).encode())


def test_the_record_never_shows_kbm_in_its_repr():
    lbsa = Lbsa(COA_, COA_, COA_, COA_, b"\x42" * 16, 1.0, 1)
    assert "42" not in repr(lbsa) and "kbm" not in repr(lbsa)


COA_ = IPv6Address("2001:db8::5")
