import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.mobility import messages as mh
from aaa_mip6.mobility import payloads
from aaa_mip6.addresses import as_ipv6
from aaa_mip6.errors import InvalidInput, MobilityError
from aaa_mip6.mobility.messages import (
    AlternateCareOfAddress,
    BindingAck,
    BindingAckFlag,
    BindingAckStatus,
    BindingError,
    BindingErrorStatus,
    BindingRefreshAdvice,
    BindingUpdate,
    BindingUpdateFlag,
    IPv4AckStatus,
    IPv4AddressAcknowledgement,
    IPv4CareOfAddress,
    IPv4HomeAddress,
    UnknownOption,
)

HOA = IPv6Address("2001:db8::1")
HA = IPv6Address("2001:db8::2")


def ones_complement_checksum(data: bytes) -> int:
    """RFC 1071 reference loop, written independently of the module under test."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return 0xFFFF - total


def pseudo_header(source: IPv6Address, destination: IPv6Address, length: int) -> bytes:
    return source.packed + destination.packed + length.to_bytes(4, "big") + b"\x00\x00\x00\x87"


# ------------------------------------------------------------------ strategies

ipv6 = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
ipv4 = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
u16 = st.integers(0, 0xFFFF)
KNOWN_TYPES = {0, 1, 2, 3, 29, 30, 32}

options = st.one_of(
    st.builds(BindingRefreshAdvice, u16),
    st.builds(AlternateCareOfAddress, ipv6),
    st.builds(IPv4HomeAddress, ipv4, st.integers(0, 32), st.booleans()),
    st.builds(
        IPv4AddressAcknowledgement,
        st.one_of(st.sampled_from(IPv4AckStatus), st.integers(0, 255)),
        ipv4,
        st.integers(0, 32),
    ),
    st.builds(IPv4CareOfAddress, ipv4),
    st.builds(
        UnknownOption,
        st.integers(4, 255).filter(lambda t: t not in KNOWN_TYPES),
        st.binary(max_size=40),
    ),
)
option_lists = st.lists(options, max_size=8).map(tuple)
bu_flags = st.integers(0, 0xFFFF).map(lambda v: BindingUpdateFlag(v & 0xFFC0))
ba_flags = st.integers(0, 0xFF).map(lambda v: BindingAckFlag(v & 0xF8))
updates = st.builds(BindingUpdate, u16, u16, bu_flags, option_lists)
acks = st.builds(
    BindingAck,
    st.one_of(st.sampled_from(BindingAckStatus), st.integers(0, 255)),
    u16,
    u16,
    ba_flags,
    option_lists,
)
errors = st.builds(
    BindingError,
    st.one_of(st.sampled_from(BindingErrorStatus), st.integers(0, 255)),
    ipv6,
    option_lists,
)
addresses = st.one_of(ipv6, ipv4)


def with_valid_checksum(body: bytes, mh_type: int = 5) -> bytes:
    """A Mobility Header of ``mh_type`` around arbitrary message data, with correct
    Header Len and checksum, so tests reach the parsers behind the checksum check."""
    header = bytearray(bytes([59, 0, mh_type, 0, 0, 0]) + body + bytes(-(len(body) + 6) % 8))
    header[1] = len(header) // 8 - 1
    header[4:6] = mh.mobility_checksum(HOA, HA, bytes(header)).to_bytes(2, "big")
    return bytes(header)


# ------------------------------------------------------------------ round trips


@given(updates, ipv6, ipv6)
def test_binding_update_round_trip(update, source, destination):
    wire = mh.encode_mobility_header(update, source, destination)
    assert len(wire) % 8 == 0
    assert mh.decode_mobility_header(wire, source, destination) == update


@given(acks, ipv6, ipv6)
def test_binding_ack_round_trip(ack, source, destination):
    wire = mh.encode_mobility_header(ack, source, destination)
    assert mh.decode_mobility_header(wire, source, destination) == ack


@given(errors, ipv6, ipv6)
def test_binding_error_round_trip(error, source, destination):
    wire = mh.encode_mobility_header(error, source, destination)
    assert len(wire) % 8 == 0
    assert mh.decode_mobility_header(wire, source, destination) == error


def test_binding_error_layout_rfc_6275_6_1_9():
    error = BindingError(BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS, HOA)
    wire = mh.encode_mobility_header(error, HA, HOA)
    # Payload Proto 59, Header Len 2 (24 octets), MH Type 7, Reserved, Checksum,
    # then Status 1, Reserved 0, the 16-octet Home Address: no padding needed.
    assert len(wire) == 24
    assert wire[:4] == bytes([59, 2, 7, 0])
    assert wire[6:8] == b"\x01\x00" and wire[8:] == HOA.packed
    assert ones_complement_checksum(pseudo_header(HA, HOA, 24) + wire) == 0
    assert {int(s) for s in BindingErrorStatus} == {1, 2}


def test_unlisted_binding_error_status_is_kept_as_int():
    wire = mh.encode_mobility_header(BindingError(77, HOA), HA, HOA)
    decoded = mh.decode_mobility_header(wire, HA, HOA)
    assert decoded.status == 77 and not isinstance(decoded.status, BindingErrorStatus)


@given(options)
def test_every_option_round_trips_alone(option):
    for message in (BindingUpdate(1, 2, options=(option,)), BindingAck(0, 1, 2, options=(option,))):
        wire = mh.encode_mobility_header(message, HOA, HA)
        assert mh.decode_mobility_header(wire, HOA, HA).options == (option,)


@pytest.mark.parametrize("status", list(BindingAckStatus))
def test_every_binding_ack_status_round_trips(status):
    ack = BindingAck(status, 9, 30)
    decoded = mh.decode_mobility_header(mh.encode_mobility_header(ack, HA, HOA), HA, HOA)
    assert decoded.status is status
    assert decoded.accepted == (status < 128)


def test_status_values_are_those_of_rfc_6275_and_6618():
    assert {int(s) for s in BindingAckStatus} == {0, 1, *range(128, 140), 174, 176}
    assert BindingAckStatus.REINIT_SA_WITH_HAC == 176


def test_unlisted_status_is_kept_as_int():
    ack = BindingAck(200, 1, 1)
    decoded = mh.decode_mobility_header(mh.encode_mobility_header(ack, HA, HOA), HA, HOA)
    assert decoded.status == 200 and not isinstance(decoded.status, BindingAckStatus)
    assert not decoded.accepted


@pytest.mark.parametrize("status", list(IPv4AckStatus))
def test_every_ipv4_ack_status_round_trips(status):
    option = IPv4AddressAcknowledgement(status, IPv4Address("192.0.2.9"), 24)
    ack = BindingAck(0, 1, 1, options=(option,))
    decoded = mh.decode_mobility_header(mh.encode_mobility_header(ack, HA, HOA), HA, HOA)
    assert decoded.options[0].status is status
    assert decoded.options[0].accepted == (status == IPv4AckStatus.SUCCESS)


@given(addresses, addresses, updates)
def test_binding_update_payload_round_trip(hoa, ha, update):
    next_header, payload = payloads.encode_binding_update_payload(hoa, ha, update)
    assert next_header == 60
    decoded = payloads.decode_binding_update_payload(next_header, payload, ha)
    assert decoded == (as_ipv6(hoa), update)


@given(addresses, addresses, acks)
def test_binding_ack_payload_round_trip(hoa, ha, ack):
    next_header, payload = payloads.encode_binding_ack_payload(hoa, ha, ack)
    assert next_header == 43
    assert payloads.decode_binding_ack_payload(next_header, payload, ha) == (as_ipv6(hoa), ack)


@given(addresses, addresses, st.one_of(acks, errors))
def test_home_agent_payload_round_trip(hoa, ha, message):
    build = (payloads.encode_binding_ack_payload if isinstance(message, BindingAck)
             else payloads.encode_binding_error_payload)
    next_header, payload = build(hoa, ha, message)
    assert next_header == 43
    assert payloads.decode_home_agent_payload(next_header, payload, ha) == (as_ipv6(hoa), message)


def test_binding_error_is_neither_an_ack_nor_an_update():
    error = BindingError(BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS, HOA)
    next_header, payload = payloads.encode_binding_error_payload(HOA, HA, error)
    with pytest.raises(MobilityError, match="no Binding Acknowledgement"):
        payloads.decode_binding_ack_payload(next_header, payload, HA)
    smuggled = payloads.encode_home_address_destination_options(HOA) + mh.encode_mobility_header(
        error, HOA, HA)
    with pytest.raises(MobilityError, match="no Binding Update"):
        payloads.decode_binding_update_payload(60, smuggled, HA)
    update_next, update_payload = payloads.encode_binding_update_payload(
        HOA, HA, BindingUpdate(1, 1))
    with pytest.raises(MobilityError, match="Routing"):
        payloads.decode_home_agent_payload(update_next, update_payload, HA)
    bu_behind_routing = payloads.encode_type2_routing_header(HOA) + mh.encode_mobility_header(
        BindingUpdate(1, 1), HA, HOA)
    with pytest.raises(MobilityError, match="no Binding Acknowledgement or Binding Error"):
        payloads.decode_home_agent_payload(43, bu_behind_routing, HA)


@given(addresses, st.integers(0, 255))
def test_extension_headers_round_trip(address, next_header):
    for encode, decode in (
        (payloads.encode_home_address_destination_options,
         payloads.decode_home_address_destination_options),
        (payloads.encode_type2_routing_header, payloads.decode_type2_routing_header),
    ):
        wire = encode(address, next_header)
        assert decode(wire + b"rest") == (next_header, as_ipv6(address), len(wire))


# ------------------------------------------------------------------ wire layout


def test_hand_computed_checksum_vector():
    # BU seq 1, A|H, lifetime 150 units; 4 octets of PadN make it 16 octets.
    expected = bytes.fromhex("3b010500" "a258" "0001" "c000" "0096" "01020000")
    wire = mh.encode_mobility_header(BindingUpdate(1, 150), HOA, HA)
    assert wire == expected
    zeroed = expected[:4] + b"\x00\x00" + expected[6:]
    assert ones_complement_checksum(pseudo_header(HOA, HA, 16) + zeroed) == 0xA258
    assert ones_complement_checksum(pseudo_header(HOA, HA, 16) + expected) == 0
    assert mh.decode_mobility_header(expected, HOA, HA) == BindingUpdate(1, 150)


@given(acks, ipv6, ipv6)
def test_checksum_agrees_with_reference_loop(ack, source, destination):
    wire = mh.encode_mobility_header(ack, source, destination)
    assert ones_complement_checksum(pseudo_header(source, destination, len(wire)) + wire) == 0


def test_binding_ack_checksum_uses_ha_as_source_and_hoa_as_destination():
    _, payload = payloads.encode_binding_ack_payload(HOA, HA, BindingAck(0, 3, 10))
    header = payload[24:]
    assert ones_complement_checksum(pseudo_header(HA, HOA, len(header)) + header) == 0


@pytest.mark.parametrize("position", [4, 5, 7, 11])
def test_bad_checksum_is_rejected(position):
    wire = bytearray(mh.encode_mobility_header(BindingUpdate(5, 10), HOA, HA))
    wire[position] ^= 0x40
    with pytest.raises(MobilityError) as caught:
        mh.decode_mobility_header(bytes(wire), HOA, HA)
    assert caught.value.reason == "bad-checksum"


def test_checksum_is_bound_to_home_address_and_home_agent():
    next_header, payload = payloads.encode_binding_update_payload(HOA, HA, BindingUpdate(5, 10))
    with pytest.raises(MobilityError, match="checksum"):
        payloads.decode_binding_update_payload(next_header, payload, IPv6Address("2001:db8::3"))
    forged = payload[:8] + IPv6Address("2001:db8::99").packed + payload[24:]
    with pytest.raises(MobilityError, match="checksum"):
        payloads.decode_binding_update_payload(next_header, forged, HA)


def test_lifetime_units_and_seconds():
    update = BindingUpdate(1, mh.lifetime_units(601))
    assert update.lifetime_units == 150 and update.lifetime_seconds == 600
    assert mh.lifetime_units(10**9) == 0xFFFF
    assert BindingRefreshAdvice(15).interval_seconds == 60
    wire = mh.encode_mobility_header(update, HOA, HA)
    assert wire[10:12] == (150).to_bytes(2, "big")


def test_flag_bits_on_the_wire():
    update = BindingUpdate(
        0, 0, BindingUpdateFlag.ACKNOWLEDGE | BindingUpdateFlag.FORCE_UDP_ENCAPSULATION
    )
    assert mh.encode_mobility_header(update, HOA, HA)[8:10] == b"\x81\x00"
    assert int(BindingUpdateFlag.PROXY_REGISTRATION) == 0x0200
    ack = BindingAck(0, 0, 0, BindingAckFlag.KEY_MANAGEMENT_COMPATIBILITY)
    assert mh.encode_mobility_header(ack, HA, HOA)[7] == 0x80


def test_reserved_flag_bits_are_ignored_on_receive():
    wire = bytearray(mh.encode_mobility_header(BindingUpdate(0, 0), HOA, HA))
    wire[9] |= 0x3F
    wire[4:6] = b"\x00\x00"
    wire[4:6] = mh.mobility_checksum(HOA, HA, bytes(wire)).to_bytes(2, "big")
    assert mh.decode_mobility_header(bytes(wire), HOA, HA).flags == BindingUpdateFlag(0xC000)


def _option_offsets(wire: bytes) -> dict[int, int]:
    """Offset from the start of the Mobility Header of each non-padding option."""
    offsets, offset = {}, 12
    while offset < len(wire):
        if wire[offset] == 0:
            offset += 1
            continue
        if wire[offset] != 1:
            offsets[wire[offset]] = offset
        offset += 2 + wire[offset + 1]
    assert offset == len(wire)
    return offsets


@given(option_lists)
def test_options_are_aligned_and_padding_is_well_formed(opts):
    wire = mh.encode_mobility_header(BindingUpdate(1, 1, options=opts), HOA, HA)
    assert len(wire) % 8 == 0
    for option_type, offset in _option_offsets(wire).items():
        multiple, remainder = {2: (2, 0), 3: (8, 6), 29: (4, 0), 30: (4, 0), 32: (4, 0)}.get(
            option_type, (1, 0)
        )
        assert offset % multiple == remainder


def test_alignment_padding_is_pad1_or_padn():
    wire = mh.encode_mobility_header(
        BindingUpdate(1, 1, options=(BindingRefreshAdvice(1), AlternateCareOfAddress(HOA))), HOA, HA
    )
    # BRA at 12 (2n) ends at 16; Alternate CoA needs 8n+6, so PadN with 4 octets at 16.
    assert wire[12:16] == b"\x02\x02\x00\x01"
    assert wire[16:22] == b"\x01\x04\x00\x00\x00\x00"
    assert wire[22] == 3
    unknown = BindingUpdate(1, 1, options=(UnknownOption(99, b"abcd"),))
    wire = mh.encode_mobility_header(unknown, HOA, HA)
    assert wire[12:18] == b"\x63\x04abcd" and wire[18:] == b"\x01\x04" + bytes(4)
    unknown = BindingUpdate(1, 1, options=(UnknownOption(99, b"abcdefgh"),))
    wire = mh.encode_mobility_header(unknown, HOA, HA)
    assert wire[22:] == b"\x01\x00"  # two octets of padding are one PadN, not two Pad1


def test_received_padding_is_dropped_and_unknown_options_are_kept():
    pad1, padn, unknown, advice = b"\x00", b"\x01\x01\x00", b"\x63\x02xy", b"\x02\x02\x00\x05"
    body = struct.pack("!HHH", 4, 0xC000, 10) + pad1 + padn + unknown + advice
    decoded = mh.decode_mobility_header(with_valid_checksum(body), HOA, HA)
    assert decoded.options == (UnknownOption(99, b"xy"), BindingRefreshAdvice(5))


def test_home_address_option_is_at_8n_plus_6():
    wire = payloads.encode_home_address_destination_options(HOA)
    assert wire[:2] == bytes([135, 2])
    assert wire[2:6] == b"\x01\x02\x00\x00"
    assert wire.index(bytes([201, 16])) % 8 == 6
    assert wire[8:] == HOA.packed


def test_type2_routing_header_layout():
    wire = payloads.encode_type2_routing_header(HOA)
    assert wire == bytes([135, 2, 2, 1, 0, 0, 0, 0]) + HOA.packed


def test_ipv4_home_address_is_mapped():
    home = IPv4Address("192.0.2.7")
    update = BindingUpdate(1, 1, options=(IPv4HomeAddress(home),))
    next_header, payload = payloads.encode_binding_update_payload(home, HA, update)
    hoa, parsed = payloads.decode_binding_update_payload(next_header, payload, HA)
    assert hoa == IPv6Address("::ffff:192.0.2.7") and hoa.ipv4_mapped == home
    assert payload[8:24] == bytes(10) + b"\xff\xff" + home.packed
    assert parsed == update


def test_ipv4_option_layouts():
    home = IPv4Address("192.0.2.1")
    # Prefix-len 24 in the top 6 bits, then the P flag: 0b011000_1_0 0000_0000.
    assert IPv4HomeAddress(home, 24, True).data() == b"\x62\x00" + home.packed
    ack = IPv4AddressAcknowledgement(IPv4AckStatus.SUCCESS, home, 24)
    assert ack.data() == b"\x00\x60" + home.packed
    assert IPv4CareOfAddress(IPv4Address("198.51.100.4")).data() == b"\x00\x00\xc6\x33\x64\x04"


# ------------------------------------------------------------------ rejects


@pytest.mark.parametrize(
    "body, message",
    [
        (struct.pack("!HHH", 1, 0, 1) + b"\x02\x03\x00\x00\x00", "Length 3"),  # BRA too long
        (struct.pack("!HHH", 1, 0, 1) + b"\x1d\x06\xfc\x00\x00\x00\x00\x00", "Prefix-len 63"),
        (struct.pack("!HHH", 1, 0, 1) + b"\x63\x09", "runs past"),
        (struct.pack("!HHH", 1, 0, 1) + bytes(3) + b"\x63", "cut off"),
    ],
)
def test_malformed_options_are_rejected(body, message):
    with pytest.raises(MobilityError, match=message):
        mh.decode_mobility_header(with_valid_checksum(body), HOA, HA)


def test_wrong_header_len_and_short_and_unknown_types():
    wire = mh.encode_mobility_header(BindingUpdate(1, 1), HOA, HA)
    with pytest.raises(MobilityError, match="Header Len"):
        mh.decode_mobility_header(wire + bytes(8), HOA, HA)
    with pytest.raises(MobilityError, match="shorter"):
        mh.decode_mobility_header(wire[:7], HOA, HA)
    header = bytearray(wire)
    header[2] = 1  # Home Test Init: return routability, not handled
    with pytest.raises(MobilityError) as caught:
        mh.decode_mobility_header(bytes(header), HOA, HA)
    assert caught.value.reason == "unknown-mh-type"
    short = bytearray(b"\x3b\x00\x05\x00\x00\x00\x00\x00")
    short[4:6] = mh.mobility_checksum(HOA, HA, bytes(short)).to_bytes(2, "big")
    with pytest.raises(MobilityError, match="needs 12"):
        mh.decode_mobility_header(bytes(short), HOA, HA)
    short_error = bytearray(with_valid_checksum(bytes(10), mh_type=7))  # 16 octets
    with pytest.raises(MobilityError, match="BindingError needs 24 octets, got 16"):
        mh.decode_mobility_header(bytes(short_error), HOA, HA)


def test_payload_parsers_check_the_header_chain():
    bu_next, bu_payload = payloads.encode_binding_update_payload(HOA, HA, BindingUpdate(1, 1))
    ba_next, ba_payload = payloads.encode_binding_ack_payload(HOA, HA, BindingAck(0, 1, 1))
    with pytest.raises(MobilityError, match="Destination Options"):
        payloads.decode_binding_update_payload(ba_next, ba_payload, HA)
    with pytest.raises(MobilityError, match="Routing"):
        payloads.decode_binding_ack_payload(bu_next, bu_payload, HA)
    # A Binding Acknowledgement behind a Home Address option is not a Binding Update.
    smuggled = payloads.encode_home_address_destination_options(HOA) + mh.encode_mobility_header(
        BindingAck(0, 1, 1), HOA, HA
    )
    with pytest.raises(MobilityError, match="no Binding Update"):
        payloads.decode_binding_update_payload(60, smuggled, HA)
    not_mh = payloads.encode_home_address_destination_options(HOA, next_header=6) + bu_payload[24:]
    with pytest.raises(MobilityError, match="not a Mobility Header"):
        payloads.decode_binding_update_payload(60, not_mh, HA)


def test_destination_options_rules():
    hao = bytes([201, 16]) + HOA.packed
    # Unknown option whose high bits say "skip" is skipped; one that says "discard" is not.
    skippable = bytes([135, 2, 0x1E, 2, 0, 0]) + hao
    assert payloads.decode_home_address_destination_options(skippable)[1] == HOA
    with pytest.raises(MobilityError, match="must not be skipped"):
        payloads.decode_home_address_destination_options(bytes([135, 2, 0x9E, 2, 0, 0]) + hao)
    with pytest.raises(MobilityError, match="without a Home Address"):
        payloads.decode_home_address_destination_options(bytes([135, 0, 1, 4, 0, 0, 0, 0]))
    with pytest.raises(MobilityError, match="more than one"):
        payloads.decode_home_address_destination_options(
            bytes([135, 5, 1, 2, 0, 0]) + hao + bytes([1, 2, 0, 0]) + hao + bytes(2)
        )
    with pytest.raises(MobilityError, match="Length 8"):
        payloads.decode_home_address_destination_options(
            bytes([135, 1, 1, 2, 0, 0, 201, 8]) + bytes(8))
    with pytest.raises(MobilityError, match="cut off"):
        cut = payloads.encode_home_address_destination_options(HOA)[:23]
        payloads.decode_home_address_destination_options(cut)


@pytest.mark.parametrize(
    "index, value, message",
    [(1, 4, "Hdr Ext Len"), (2, 0, "Routing Type"), (3, 2, "Segments Left")],
)
def test_type2_routing_header_rules(index, value, message):
    wire = bytearray(payloads.encode_type2_routing_header(HOA))
    wire[index] = value
    with pytest.raises(MobilityError, match=message):
        payloads.decode_type2_routing_header(bytes(wire))


def test_encoder_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError):
        BindingUpdate(0x10000, 0)
    with pytest.raises(ValueError):
        BindingAck(256, 0, 0)
    with pytest.raises(ValueError):
        IPv4HomeAddress(IPv4Address("192.0.2.1"), 33)
    with pytest.raises(ValueError, match="known type"):
        UnknownOption(3, b"")
    too_big = BindingUpdate(0, 0, options=tuple(UnknownOption(99, bytes(255)) for _ in range(9)))
    with pytest.raises(ValueError, match="exceeds"):
        mh.encode_mobility_header(too_big, HOA, HA)


# ------------------------------------------------------------------ fuzz: only typed errors


def _only_typed_errors(parse, *args):
    try:
        parse(*args)
    except InvalidInput as error:
        assert isinstance(error, MobilityError)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_into_decode_mobility_header(data):
    _only_typed_errors(mh.decode_mobility_header, data, HOA, HA)


@given(st.integers(0, 255), st.binary(max_size=300))
def test_arbitrary_message_data_behind_a_valid_checksum(mh_type, body):
    _only_typed_errors(mh.decode_mobility_header, with_valid_checksum(body, mh_type), HOA, HA)
    for known_type in (5, 6, 7):
        header = with_valid_checksum(body, known_type)
        _only_typed_errors(mh.decode_mobility_header, header, HOA, HA)


@given(st.binary(max_size=120))
def test_arbitrary_bytes_into_extension_header_parsers(data):
    _only_typed_errors(payloads.decode_home_address_destination_options, data)
    _only_typed_errors(payloads.decode_type2_routing_header, data)


@given(st.integers(0, 255), st.binary(max_size=200))
def test_arbitrary_bytes_into_payload_parsers(next_header, data):
    _only_typed_errors(payloads.decode_binding_update_payload, next_header, data, HA)
    _only_typed_errors(payloads.decode_binding_ack_payload, next_header, data, HA)
    _only_typed_errors(payloads.decode_binding_update_payload, 60, data, HA)
    _only_typed_errors(payloads.decode_binding_ack_payload, 43, data, HA)
    _only_typed_errors(payloads.decode_home_agent_payload, next_header, data, HA)
    _only_typed_errors(payloads.decode_home_agent_payload, 43, data, HA)


@given(updates, st.data())
def test_mutated_valid_payloads_only_raise_typed_errors(update, data):
    next_header, payload = payloads.encode_binding_update_payload(HOA, HA, update)
    position = data.draw(st.integers(0, len(payload) - 1))
    mutated = bytearray(payload)
    mutated[position] = data.draw(st.integers(0, 255))
    _only_typed_errors(payloads.decode_binding_update_payload, next_header, bytes(mutated), HA)


@given(errors, st.data())
def test_mutated_binding_error_payloads_only_raise_typed_errors(error, data):
    next_header, payload = payloads.encode_binding_error_payload(HOA, HA, error)
    position = data.draw(st.integers(0, len(payload) - 1))
    mutated = bytearray(payload)
    mutated[position] = data.draw(st.integers(0, 255))
    _only_typed_errors(payloads.decode_home_agent_payload, next_header, bytes(mutated), HA)
