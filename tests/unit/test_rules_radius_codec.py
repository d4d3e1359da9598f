"""aaa_mip6.radius.codec, rule by rule (RFC 2865, RFC 3579, RFC 2548, BlastRADIUS): each
test states one rule of the RADIUS codec and kills the mutants of ``make mutation``
(docs/mutation.md) that would break it. The spoof cases are in test_radius_codec.py.

Every refusal names what is wrong (the HAC logs it with the server's name) and carries
the ``reason`` the client counts as ``ignored-<reason>``; the table below pins both.

Equivalent mutants (survive by design, nothing observable changes):

- ``_verified``: ``VerifyReply(reply, None, ...)`` or without the datagram. pyrad then
  verifies ``reply.raw_packet``, which is the same datagram cut to its Length (the
  padding rule of RFC 2865 §3), exactly what it cuts the datagram to itself.
- ``_verified``: ``enforce_ma=None`` or without it, and ``check_status_reply``'s
  ``require_message_authenticator=None``. pyrad always verifies a Message-Authenticator
  that is present; ``enforce_ma`` only refuses one that is missing, which the codec's own
  "exactly one" check has refused already (or, for Status-Server, allows on purpose).
- ``_bootstrap``: ``int.from_bytes(raw)`` without ``"big"``: the default since 3.11.
- ``_home_link_prefix``: ``strict=None`` instead of False: both falsy, host bits cleared.
"""

from __future__ import annotations

import struct

import pytest
from pyrad import packet as pyrad_packet

from aaa_mip6 import eap
from aaa_mip6.aaa import Challenge
from aaa_mip6.radius import codec
from tests.unit.radius_fakes import (DICTIONARY, EAP_IDENTITY_RESPONSE, EAP_MD5_REQUEST,
                                     EAP_SUCCESS, NAS, SECRET, decode_request, reply_to,
                                     session, sign_reply)
from tests.unit.test_radius_codec import (VECTOR_AUTHENTICATOR, VECTOR_RECV_FIELD,
                                          VECTOR_SEND_FIELD, attribute, eap_attributes,
                                          vector_request, vendor_attribute)

CHALLENGE, ACCEPT, REJECT = (pyrad_packet.AccessChallenge, pyrad_packet.AccessAccept,
                             pyrad_packet.AccessReject)


@pytest.fixture
def radius():
    return codec.RadiusCodec(SECRET, NAS, DICTIONARY)


def test_the_shipped_dictionary_loads_by_default():
    dictionary = codec.load_dictionary()
    assert dictionary["EAP-Message"].code == 79 and dictionary["MS-MPPE-Send-Key"].encrypt == 2


def test_a_missing_dictionary_is_named(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        codec.load_dictionary(tmp_path)
    assert str(caught.value) == f"no RADIUS dictionary at {tmp_path / 'dictionary'}"


def test_a_challenge_without_state_has_none_to_echo_rfc2865_5_24(radius):
    sent = radius.encode_access_request(3, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), CHALLENGE, EAP_MD5_REQUEST)
    assert radius.decode_access_reply(sent, reply.ReplyPacket()).state is None


def test_an_eap_request_split_over_eap_messages_is_joined_rfc3579_3_1(radius):
    long_request = eap.EapPacket(eap.Code.REQUEST, 2, eap.Type.TLS, bytes(range(256)) * 3).encode()
    sent = radius.encode_access_request(3, session(), EAP_IDENTITY_RESPONSE)
    reply = reply_to(decode_request(sent.datagram), CHALLENGE, long_request, State=b"s")
    assert len(reply[79]) > 1
    assert radius.decode_access_reply(sent, reply.ReplyPacket()).answer == Challenge(long_request)


def test_a_home_link_prefix_of_length_128_is_a_host_route_rfc5447_4_2_4(radius):
    sent = vector_request(radius)
    prefix = bytes([128]) + bytes(15) + b"\x01"
    datagram = sign_reply(ACCEPT, 42, VECTOR_AUTHENTICATOR,
                          eap_attributes(EAP_SUCCESS) + attribute(125, prefix))
    attributes = radius.decode_access_reply(sent, datagram).answer.attributes
    assert str(attributes["home_link_prefix"]) == "::1/128"


def request_of(radius, size: int) -> bytes:
    """An Access-Request datagram of exactly ``size`` octets (an EAP-TLS response grown
    until it fits)."""
    base = len(radius.encode_access_request(1, session(), EAP_IDENTITY_RESPONSE).datagram)
    body = size - base
    for data_length in range(body - 40, body + 1):
        payload = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.TLS, bytes(data_length)).encode()
        try:
            datagram = radius.encode_access_request(1, session(), payload).datagram
        except codec.RadiusError:
            break
        if len(datagram) == size:
            return datagram
    raise AssertionError(f"no request of {size} octets")


def test_a_request_of_exactly_4096_octets_is_sent_rfc2865_3(radius):
    assert len(request_of(radius, codec.MAX_PACKET_LENGTH)) == 4096


