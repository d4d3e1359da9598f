"""RADIUS codec: request layout, reply verification, EAP-Message, MPPE keys, bootstrap values."""

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet

from aaa_mip6 import eap
from aaa_mip6.aaa import Accept, Challenge, Reject
from aaa_mip6.errors import AaaLimitError, InvalidInput
from aaa_mip6.radius import codec
from tests.unit.radius_fakes import (DICTIONARY, EAP_FAILURE, EAP_IDENTITY_RESPONSE,
                                     EAP_MD5_REQUEST, EAP_SUCCESS, NAS, SECRET, decode_request,
                                     reply_to, session, sign_reply)

# RFC 2548 §2.4.2 vector computed with `openssl dgst -md5` (not with this code):
# secret "xyzzy5461", Request Authenticator 00 01 .. 0f.
VECTOR_AUTHENTICATOR = bytes(range(16))
VECTOR_RECV_KEY = bytes(range(32))  # salt 0x8001
VECTOR_RECV_FIELD = bytes.fromhex(
    "8001d1e617ac6cf5b7d8426c2c8f0ed60294dbccd30670184ac8c9a235e549d4"
    "5bf18b203073eeba4f3424080792952bb38e")
VECTOR_SEND_KEY = bytes(range(32, 64))  # salt 0x8a5f
VECTOR_SEND_FIELD = bytes.fromhex(
    "8a5f64031c3d467edfc116fd2f31d511d5289a5f5474a4f09fd67868ef187180"
    "fd38dbc15c650bb098eae08d9370dc34e65d")


@pytest.fixture
def radius():
    return codec.RadiusCodec(SECRET, NAS, DICTIONARY)


def vendor_attribute(vendor: int, code: int, value: bytes) -> bytes:
    inner = bytes([code, 2 + len(value)]) + value
    return bytes([26, 6 + len(inner)]) + struct.pack("!I", vendor) + inner


def attribute(code: int, value: bytes) -> bytes:
    return bytes([code, 2 + len(value)]) + value


def eap_attributes(payload: bytes) -> bytes:
    return b"".join(attribute(79, chunk) for chunk in codec.split_eap_message(payload))


def vector_request(radius):
    """An Access-Request whose authenticator is the vector's, as if the client had drawn it."""
    sent = radius.encode_access_request(42, session(), EAP_IDENTITY_RESPONSE)
    sent.packet.authenticator = VECTOR_AUTHENTICATOR
    return sent


def test_access_request_has_message_authenticator_first_and_the_nas_attributes(radius):
    sent = radius.encode_access_request(7, session(), EAP_IDENTITY_RESPONSE, state=b"0xstate")
    assert sent.datagram[0] == pyrad_packet.AccessRequest and sent.datagram[1] == 7
    assert sent.datagram[20:22] == bytes([80, 18])
    request = decode_request(sent.datagram)
    assert request.verify_message_authenticator()
    assert request["User-Name"] == ["mn1@example.org"]
    assert request["NAS-Identifier"] == ["hac.example.org"]
    assert request["NAS-IP-Address"] == ["127.0.0.1"]
    assert "NAS-IPv6-Address" not in request
    assert request["NAS-Port-Type"] == ["Virtual"]
    assert request[61] == [struct.pack("!I", 5)]
    assert request["Calling-Station-Id"] == ["[2001:db8::7]:40001"]
    assert request[24] == [b"0xstate"]  # octets sent verbatim, not hex-decoded
    assert b"".join(request[79]) == EAP_IDENTITY_RESPONSE


def test_ipv6_nas_and_ipv4_mn():
    nas = codec.Nas("hac6", ipaddress.IPv6Address("2001:db8::1"))
    mn = session()
    mn.mn_address = ipaddress.IPv4Address("192.0.2.9")
    sent = codec.RadiusCodec(SECRET, nas, DICTIONARY).encode_access_request(1, mn, EAP_SUCCESS)
    request = decode_request(sent.datagram)
    assert request["NAS-IPv6-Address"] == ["2001:db8::1"]
    assert "NAS-IP-Address" not in request
    assert request["Calling-Station-Id"] == ["192.0.2.9:40001"]
    assert 24 not in request


