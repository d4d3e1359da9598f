"""MN-HA packet transform (RFC 6618 §6): layout, round trips, tampering, scope, replay."""

import dataclasses
import struct
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import transform
from aaa_mip6.errors import ConfigError, IntegrityError, InvalidInput, PacketError, ReplayError
from aaa_mip6.replay import SEQ_LIMIT
from aaa_mip6.sa import SCOPE_ALL, SCOPE_SIGNALING, SecurityAssociation
from aaa_mip6.suites import SUITES, new_keys
from aaa_mip6.transform import (
    PType,
    SaEndpoint,
    Sealer,
    SequenceExhausted,
    decode_plain,
    encode_plain,
    peek,
)

SUITE_NAMES = list(SUITES)
suite_names = st.sampled_from(SUITE_NAMES)
protected_ptypes = st.sampled_from([PType.ENCRYPTED_IP, PType.MOBILITY])
payloads = st.binary(max_size=300)
next_headers = st.integers(min_value=0, max_value=255)
spis = st.integers(min_value=1, max_value=(1 << 28) - 1)


def make_sa(suite_name="AES_128_CBC_SHA", scope=SCOPE_ALL, spi=4660):
    keys = new_keys(SUITES[suite_name])
    return SecurityAssociation(
        spi=spi, suite=suite_name, **dataclasses.asdict(keys),
        validity_end=datetime(2030, 1, 1, tzinfo=timezone.utc), scope=scope, mn_id="mn@example.org",
    )


def make_sealer(suite_name, spi=4660):
    suite = SUITES[suite_name]
    return Sealer(suite, spi, b"\x11" * suite.ikey_length, b"\x22" * suite.ekey_length)


def endpoints(suite_name="AES_128_CBC_SHA", scope=SCOPE_ALL, **options):
    sa = make_sa(suite_name, scope)
    return SaEndpoint(sa, "mn", **options), SaEndpoint(sa, "ha", **options)


# --- layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
@pytest.mark.parametrize("size", [0, 1, 13, 14, 15, 16, 1400])
def test_layout(suite_name, size):
    suite = SUITES[suite_name]
    sealer = make_sealer(suite_name, spi=0xABCDEF1)
    packet = sealer.protect(PType.MOBILITY, 0x01020304, b"\x99" * size, 135)
    word, seq = struct.unpack_from("!II", packet)
    assert (word >> 28, word & 0xFFFFFFF, seq) == (8, 0xABCDEF1, 0x01020304)
    encrypted = len(packet) - 8 - suite.iv_length - 12
    assert encrypted % suite.block_size == 0
    assert size + 2 <= encrypted < size + 2 + suite.block_size  # minimal padding
    icv = suite.integrity.keyed(b"\x11" * suite.ikey_length)
    assert packet[-12:] == icv(packet[:-12])


def test_null_suite_shows_payload_padding_and_trailer_in_the_clear():
    packet = make_sealer("NULL_SHA").protect(PType.ENCRYPTED_IP, 7, b"\xee" * 5, 41)
    # 5 payload octets + Pad Length + Next Header = 7: one padding octet reaches 4-alignment.
    assert packet[8:-12] == b"\xee" * 5 + b"\x01" + b"\x01" + b"\x29"


@pytest.mark.parametrize("suite_name", ["3DES_EDE_CBC_SHA", "AES_128_CBC_SHA"])
def test_iv_is_fresh_per_packet(suite_name):
    sealer = make_sealer(suite_name)
    first = sealer.protect(PType.ENCRYPTED_IP, 1, b"same", 4)
    second = sealer.protect(PType.ENCRYPTED_IP, 1, b"same", 4)
    iv_length = SUITES[suite_name].iv_length
    assert first[8 : 8 + iv_length] != second[8 : 8 + iv_length]
    assert first[8 + iv_length :] != second[8 + iv_length :]


RFC3602_CASE5 = {
    "key": bytes.fromhex("90d382b410eeba7ad938c46cec1a82bf"),
    "iv": bytes.fromhex("e96e8c08ab465763fd098d45dd3ff893"),
    "data": bytes.fromhex("08000ebda70a00008e9c083db95b0700" + bytes(range(8, 0x38)).hex()),
    "encrypted": bytes.fromhex(
        "f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856"
        "a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874a"
        "a269add047ad2d5913ac19b7cfbad4a6"
    ),
}


