"""Diameter framing and message codec (RFC 6733 §3, §4.1)."""

from __future__ import annotations

import struct

import pytest
from diameter.message import Avp, constants
from diameter.message.commands import DeviceWatchdogRequest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.diameter import codec
from aaa_mip6.diameter.codec import DiameterError, MessageFramer
from aaa_mip6.errors import InvalidInput


def _request(session: str = "hac.example.org;1;2", payload: bytes = b"\x01\x02\x03") -> bytes:
    message = codec.new_request(268, 5, [
        codec.new_avp(constants.AVP_SESSION_ID, session),
        codec.new_avp(constants.AVP_DESTINATION_REALM, b"example.org"),
        codec.new_avp(constants.AVP_EAP_PAYLOAD, payload),
    ])
    message.header.hop_by_hop_identifier = 7
    message.header.end_to_end_identifier = 9
    return codec.encode_message(message)


def test_error_is_invalid_input():
    assert issubclass(DiameterError, InvalidInput)


def test_framer_joins_partial_reads_and_splits_several_messages():
    first, second = _request("a;1"), _request("b;2", b"x" * 300)
    framer = MessageFramer()
    stream = first + second
    assert framer.feed(stream[:5]) == []
    assert framer.feed(stream[5:len(first) + 3]) == [first]
    assert framer.buffered == 3
    assert framer.feed(stream[len(first) + 3:]) == [second]
    assert framer.buffered == 0


def test_version_must_be_one():
    data = bytearray(_request())
    data[0] = 2
    with pytest.raises(DiameterError) as caught:
        MessageFramer().feed(bytes(data))
    assert caught.value.reason == "bad-version"


@pytest.mark.parametrize("length", [0, 19, 22, 1 << 21])
def test_length_bounds(length):
    data = struct.pack("!I", (1 << 24) | length) + bytes(16)
    with pytest.raises(DiameterError) as caught:
        MessageFramer(max_length=1 << 20).feed(data)
    assert caught.value.reason == "bad-length"


def test_decode_reads_typed_messages_and_values():
    decoded = codec.decode_message(_request())
    assert decoded.header.is_request and decoded.header.command_code == 268
    assert decoded.header.hop_by_hop_identifier == 7
    assert codec.avp_value(decoded, constants.AVP_EAP_PAYLOAD) == b"\x01\x02\x03"
    assert codec.as_text(codec.avp_value(decoded, constants.AVP_DESTINATION_REALM)) == "example.org"


def test_avp_longer_than_message_is_rejected():
    data = bytearray(_request())
    struct.pack_into("!I", data, 24, (0x40 << 24) | 4000)  # first AVP's length
    with pytest.raises(DiameterError) as caught:
        codec.decode_message(bytes(data))
    assert caught.value.reason == "bad-avp-length"


def test_request_with_error_bit_is_rejected():
    data = bytearray(_request())
    data[4] |= 0x20
    with pytest.raises(DiameterError):
        codec.decode_message(bytes(data))


def test_answer_copies_identifiers_and_sets_error_bit_for_protocol_errors():
    request = codec.decode_message(_request())
    answer = codec.new_answer(request, codec.APPLICATION_UNSUPPORTED, "b.example", "example")
    decoded = codec.decode_message(codec.encode_message(answer))
    assert not decoded.header.is_request and decoded.header.is_error
    assert decoded.header.end_to_end_identifier == 9
    assert codec.result_code(decoded) == codec.APPLICATION_UNSUPPORTED
    assert decoded.avps[0].code == constants.AVP_SESSION_ID
    success = codec.new_answer(request, codec.SUCCESS, "b.example", "example")
    assert not success.header.is_error


def test_encode_refuses_too_long():
    with pytest.raises(DiameterError) as caught:
        codec.encode_message(codec.decode_message(_request(payload=bytes(200))), max_length=100)
    assert caught.value.reason == "too-long"


def test_base_command_round_trip():
    request = DeviceWatchdogRequest()
    request.origin_host, request.origin_realm = b"a.example", b"example"
    decoded = codec.decode_message(codec.encode_message(request))
    assert isinstance(decoded, DeviceWatchdogRequest)
    assert decoded.origin_host == b"a.example"


avp_strategy = st.one_of(
    st.binary(max_size=64).map(lambda v: codec.new_avp(constants.AVP_EAP_PAYLOAD, v)),
    st.integers(0, 2**32 - 1).map(lambda v: codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, v)),
    st.text(max_size=20).map(lambda v: codec.new_avp(constants.AVP_USER_NAME, v)),
    st.binary(max_size=16).map(lambda v: Avp(4242, 32473, v)),  # unknown vendor AVP
)


# Vendor-specific command codes (RFC 6733 §11.2.1): python-diameter has no typed class
# for them, so every AVP comes back as sent. Typed classes (e.g. 271, 300) keep one value
# of a single-valued AVP and re-order the rest, which is python-diameter's business.
VENDOR_COMMANDS = st.integers(8_388_608, 16_777_213)


@given(avps=st.lists(avp_strategy, max_size=8), command=VENDOR_COMMANDS,
       application=st.integers(0, 2**32 - 1), request=st.booleans(),
       splits=st.lists(st.integers(1, 50), max_size=6))
def test_round_trip_through_framer(avps, command, application, request, splits):
    message = codec.new_request(command, application, avps)
    message.header.is_request = request
    data = codec.encode_message(message)
    framer, frames, position = MessageFramer(), [], 0
    for size in splits:
        frames += framer.feed(data[position:position + size])
        position += size
    frames += framer.feed(data[position:])
    assert frames == [data]
    decoded = codec.decode_message(frames[0])
    assert [avp.as_bytes() for avp in decoded.avps] == [avp.as_bytes() for avp in message.avps]
    assert (decoded.header.command_code, decoded.header.application_id) == (command, application)


@given(st.binary(max_size=200))
def test_garbage_stream_raises_only_typed_error(data):
    try:
        for frame in MessageFramer().feed(data):
            codec.decode_message(frame)
    except DiameterError:
        pass


@given(st.binary(max_size=120))
def test_garbage_after_valid_header_raises_only_typed_error(body):
    length = 20 + len(body) - len(body) % 4
    header = struct.pack("!IIIII", (1 << 24) | length, (0x80 << 24) | 257, 0, 1, 2)
    try:
        message = codec.decode_message(header + body[:length - 20])
        codec.avp_values(message, constants.AVP_HOST_IP_ADDRESS)
        codec.result_code(message)
    except DiameterError:
        pass


@given(address=st.ip_addresses())
def test_address_avp_round_trip(address):
    avp = codec.new_avp(constants.AVP_HOST_IP_ADDRESS, str(address))
    decoded = Avp.from_bytes(avp.as_bytes())
    assert codec.as_address(decoded.value) == address


@given(value=st.one_of(st.none(), st.binary(), st.text(), st.integers(),
                       st.tuples(st.integers(), st.text())))
def test_address_value_garbage_raises_only_typed_error(value):
    try:
        codec.as_address(value)
    except DiameterError as error:
        assert error.reason == "bad-avp-value"