def test_status_server_is_signed_and_its_accept_verifies(radius):
    sent = radius.encode_status_server(9)
    assert sent.datagram[0] == pyrad_packet.StatusServer
    assert sent.datagram[20] == 80
    assert decode_request(sent.datagram).verify_message_authenticator()
    request = decode_request(sent.datagram)
    radius.check_status_reply(sent, reply_to(request, pyrad_packet.AccessAccept).ReplyPacket())
    with pytest.raises(codec.RadiusError) as caught:
        radius.check_status_reply(sent, reply_to(request, pyrad_packet.AccessReject).ReplyPacket())
    assert caught.value.reason == "unexpected-code"


def test_status_server_accept_may_lack_a_message_authenticator_but_must_be_signed(radius):
    sent = radius.encode_status_server(9)
    sent.packet.authenticator = VECTOR_AUTHENTICATOR
    radius.check_status_reply(sent, sign_reply(pyrad_packet.AccessAccept, 9, VECTOR_AUTHENTICATOR,
                                               b"", message_authenticator=False))
    forged = sign_reply(pyrad_packet.AccessAccept, 9, VECTOR_AUTHENTICATOR, b"", b"guess",
                        message_authenticator=False)
    with pytest.raises(codec.RadiusError) as caught:
        radius.check_status_reply(sent, forged)
    assert caught.value.reason == "bad-authenticator"


@given(st.binary(min_size=1, max_size=3000))
def test_eap_message_split_and_join_round_trip(payload):
    chunks = codec.split_eap_message(payload)
    assert all(1 <= len(chunk) <= 253 for chunk in chunks)
    assert all(len(chunk) == 253 for chunk in chunks[:-1])
    assert b"".join(chunks) == payload


@given(st.binary(max_size=3000))
def test_long_eap_packets_cross_the_codec_intact(data):
    payload = eap.EapPacket(eap.Code.REQUEST, 3, eap.Type.TLS, data).encode()
    radius = codec.RadiusCodec(SECRET, NAS, DICTIONARY)
    sent = radius.encode_access_request(1, session(), payload)
    request = decode_request(sent.datagram)
    assert b"".join(request[79]) == payload
    reply = reply_to(request, pyrad_packet.AccessChallenge, payload, State=b"s")
    assert radius.decode_access_reply(sent, reply.ReplyPacket()).answer == Challenge(payload)


def test_challenge_gives_the_eap_request_and_the_state(radius):
    sent = radius.encode_access_request(3, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessChallenge,
                     EAP_MD5_REQUEST, State=b"\x01state")
    decoded = radius.decode_access_reply(sent, reply.ReplyPacket())
    assert decoded.answer == Challenge(EAP_MD5_REQUEST)
    assert decoded.state == b"\x01state"


def test_challenge_without_eap_request_is_rejected(radius):
    sent = radius.encode_access_request(3, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessChallenge, EAP_SUCCESS)
    with pytest.raises(codec.RadiusError, match="EAP SUCCESS"):
        radius.decode_access_reply(sent, reply.ReplyPacket())


def test_reject_with_and_without_eap_failure(radius):
    sent = radius.encode_access_request(3, session(), EAP_IDENTITY_RESPONSE)
    request = decode_request(sent.datagram)
    with_failure = reply_to(request, pyrad_packet.AccessReject, EAP_FAILURE).ReplyPacket()
    assert radius.decode_access_reply(sent, with_failure).answer == Reject(EAP_FAILURE)
    bare = reply_to(request, pyrad_packet.AccessReject).ReplyPacket()
    assert radius.decode_access_reply(sent, bare).answer == Reject(None)


def test_reject_keeps_its_reply_messages_in_order_cut_for_the_log(radius):
    sent = radius.encode_access_request(3, session(), EAP_IDENTITY_RESPONSE)
    request = decode_request(sent.datagram)
    said = reply_to(request, pyrad_packet.AccessReject, EAP_FAILURE,
                    Reply_Message=["wrong password", "for mn1"]).ReplyPacket()
    answer = radius.decode_access_reply(sent, said).answer
    assert answer == Reject(EAP_FAILURE, "wrong password for mn1")
    long = reply_to(request, pyrad_packet.AccessReject, EAP_FAILURE,
                    Reply_Message=["x" * 200, "y" * 200]).ReplyPacket()
    text = radius.decode_access_reply(sent, long).answer.reply_message
    assert text == "x" * 200 + " " + "y" * (codec.MAX_REPLY_MESSAGE - 201) + "..."