def test_rfc3602_case5_esp_payload_is_received():
    """RFC 3602 §4 case 5: its IV and encrypted data open to its payload, padding and trailer."""
    suite = SUITES["AES_128_CBC_SHA"]
    icv = suite.integrity.keyed(b"\x01" * 20)
    signed = bytes.fromhex("1000432100000001") + RFC3602_CASE5["iv"] + RFC3602_CASE5["encrypted"]
    sealer = Sealer(suite, 0x4321, b"\x01" * 20, RFC3602_CASE5["key"])
    opened = sealer.unprotect(signed + icv(signed))
    assert (opened.payload, opened.next_header, opened.seq) == (RFC3602_CASE5["data"], 1, 1)


@pytest.mark.parametrize("suite_name", ["3DES_EDE_CBC_SHA", "AES_128_CBC_SHA"])
def test_sent_packets_are_plain_cbc_with_the_iv_in_front(suite_name):
    """Whatever came before, each packet is standard CBC under the IV it carries (RFC 3602 §3)."""
    suite = SUITES[suite_name]
    ekey = b"\x22" * suite.ekey_length
    algorithm = {"AES-128-CBC": algorithms.AES128, "3DES-CBC": TripleDES}[
        suite.confidentiality.name]
    sealer = make_sealer(suite_name)
    for size in (0, 40, 1400):
        packet = sealer.protect(PType.ENCRYPTED_IP, size, b"\x5a" * size, 41)
        iv, body = packet[8 : 8 + suite.iv_length], packet[8 + suite.iv_length : -12]
        plain = Cipher(algorithm(ekey), modes.CBC(iv)).decryptor().update(body)
        pad_length = -(size + 2) % suite.block_size
        assert plain == b"\x5a" * size + bytes(range(1, pad_length + 1)) + bytes((pad_length, 41))


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
def test_packets_open_in_any_order(suite_name):
    """The chained CBC contexts carry nothing from one packet to the next."""
    sealer = make_sealer(suite_name)
    packets = [sealer.protect(PType.ENCRYPTED_IP, seq, bytes([seq]) * (seq * 7), 41)
               for seq in range(6)]
    for seq in (5, 0, 3, 3, 1, 4, 2):
        assert sealer.unprotect(packets[seq]).payload == bytes([seq]) * (seq * 7)


# --- round trips ------------------------------------------------------------------------


@given(suite_names, protected_ptypes, spis, st.integers(0, SEQ_LIMIT - 1), payloads, next_headers)
def test_sealer_round_trip(suite_name, ptype, spi, seq, payload, next_header):
    sealer = make_sealer(suite_name, spi)
    opened = sealer.unprotect(sealer.protect(ptype, seq, payload, next_header))
    assert opened == transform.Unprotected(ptype, spi, seq, payload, next_header)
    header = peek(sealer.protect(ptype, seq, payload, next_header))
    assert type(header) is transform.PacketHeader
    assert (header.ptype, header.spi, header.seq) == (ptype, spi, seq)


@given(suite_names, st.lists(st.tuples(protected_ptypes, payloads, next_headers), max_size=5))
def test_endpoint_round_trip_both_directions(suite_name, sends):
    mn, ha = endpoints(suite_name)
    for expected_seq, (ptype, payload, next_header) in enumerate(sends):
        up = ha.unprotect(mn.protect(ptype, payload, next_header))
        down = mn.unprotect(ha.protect(ptype, payload, next_header))
        for opened in (up, down):
            assert (opened.ptype, opened.seq, opened.payload) == (ptype, expected_seq, payload)
            assert opened.next_header == next_header


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
def test_verify_leaves_the_window_to_the_caller(suite_name):
    mn, ha = endpoints(suite_name)
    packet = mn.protect(PType.ENCRYPTED_IP, b"inner", 41)
    header = peek(packet)
    assert ha.verify(packet, header) == (b"inner", 41)
    assert ha.replay.highest is None  # verified, not yet kept
    assert ha.verify(packet, header) == (b"inner", 41)  # so it is no replay yet
    ha.replay.accept(header.seq)
    with pytest.raises(ReplayError):
        ha.verify(packet, header)


@given(payloads)
def test_plain_round_trip(payload):
    packet = encode_plain(payload)
    assert packet[:8] == bytes(8)
    assert peek(packet) == (PType.PLAIN, 0, 0)
    assert decode_plain(packet) == payload


# --- rejection --------------------------------------------------------------------------