def accept_with(*keys: bytes) -> bytes:
    return sign_reply(ACCEPT, 42, VECTOR_AUTHENTICATOR,
                      eap_attributes(EAP_SUCCESS) + b"".join(keys))


def recv_key(value: bytes) -> bytes:
    return vendor_attribute(311, 17, value)


SEND_KEY = vendor_attribute(311, 16, VECTOR_SEND_FIELD)
LONG_EAP = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.TLS, bytes(4100)).encode()

# case: (datagram given to access_reply after vector_request, message, reason)
REPLY_REFUSALS = {
    "short datagram": (b"\x0b\x2a" + bytes(10),
                       "RADIUS datagram of 12 octets is shorter than a header", "malformed"),
    "other Identifier": (sign_reply(CHALLENGE, 43, VECTOR_AUTHENTICATOR, b""),
                         "reply Identifier matches no request", "unknown-id"),
    "Accounting-Response": (sign_reply(pyrad_packet.AccountingResponse, 42,
                                       VECTOR_AUTHENTICATOR, b""),
                            "RADIUS code 5 does not answer code 1", "unexpected-code"),
    "undecodable": (b"\x0b\x2a\x00\x17" + bytes(16) + b"\x50\x01\x00",
                    "undecodable RADIUS reply: ", "malformed"),
    "Length 32768": (b"\x0b\x2a\x80\x00" + bytes(16),
                     "RADIUS Length 32768 for a datagram of 20 octets", "malformed"),
    "no Message-Authenticator": (
        sign_reply(CHALLENGE, 42, VECTOR_AUTHENTICATOR, eap_attributes(EAP_MD5_REQUEST),
                   message_authenticator=False),
        "reply without exactly one Message-Authenticator", "no-message-authenticator"),
    "wrong secret": (sign_reply(CHALLENGE, 42, VECTOR_AUTHENTICATOR,
                                eap_attributes(EAP_MD5_REQUEST), b"guess"),
                     "reply authenticator or Message-Authenticator does not verify",
                     "bad-authenticator"),
    "challenge without EAP": (sign_reply(CHALLENGE, 42, VECTOR_AUTHENTICATOR, b""),
                              "Access-Challenge without EAP-Message", "malformed"),
    "challenge with malformed EAP": (
        sign_reply(CHALLENGE, 42, VECTOR_AUTHENTICATOR, attribute(79, b"\x01\x02\x00\x09x")),
        "Access-Challenge carries a malformed EAP packet: EAP Length field says 9 octets, "
        "packet has 5", "malformed"),
    "reject with EAP-Success": (sign_reply(REJECT, 42, VECTOR_AUTHENTICATOR,
                                           eap_attributes(EAP_SUCCESS)),
                               "Access-Reject carries EAP SUCCESS, expected FAILURE",
                               "malformed"),
    "accept with EAP-Request": (sign_reply(ACCEPT, 42, VECTOR_AUTHENTICATOR,
                                           eap_attributes(EAP_MD5_REQUEST)),
                                "Access-Accept carries EAP REQUEST, expected SUCCESS",
                                "malformed"),
    "accept with one MPPE key": (accept_with(recv_key(VECTOR_RECV_FIELD)),
                                 "Access-Accept needs exactly one MS-MPPE-Recv-Key and Send-Key",
                                 "malformed"),
    "salt with only the low bit": (accept_with(recv_key(b"\x01" + VECTOR_RECV_FIELD[1:]), SEND_KEY),
                                   "MS-MPPE key without a salt whose high bit is set",
                                   "malformed"),
    "salt and nothing else": (accept_with(recv_key(b"\x80\x01"), SEND_KEY),
                              "MS-MPPE key field of 2 octets is not salt + n*16", "malformed"),
    "HA address of 15 octets": (accept_with(attribute(168, bytes(15))),
                                "Framed-IPv6-Address of 15 octets, expected 16", "malformed"),
    "prefix length 129": (accept_with(attribute(125, bytes([129]) + bytes(16))),
                          "MIP6-Home-Link-Prefix length 129 exceeds 128", "malformed"),
}


@pytest.mark.parametrize("case", REPLY_REFUSALS)
def test_every_refused_reply_says_why_and_counts_its_reason(radius, case):
    datagram, message, reason = REPLY_REFUSALS[case]
    with pytest.raises(codec.RadiusError) as caught:
        radius.decode_access_reply(vector_request(radius), datagram)
    text = str(caught.value)  # a message ending in ": " goes on with pyrad's own words
    assert text.startswith(message) if message.endswith(": ") else text == message
    assert caught.value.reason == reason


def test_a_reply_may_carry_padding_after_its_length_rfc2865_3(radius):
    sent = vector_request(radius)
    datagram = sign_reply(CHALLENGE, 42, VECTOR_AUTHENTICATOR,
                          eap_attributes(EAP_MD5_REQUEST) + attribute(24, b"st"))
    assert radius.decode_access_reply(sent, datagram + bytes(7)).state == b"st"
    assert struct.unpack_from("!H", datagram, 2)[0] == len(datagram)