def test_accept_decrypts_the_rfc2548_vector_into_the_msk(radius):
    sent = vector_request(radius)
    attributes = (eap_attributes(EAP_SUCCESS)
                  + vendor_attribute(311, 17, VECTOR_RECV_FIELD)
                  + vendor_attribute(311, 16, VECTOR_SEND_FIELD))
    datagram = sign_reply(pyrad_packet.AccessAccept, 42, VECTOR_AUTHENTICATOR, attributes)
    answer = radius.decode_access_reply(sent, datagram).answer
    assert isinstance(answer, Accept)
    assert answer.msk == VECTOR_RECV_KEY + VECTOR_SEND_KEY
    assert answer.eap_payload == EAP_SUCCESS
    assert answer.attributes == {}
    assert VECTOR_RECV_KEY.hex() not in repr(answer)


def test_accept_with_keys_encrypted_by_pyrad_server_side(radius):
    sent = radius.encode_access_request(5, session(), EAP_IDENTITY_RESPONSE)
    msk = bytes(range(100, 164))
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessAccept, EAP_SUCCESS,
                     MS_MPPE_Recv_Key=msk[:32], MS_MPPE_Send_Key=msk[32:])
    assert radius.decode_access_reply(sent, reply.ReplyPacket()).answer.msk == msk


def test_accept_without_keys_has_no_msk(radius):
    sent = radius.encode_access_request(5, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessAccept, EAP_SUCCESS)
    assert radius.decode_access_reply(sent, reply.ReplyPacket()).answer == Accept(EAP_SUCCESS, None)


@pytest.mark.parametrize("keys, message", [
    (vendor_attribute(311, 17, VECTOR_RECV_FIELD), "exactly one"),
    (vendor_attribute(311, 17, VECTOR_RECV_FIELD) * 2 + vendor_attribute(311, 16, VECTOR_SEND_FIELD),
     "exactly one"),
    (vendor_attribute(311, 17, b"\x00" + VECTOR_RECV_FIELD[1:])
     + vendor_attribute(311, 16, VECTOR_SEND_FIELD), "high bit"),
    (vendor_attribute(311, 17, VECTOR_RECV_FIELD[:-1])
     + vendor_attribute(311, 16, VECTOR_SEND_FIELD), "salt"),
])
def test_bad_mppe_keys_are_rejected(radius, keys, message):
    sent = vector_request(radius)
    datagram = sign_reply(pyrad_packet.AccessAccept, 42, VECTOR_AUTHENTICATOR,
                          eap_attributes(EAP_SUCCESS) + keys)
    with pytest.raises(codec.RadiusError, match=message):
        radius.decode_access_reply(sent, datagram)


@pytest.mark.parametrize("recv, send", [(16, 32), (24, 24), (33, 33)])
def test_mppe_keys_of_wrong_length_are_rejected(radius, recv, send):
    sent = radius.encode_access_request(5, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessAccept, EAP_SUCCESS,
                     MS_MPPE_Recv_Key=bytes(recv), MS_MPPE_Send_Key=bytes(send))
    with pytest.raises(codec.RadiusError, match="octets"):
        radius.decode_access_reply(sent, reply.ReplyPacket())


def test_mschapv2_16_octet_keys_give_a_32_octet_msk(radius):
    sent = radius.encode_access_request(5, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessAccept, EAP_SUCCESS,
                     MS_MPPE_Recv_Key=bytes(range(16)), MS_MPPE_Send_Key=bytes(range(16, 32)))
    assert radius.decode_access_reply(sent, reply.ReplyPacket()).answer.msk == bytes(range(32))