@given(suite_names, protected_ptypes, payloads, st.data())
def test_any_single_bit_flip_fails_the_icv(suite_name, ptype, payload, data):
    sealer = make_sealer(suite_name)
    packet = bytearray(sealer.protect(ptype, 3, payload, 59))
    bit = data.draw(st.integers(0, len(packet) * 8 - 1))
    packet[bit // 8] ^= 0x80 >> bit % 8
    with pytest.raises(IntegrityError) as caught:
        sealer.unprotect(bytes(packet))
    assert caught.value.reason == "bad-icv"


@given(suite_names, protected_ptypes, payloads, st.data())
def test_endpoint_rejects_any_single_bit_flip(suite_name, ptype, payload, data):
    mn, ha = endpoints(suite_name)
    packet = bytearray(mn.protect(ptype, payload, 17))
    bit = data.draw(st.integers(0, len(packet) * 8 - 1))
    packet[bit // 8] ^= 0x80 >> bit % 8
    with pytest.raises(PacketError):
        ha.unprotect(bytes(packet))
    assert ha.replay.highest is None  # nothing forged moved the window


@given(suite_names, payloads, st.data())
def test_truncated_packets_are_packet_errors(suite_name, payload, data):
    mn, ha = endpoints(suite_name)
    packet = mn.protect(PType.MOBILITY, payload, 135)
    cut = data.draw(st.integers(0, len(packet) - 1))
    with pytest.raises(PacketError):
        make_sealer(suite_name).unprotect(packet[:cut])
    with pytest.raises(PacketError):
        ha.unprotect(packet[:cut])


@given(suite_names, st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_invalid_input(suite_name, junk):
    _, ha = endpoints(suite_name, scope=SCOPE_SIGNALING)
    for parse in (make_sealer(suite_name).unprotect, ha.unprotect, peek, decode_plain):
        try:
            parse(junk)
        except InvalidInput:
            pass


@given(suite_names, st.binary(min_size=8, max_size=120))
def test_arbitrary_bodies_with_a_good_header_only_raise_invalid_input(suite_name, body):
    _, ha = endpoints(suite_name)
    with pytest.raises(InvalidInput):
        ha.unprotect(struct.pack("!II", 1 << 28 | ha.spi, 0) + body)


def forge(suite_name, body_plain, *, header=None, spi=4660):
    """A packet with a valid ICV around an arbitrary (encrypted) body, built by hand."""
    suite = SUITES[suite_name]
    icv, cipher = suite.keyed(b"\x11" * suite.ikey_length, b"\x22" * suite.ekey_length)
    iv = b"\x33" * suite.iv_length
    signed = (header or struct.pack("!II", 1 << 28 | spi, 9)) + iv + cipher.encrypt(iv, body_plain)
    return signed + icv(signed)


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
@pytest.mark.parametrize(
    "trailer",
    [
        b"\x00\x00\x02\x04",  # Pad Length 2, padding 0, 0 instead of 1, 2
        b"\x02\x01\x02\x04",  # padding 2, 1
        b"\x01\x03\x02\x04",  # padding 1, 3
    ],
)
def test_bad_padding_under_a_valid_icv(suite_name, trailer):
    body = b"\xaa" * (-len(trailer) % SUITES[suite_name].block_size) + trailer
    with pytest.raises(PacketError) as caught:
        make_sealer(suite_name).unprotect(forge(suite_name, body))
    assert caught.value.reason == "bad-padding"
    assert not isinstance(caught.value, IntegrityError)


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
def test_pad_length_beyond_the_data_is_bad_padding(suite_name):
    block = SUITES[suite_name].block_size
    body = bytes(block - 2) + bytes((255, 4))
    with pytest.raises(PacketError) as caught:
        make_sealer(suite_name).unprotect(forge(suite_name, body))
    assert caught.value.reason == "bad-padding"


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
def test_icv_is_checked_before_padding(suite_name):
    block = SUITES[suite_name].block_size
    packet = bytearray(forge(suite_name, bytes(block - 2) + bytes((255, 4))))
    packet[-1] ^= 1
    with pytest.raises(IntegrityError):
        make_sealer(suite_name).unprotect(bytes(packet))


def test_icv_comparison_is_constant_time(monkeypatch):
    calls = []

    def spy(a, b):
        calls.append((bytes(a), bytes(b)))
        return False

    monkeypatch.setattr(transform, "compare_digest", spy)
    packet = make_sealer("NULL_SHA").protect(PType.MOBILITY, 0, b"x", 135)
    with pytest.raises(IntegrityError):
        make_sealer("NULL_SHA").unprotect(packet)
    assert calls and calls[0][1] == packet[-12:]


@pytest.mark.parametrize("ptype_value", [0, 2, 15])
def test_authenticated_but_unprotected_ptype_is_malformed(ptype_value):
    header = struct.pack("!II", ptype_value << 28 | 4660, 1)
    with pytest.raises(PacketError) as caught:
        make_sealer("NULL_SHA").unprotect(forge("NULL_SHA", b"\x01\x02\x02\x04", header=header))
    assert caught.value.reason == "malformed"


def test_wrong_spi_under_a_valid_icv():
    with pytest.raises(PacketError) as caught:
        make_sealer("NULL_SHA", spi=4660).unprotect(forge("NULL_SHA", b"\x01\x02\x02\x04", spi=5))
    assert caught.value.reason == "wrong-spi"


@pytest.mark.parametrize(
    "header",
    [
        (0 << 28 | 5, 0),  # PType 0 with an SPI
        (1 << 28 | 0, 0),  # SPI 0 with a protected PType
        (8 << 28 | 0, 4),
        (0, 1),  # PType 0 with a sequence number
        (3 << 28 | 9, 0),  # unassigned PType
    ],
)
def test_peek_rejects_impossible_headers(header):
    with pytest.raises(PacketError):
        peek(struct.pack("!II", *header) + b"payload")


def test_peek_and_decode_plain_reject_short_or_protected():
    with pytest.raises(PacketError):
        peek(b"\x00" * 7)
    with pytest.raises(PacketError) as caught:
        decode_plain(make_sealer("NULL_SHA").protect(PType.MOBILITY, 0, b"", 135))
    assert caught.value.reason == "wrong-ptype"


def test_sealer_refuses_bad_arguments():
    sealer = make_sealer("NULL_SHA")
    for bad in (
        lambda: sealer.protect(PType.PLAIN, 0, b"", 0),
        lambda: sealer.protect(PType.MOBILITY, SEQ_LIMIT, b"", 0),
        lambda: sealer.protect(PType.MOBILITY, -1, b"", 0),
        lambda: sealer.protect(PType.MOBILITY, 0, b"", 256),
    ):
        with pytest.raises(ValueError):
            bad()
    for spi in (0, 1 << 28):
        with pytest.raises(ConfigError):
            make_sealer("NULL_SHA", spi)


# --- the SA endpoint --------------------------------------------------------------------


def test_sequence_numbers_start_at_zero_per_direction():
    mn, ha = endpoints()
    assert [peek(mn.protect(PType.MOBILITY, b"bu", 135)).seq for _ in range(3)] == [0, 1, 2]
    assert peek(ha.protect(PType.MOBILITY, b"ba", 135)).seq == 0
    assert (mn.next_sequence, ha.next_sequence) == (3, 1)


def test_each_end_uses_its_own_direction_keys():
    mn, ha = endpoints()
    packet = mn.protect(PType.ENCRYPTED_IP, b"data", 41)
    with pytest.raises(IntegrityError):
        SaEndpoint(make_sa(), "mn").unprotect(packet)  # other keys
    with pytest.raises(IntegrityError):
        mn.unprotect(mn.protect(PType.ENCRYPTED_IP, b"loop", 41))  # own direction is not inbound
    assert ha.unprotect(packet).payload == b"data"


def test_replays_are_refused_and_forgeries_do_not_move_the_window():
    mn, ha = endpoints()
    first = mn.protect(PType.MOBILITY, b"bu", 135)
    ha.unprotect(first)
    with pytest.raises(ReplayError):
        ha.unprotect(first)
    late = [mn.protect(PType.MOBILITY, b"bu", 135) for _ in range(3)]
    forged = bytearray(late[2])
    forged[4:8] = (1000).to_bytes(4, "big")
    with pytest.raises(IntegrityError):
        ha.unprotect(bytes(forged))
    assert ha.replay.highest == 0
    for packet in reversed(late):  # reordering inside the window is fine
        ha.unprotect(packet)
    assert ha.replay.highest == 3


def test_replay_check_comes_before_the_icv():
    mn, ha = endpoints()
    ha.unprotect(mn.protect(PType.MOBILITY, b"bu", 135))
    replayed_forgery = bytearray(mn.protect(PType.MOBILITY, b"bu", 135))
    replayed_forgery[4:8] = bytes(4)  # sequence 0 again, ICV now wrong too
    with pytest.raises(ReplayError):
        ha.unprotect(bytes(replayed_forgery))


def test_scope_signaling_only():
    mn, ha = endpoints(scope=SCOPE_SIGNALING)
    with pytest.raises(ValueError):
        mn.protect(PType.ENCRYPTED_IP, b"data", 41)
    with pytest.raises(ValueError):
        mn.protect(PType.PLAIN, b"data", 41)
    plain = mn.protect(PType.PLAIN, b"data")
    assert plain == encode_plain(b"data") == mn.protect(0, b"data") and mn.next_sequence == 0
    assert peek(mn.protect(8, b"bu", 135)) == (PType.MOBILITY, mn.spi, 0)  # plain ints work
    assert ha.unprotect(plain) == transform.Unprotected(PType.PLAIN, 0, 0, b"data", None)
    data_packet = make_sealer("AES_128_CBC_SHA", ha.spi).protect(PType.ENCRYPTED_IP, 0, b"x", 4)
    with pytest.raises(PacketError) as caught:
        ha.unprotect(data_packet)
    assert caught.value.reason == "wrong-ptype"


def test_scope_all_refuses_plain_packets():
    mn, ha = endpoints(scope=SCOPE_ALL)
    with pytest.raises(ValueError):
        mn.protect(PType.PLAIN, b"data")
    with pytest.raises(PacketError) as caught:
        ha.unprotect(encode_plain(b"data"))
    assert caught.value.reason == "wrong-ptype"


def test_wrong_spi_at_the_endpoint():
    mn, ha = endpoints()
    other = make_sealer("AES_128_CBC_SHA", spi=ha.spi + 1)
    with pytest.raises(PacketError) as caught:
        ha.unprotect(other.protect(PType.MOBILITY, 0, b"", 135))
    assert caught.value.reason == "wrong-spi"


def test_counter_wrap_warning_and_exhaustion():
    sa = make_sa()
    mn = SaEndpoint(sa, "mn", next_sequence=SEQ_LIMIT - 2, rekey_margin=3)
    assert mn.sequence_remaining == 2 and mn.near_wrap
    assert not SaEndpoint(sa, "mn", rekey_margin=3).near_wrap
    ha = SaEndpoint(sa, "ha")
    for expected in (SEQ_LIMIT - 2, SEQ_LIMIT - 1):
        assert ha.unprotect(mn.protect(PType.MOBILITY, b"bu", 135)).seq == expected
    assert mn.sequence_remaining == 0
    with pytest.raises(SequenceExhausted):
        mn.protect(PType.MOBILITY, b"bu", 135)


def test_endpoint_construction_errors():
    with pytest.raises(ConfigError):
        SaEndpoint(make_sa().replace(suite="RC4_MD5"), "mn")
    with pytest.raises(ConfigError):
        SaEndpoint(make_sa().replace(scope=7), "mn")
    with pytest.raises(ConfigError):
        SaEndpoint(make_sa().replace(mn_to_ha_ikey=b"short"), "ha")
    with pytest.raises(ValueError):
        SaEndpoint(make_sa(), "hac")
    with pytest.raises(ValueError):
        SaEndpoint(make_sa(), "mn", next_sequence=SEQ_LIMIT + 1)


def test_reprs_show_no_keys():
    sa = make_sa()
    texts = [repr(SaEndpoint(sa, "mn")), repr(Sealer(SUITES[sa.suite], sa.spi, sa.mn_to_ha_ikey,
                                                        sa.mn_to_ha_ekey))]
    for text in texts:
        assert str(sa.spi) in text
        for key in (sa.mn_to_ha_ikey, sa.ha_to_mn_ikey, sa.mn_to_ha_ekey, sa.ha_to_mn_ekey):
            assert key.hex() not in text and repr(key)[2:-1] not in text


def test_open_is_unprotect_without_the_wrapper():
    mn, ha = endpoints()
    packet = mn.protect(PType.ENCRYPTED_IP, b"inner", 41)
    assert ha.open(packet, peek(packet)) == (b"inner", 41)
    with pytest.raises(ReplayError):
        ha.open(packet, peek(packet))
    plain = encode_plain(b"inner")
    with pytest.raises(PacketError) as caught:
        ha.open(plain, peek(plain))
    assert caught.value.reason == "wrong-ptype"


def test_a_forged_packet_moves_nothing():
    mn, ha = endpoints()
    packet = bytearray(mn.protect(PType.ENCRYPTED_IP, b"inner", 41))
    packet[-1] ^= 1
    before = ha.replay.snapshot()
    with pytest.raises(IntegrityError):
        ha.open(bytes(packet), peek(packet))
    assert ha.replay.snapshot() == before