def test_accept_carries_the_bootstrap_attributes(radius):
    sent = radius.encode_access_request(5, session(), EAP_IDENTITY_RESPONSE)
    prefix = bytes([64]) + ipaddress.IPv6Address("2001:db8:1::ff").packed  # host bits cleared
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessAccept, EAP_SUCCESS,
                     Framed_IPv6_Address=["2001:db8:1::10", "2001:db8:1::11"],
                     Framed_IP_Address="192.0.2.10", Session_Timeout=3600,
                     DNS_Server_IPv6_Address="2001:db8::53",
                     AAA_MIP6_HA_IPv6_Address="2001:db8::a", AAA_MIP6_HA_IPv4_Address="192.0.2.1")
    reply[125] = [prefix]
    attributes = radius.decode_access_reply(sent, reply.ReplyPacket()).answer.attributes
    assert attributes == {
        "home_address_ip6": ipaddress.IPv6Address("2001:db8:1::10"),
        "home_address_ip4": ipaddress.IPv4Address("192.0.2.10"),
        "home_link_prefix": ipaddress.IPv6Network("2001:db8:1::/64"),
        "home_agent_ip6": ipaddress.IPv6Address("2001:db8::a"),
        "home_agent_ip4": ipaddress.IPv4Address("192.0.2.1"),
        "dns_ip6": ipaddress.IPv6Address("2001:db8::53"),
        "session_timeout": 3600,
    }


@pytest.mark.parametrize("special", ["255.255.255.255", "255.255.255.254"])
def test_framed_ip_address_instructions_are_not_home_addresses(radius, special):
    sent = radius.encode_access_request(5, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), pyrad_packet.AccessAccept, EAP_SUCCESS,
                     Framed_IP_Address=special)
    assert radius.decode_access_reply(sent, reply.ReplyPacket()).answer.attributes == {}


@pytest.mark.parametrize("bad", [attribute(168, bytes(15)), attribute(8, bytes(5)),
                                 attribute(27, bytes(2)), attribute(125, bytes([129]) + bytes(16)),
                                 attribute(125, bytes(18))])
def test_malformed_bootstrap_attributes_are_rejected(radius, bad):
    sent = vector_request(radius)
    datagram = sign_reply(pyrad_packet.AccessAccept, 42, VECTOR_AUTHENTICATOR,
                          eap_attributes(EAP_SUCCESS) + bad)
    with pytest.raises(codec.RadiusError):
        radius.decode_access_reply(sent, datagram)


def spoof_cases(radius):
    sent = vector_request(radius)
    good = eap_attributes(EAP_MD5_REQUEST) + attribute(24, b"st")
    challenge = pyrad_packet.AccessChallenge
    tampered_ma = bytearray(sign_reply(challenge, 42, VECTOR_AUTHENTICATOR, good))
    tampered_ma[25] ^= 1  # inside the Message-Authenticator, then re-sign the response
    resigned = sign_reply(challenge, 42, VECTOR_AUTHENTICATOR, bytes(tampered_ma[20:]),
                          message_authenticator=False)
    return sent, {
        "wrong secret": (sign_reply(challenge, 42, VECTOR_AUTHENTICATOR, good, b"guess"),
                         "bad-authenticator"),
        "wrong request authenticator": (sign_reply(challenge, 42, bytes(16), good),
                                        "bad-authenticator"),
        "bad Message-Authenticator": (resigned, "bad-authenticator"),
        "no Message-Authenticator": (
            sign_reply(challenge, 42, VECTOR_AUTHENTICATOR, good, message_authenticator=False),
            "no-message-authenticator"),
        "two Message-Authenticators": (
            sign_reply(challenge, 42, VECTOR_AUTHENTICATOR, attribute(80, bytes(16)) + good),
            "no-message-authenticator"),
        "injected Proxy-State": (
            sign_reply(challenge, 42, VECTOR_AUTHENTICATOR, good + attribute(33, b"x")),
            "bad-authenticator"),
        "other Identifier": (sign_reply(challenge, 43, VECTOR_AUTHENTICATOR, good), "unknown-id"),
        "Accounting-Response": (
            sign_reply(pyrad_packet.AccountingResponse, 42, VECTOR_AUTHENTICATOR, good),
            "unexpected-code"),
        "short": (b"\x0b\x2a" + bytes(10), "malformed"),
        "Length beyond datagram": (b"\x0b\x2a\x00\x40" + bytes(16), "malformed"),
    }


@pytest.mark.parametrize("case", list(spoof_cases(codec.RadiusCodec(SECRET, NAS, DICTIONARY))[1]))
def test_spoofed_and_garbage_replies_raise_typed_errors(radius, case):
    sent, cases = spoof_cases(radius)
    datagram, reason = cases[case]
    with pytest.raises(codec.RadiusError) as caught:
        radius.decode_access_reply(sent, datagram)
    assert caught.value.reason == reason


def test_the_genuine_counterpart_of_the_spoof_cases_is_accepted(radius):
    sent = vector_request(radius)
    good = eap_attributes(EAP_MD5_REQUEST) + attribute(24, b"st")
    datagram = sign_reply(pyrad_packet.AccessChallenge, 42, VECTOR_AUTHENTICATOR, good)
    assert radius.decode_access_reply(sent, datagram).state == b"st"


@given(st.binary(max_size=300))
def test_arbitrary_datagrams_raise_only_radius_errors(datagram):
    radius = codec.RadiusCodec(SECRET, NAS, DICTIONARY)
    sent = vector_request(radius)
    with pytest.raises(codec.RadiusError):
        radius.decode_access_reply(sent, datagram)


@given(st.sampled_from([pyrad_packet.AccessAccept, pyrad_packet.AccessReject,
                        pyrad_packet.AccessChallenge]), st.binary(max_size=400))
def test_signed_replies_with_arbitrary_attributes_raise_only_typed_errors(code, attributes):
    radius = codec.RadiusCodec(SECRET, NAS, DICTIONARY)
    sent = vector_request(radius)
    try:
        reply = radius.decode_access_reply(
            sent, sign_reply(code, 42, VECTOR_AUTHENTICATOR, attributes))
    except InvalidInput:
        return
    assert isinstance(reply.answer, (Accept, Challenge, Reject))


def test_request_with_malformed_eap_or_overlong_user_is_refused(radius):
    with pytest.raises(eap.EapError):
        radius.encode_access_request(1, session(), b"\x02\x01\x00\x09abc")
    with pytest.raises(AaaLimitError, match="User-Name of 254 octets exceeds 253") as caught:
        radius.encode_access_request(1, session("u" * 254), EAP_IDENTITY_RESPONSE)
    assert caught.value.reason == "too-long"
    huge = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.TLS, bytes(4100)).encode()
    with pytest.raises(AaaLimitError, match="exceeds 4096"):
        radius.encode_access_request(1, session(), huge)


NAS6 = codec.Nas("hac-6.example.org", ipaddress.IPv6Address("2001:db8::53"))


@given(nas=st.sampled_from([NAS, NAS6]), user=st.integers(1, 253),
       size=st.integers(4, 3000), state=st.none() | st.binary(min_size=1, max_size=253))
def test_the_counted_length_is_the_length_of_the_request_built(nas, user, size, state):
    mn = session("é" * (user // 2) + "u" * (user % 2))  # UTF-8: octets count, not characters
    payload = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.TLS, bytes(size)).encode()
    sent = codec.RadiusCodec(SECRET, nas, DICTIONARY).encode_access_request(1, mn, payload, state)
    assert codec.access_request_length(nas, mn, payload, state) == len(sent.datagram)


def test_a_request_of_exactly_4096_octets_is_built_and_one_octet_more_is_refused(radius):
    def request_with(size: int):
        payload = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.TLS, bytes(size - 5)).encode()
        return radius.encode_access_request(1, session(), payload, b"state")

    size = 3900
    while len(request_with(size).datagram) < codec.MAX_PACKET_LENGTH:
        size += 1
    assert len(request_with(size).datagram) == codec.MAX_PACKET_LENGTH
    with pytest.raises(AaaLimitError):
        request_with(size + 1)


def test_secrets_stay_out_of_reprs(radius):
    sent = radius.encode_access_request(1, session(), EAP_IDENTITY_RESPONSE, state=b"secret-state")
    for text in (repr(radius), repr(sent)):
        assert "xyzzy" not in text and "secret-state" not in text


def test_load_dictionary_names_the_places_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        codec.load_dictionary(tmp_path)
    assert DICTIONARY["MS-MPPE-Recv-Key"].encrypt == 2


def test_every_request_has_a_fresh_random_authenticator(radius):
    drawn = {radius.encode_access_request(7, session(), EAP_IDENTITY_RESPONSE).datagram[4:20]
             for _ in range(50)} | {radius.encode_status_server(8).datagram[4:20]}
    assert len(drawn) == 51 and all(len(value) == 16 for value in drawn)
