"""Diameter EAP (RFC 4072): DER/DEA codec, bootstrap AVPs, and the HAC's DiameterEapBackend on it."""

from __future__ import annotations

import ipaddress

import pytest
from diameter.message import constants
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, task

from aaa_mip6 import container, eap
from aaa_mip6 import messages as m
from aaa_mip6.aaa import (
    AaaSession,
    AaaTimeout,
    AaaUnavailable,
    Accept,
    BootstrapAttributes,
    Challenge,
    Reject,
)
from aaa_mip6.diameter import codec
from aaa_mip6.diameter import eap as deap
from aaa_mip6.diameter.codec import DiameterError
from aaa_mip6.diameter.peer import LocalNode
from aaa_mip6.diameter.router import RequestTimedOut
from aaa_mip6.errors import InvalidInput
from aaa_mip6.tvheaders import NAI_MAX
from aaa_mip6.twisted.diameter_eap import DEFAULT_RETRY_AFTER, DiameterEapBackend

HAC_HOST, HAC_REALM = "hac.example.org", "example.org"
AAA_HOST, AAA_REALM = "aaa.example.net", "example.net"
IDENTITY = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.IDENTITY, b"mn1@example.org").encode()
MD5_REQUEST = eap.EapPacket(eap.Code.REQUEST, 2, eap.Type.MD5_CHALLENGE, bytes(17)).encode()
MD5_RESPONSE = eap.EapPacket(eap.Code.RESPONSE, 2, eap.Type.MD5_CHALLENGE, bytes(17)).encode()
SUCCESS = eap.EapPacket(eap.Code.SUCCESS, 2).encode()
FAILURE = eap.EapPacket(eap.Code.FAILURE, 2).encode()
MSK = bytes(range(64))


def wire(message):
    """``message`` as the peer at the other end of a connection decodes it."""
    return codec.decode_message(codec.encode_message(message))


class FakeNode:
    """The part of DiameterNode the backend and the gateway use, on a task.Clock."""

    def __init__(self, origin_host: str = HAC_HOST, origin_realm: str = HAC_REALM):
        self.local = LocalNode(origin_host, origin_realm,
                               auth_applications=frozenset({deap.EAP_APPLICATION_ID}))
        self.clock = task.Clock()
        self.router = self
        self.peer_open = True
        self.sent: list[tuple] = []  # (request as received, Deferred of the answer)
        self.handlers = {}
        self.stopped = False

    def now(self) -> float:
        return self.clock.seconds()

    def candidates(self, request):
        return [AAA_HOST] if self.peer_open else []

    def send_request(self, request) -> defer.Deferred:
        answered = defer.Deferred()
        self.sent.append((wire(request), answered))
        return answered

    def register_handler(self, application_id, command_code, handler) -> None:
        self.handlers[(application_id, command_code)] = handler

    def answer(self, request, result, avps=(), **kwargs):
        return codec.new_answer(request, result, self.local.origin_host,
                                self.local.origin_realm, list(avps), **kwargs)

    def stop(self) -> defer.Deferred:
        self.stopped = True
        return defer.succeed(None)


def dea(request, answer=None, *, result=None, state=None, origin_host=AAA_HOST):
    """The DEA an EAP server would send for ``request``, as the HAC decodes it."""
    if answer is not None:
        result, avps = deap.dea_avps(answer, state=state, multi_round_time_out=30)
    else:
        avps = deap.application_avps()
    return wire(codec.new_answer(request, result, origin_host, AAA_REALM, avps))


def new_session() -> AaaSession:
    return AaaSession("mn1@example.org", ipaddress.ip_address("2001:db8::7"), 40001)


def outcome(d: defer.Deferred):
    results = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


# --- bootstrap AVPs ------------------------------------------------------------------

ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
ipv4 = st.integers(0, 2**32 - 3).map(ipaddress.IPv4Address)  # not the two instructions
prefixes = st.tuples(ipv6, st.integers(0, 128)).map(
    lambda t: ipaddress.IPv6Network(t, strict=False))
bootstrap = st.fixed_dictionaries({}, optional={
    "home_address_ip6": ipv6, "home_address_ip4": ipv4, "home_agent_ip6": ipv6,
    "home_agent_ip4": ipv4, "home_link_prefix": prefixes,
    "session_timeout": st.integers(0, 2**32 - 1)})


@given(attributes=bootstrap, msk=st.sampled_from([None, bytes(32), MSK]))
def test_accept_round_trips_through_a_dea(attributes, msk):
    request = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM,
                              deap.EapRequest("s;1", HAC_HOST, "mn", MD5_RESPONSE))
    parsed = deap.decode_dea(dea(request, Accept(SUCCESS, msk, BootstrapAttributes(attributes))))
    assert parsed.result_code == codec.SUCCESS and parsed.origin_host == AAA_HOST
    assert parsed.answer == Accept(SUCCESS, msk, attributes)


def test_bootstrap_avps_use_rfc_5447_and_4004_codes_and_drop_dns():
    attributes = BootstrapAttributes(
        home_address_ip6=ipaddress.IPv6Address("2001:db8:1::10"),
        home_agent_ip4=ipaddress.IPv4Address("192.0.2.1"),
        home_link_prefix=ipaddress.IPv6Network("2001:db8:1::/64"),
        dns_ip6=ipaddress.IPv6Address("2001:db8::53"))
    avps = deap.bootstrap_avps(attributes)
    assert [avp.code for avp in avps] == [constants.AVP_MIP_MOBILE_NODE_ADDRESS,
                                          constants.AVP_MIP6_AGENT_INFO]
    inner = avps[1].value
    assert [avp.code for avp in inner] == [constants.AVP_MIP_HOME_AGENT_ADDRESS,
                                           constants.AVP_MIP6_HOME_LINK_PREFIX]
    assert inner[1].value == bytes([64]) + ipaddress.IPv6Address("2001:db8:1::").packed


def test_framed_ip_address_and_top_level_prefix_are_read_too():
    request = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM,
                              deap.EapRequest("s;1", HAC_HOST, "mn", MD5_RESPONSE))
    result, avps = deap.dea_avps(Accept(SUCCESS, None))
    avps += [codec.new_avp(constants.AVP_FRAMED_IP_ADDRESS, bytes([192, 0, 2, 10])),
             codec.new_avp(constants.AVP_MIP6_HOME_LINK_PREFIX, bytes([48]) + bytes(16))]
    answer = wire(codec.new_answer(request, result, AAA_HOST, AAA_REALM, avps))
    assert deap.decode_dea(answer).answer.attributes == {
        "home_address_ip4": ipaddress.IPv4Address("192.0.2.10"),
        "home_link_prefix": ipaddress.IPv6Network("::/48")}


# --- DER ------------------------------------------------------------------------------

requests = st.builds(
    deap.EapRequest, session_id=st.text(min_size=1, max_size=40), origin_host=st.just(HAC_HOST),
    user_name=st.text(min_size=1, max_size=60),
    eap_payload=st.binary(max_size=300).map(
        lambda data: eap.EapPacket(eap.Code.RESPONSE, 3, eap.Type.TLS, data).encode()),
    state=st.none() | st.binary(min_size=1, max_size=40),
    calling_station_id=st.none() | st.just("[2001:db8::7]:40001"))


@given(request=requests)
def test_der_round_trips(request):
    message = wire(deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM, request,
                                   destination_host=AAA_HOST, nas_identifier="hac"))
    assert message.header.is_request and message.header.is_proxyable
    assert message.header.application_id == 5 and message.header.command_code == 268
    assert codec.avp_value(message, constants.AVP_AUTH_REQUEST_TYPE) == 3
    assert codec.avp_value(message, constants.AVP_DESTINATION_HOST) == AAA_HOST.encode()
    assert deap.decode_der(message) == request


def test_der_needs_user_name_and_a_valid_eap_payload():
    request = deap.EapRequest("s;1", HAC_HOST, "mn", MD5_RESPONSE)
    message = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM, request)
    message.avps = [avp for avp in message.avps if avp.code != constants.AVP_USER_NAME]
    with pytest.raises(DiameterError) as caught:
        deap.decode_der(wire(message))
    assert caught.value.reason == "missing-avp"
    bad = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM,
                          deap.EapRequest("s;1", HAC_HOST, "mn", b"\x02\x01\x00\x09x"))
    with pytest.raises(DiameterError) as caught:
        deap.decode_der(wire(bad))
    assert caught.value.reason == "bad-avp-value"


def test_the_largest_eap_input_an_mn_can_send_fits_a_der():
    # A Mid's eap-payload is hex in a Content of at most 65535 octets: fewer than 32768
    # EAP octets; its User-Name (mn-id or EAP identity) the HAC bounds to 253 octets. So
    # no MN input reaches a Diameter limit: no AaaLimitError case for this backend.
    content = m.encode(m.MnMid(eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.TLS,
                                             bytes(32_767 - 5)).encode()), b"1", bytes(32))
    assert len(content) > container.MAX_CONTENT
    request = deap.EapRequest("s;" + "9" * 200, HAC_HOST, "u" * NAI_MAX,
                              eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.TLS,
                                            bytes(32_767 - 5)).encode(),
                              state=bytes(253), calling_station_id="[2001:db8::7]:40001")
    der = codec.encode_message(deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM, request,
                                               destination_host=AAA_HOST,
                                               nas_identifier="h" * 253))
    assert len(der) < 40_000 < codec.DEFAULT_MAX_MESSAGE_LENGTH


def test_a_dea_is_not_a_der_and_another_command_is_neither():
    request = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM,
                              deap.EapRequest("s;1", HAC_HOST, "mn", MD5_RESPONSE))
    with pytest.raises(DiameterError):
        deap.decode_der(dea(request, Reject()))
    with pytest.raises(DiameterError):
        deap.decode_dea(wire(request))
    other = codec.new_request(codec.TEST_APPLICATION_ID, 265, [])
    with pytest.raises(DiameterError):
        deap.decode_der(wire(other))


# --- DEA ------------------------------------------------------------------------------


@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_the_typed_error(data):
    for parse in (deap.decode_der, deap.decode_dea):
        try:
            parse(codec.decode_message(data))
        except InvalidInput:
            pass


@given(avps=st.binary(max_size=120).map(lambda b: b[:len(b) & ~3]),
       flags=st.sampled_from([0x00, 0x80]))
def test_arbitrary_avps_in_a_diameter_eap_header_only_raise_the_typed_error(avps, flags):
    length = 20 + len(avps)
    data = (bytes([1]) + length.to_bytes(3, "big") + bytes([flags]) + (268).to_bytes(3, "big")
            + (5).to_bytes(4, "big") + bytes(8) + avps)
    try:
        message = codec.decode_message(data)
        (deap.decode_der if flags else deap.decode_dea)(message)
    except InvalidInput:
        pass


def _dea_with(result, *avps):
    request = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM,
                              deap.EapRequest("s;1", HAC_HOST, "mn", MD5_RESPONSE))
    return wire(codec.new_answer(request, result, AAA_HOST, AAA_REALM,
                                 deap.application_avps() + list(avps)))


def _payload(packet: bytes):
    return codec.new_avp(constants.AVP_EAP_PAYLOAD, packet, mandatory=True)


@pytest.mark.parametrize("message", [
    _dea_with(deap.MULTI_ROUND_AUTH),  # a challenge without EAP-Request
    _dea_with(deap.MULTI_ROUND_AUTH, _payload(SUCCESS)),
    _dea_with(codec.SUCCESS, _payload(FAILURE)),
    _dea_with(codec.SUCCESS),
    _dea_with(deap.AUTHENTICATION_REJECTED, _payload(SUCCESS)),
    _dea_with(codec.SUCCESS, _payload(SUCCESS),
              codec.new_avp(constants.AVP_EAP_MASTER_SESSION_KEY, bytes(16))),
    _dea_with(codec.SUCCESS, _payload(SUCCESS),
              codec.new_avp(constants.AVP_MIP6_HOME_LINK_PREFIX, bytes([129]) + bytes(16))),
    _dea_with(codec.SUCCESS, _payload(SUCCESS),
              codec.new_avp(constants.AVP_FRAMED_IP_ADDRESS, bytes(3))),
])
def test_contradictory_deas_are_refused(message):
    with pytest.raises(DiameterError):
        deap.decode_dea(message)


def test_challenge_and_reject_carry_their_eap_and_the_state():
    parsed = deap.decode_dea(_dea_with(deap.MULTI_ROUND_AUTH, _payload(MD5_REQUEST),
                                       codec.new_avp(constants.AVP_STATE, b"st")))
    assert parsed.answer == Challenge(MD5_REQUEST) and parsed.state == b"st"
    assert deap.decode_dea(_dea_with(deap.AUTHENTICATION_REJECTED)).answer == Reject(None)
    other = deap.decode_dea(_dea_with(codec.UNABLE_TO_DELIVER))
    assert other.answer is None and other.result_code == codec.UNABLE_TO_DELIVER


def test_msk_is_not_in_repr():
    parsed = deap.decode_dea(dea(wire(deap.encode_der(
        HAC_HOST, HAC_REALM, AAA_REALM, deap.EapRequest("s;1", HAC_HOST, "mn", IDENTITY))),
        Accept(SUCCESS, MSK)))
    assert MSK.hex() not in repr(parsed) and repr(MSK) not in repr(parsed)


# --- the backend ----------------------------------------------------------------------


@pytest.fixture
def node():
    return FakeNode()


@pytest.fixture
def backend(node):
    return DiameterEapBackend(node, AAA_REALM, nas_identifier="hac-1")


def test_multi_round_keeps_the_session_id_echoes_state_and_returns_the_msk(node, backend):
    session = new_session()
    first = backend.authenticate(session, IDENTITY)
    der, answered = node.sent[0]
    session_id = codec.avp_value(der, constants.AVP_SESSION_ID)
    assert session_id.startswith(f"{HAC_HOST};") and session_id.endswith(session.session_id)
    assert codec.avp_value(der, constants.AVP_STATE) is None
    assert codec.avp_value(der, constants.AVP_DESTINATION_HOST) is None
    assert codec.avp_value(der, constants.AVP_CALLING_STATION_ID) == "[2001:db8::7]:40001"
    assert codec.avp_value(der, constants.AVP_NAS_IDENTIFIER) == "hac-1"
    answered.callback(dea(der, Challenge(MD5_REQUEST), state=b"round-1"))
    assert outcome(first) == Challenge(MD5_REQUEST)

    second = backend.authenticate(session, MD5_RESPONSE)
    der, answered = node.sent[1]
    assert codec.avp_value(der, constants.AVP_SESSION_ID) == session_id
    assert codec.avp_value(der, constants.AVP_STATE) == b"round-1"
    assert codec.avp_value(der, constants.AVP_DESTINATION_HOST) == AAA_HOST.encode()
    assert codec.avp_value(der, constants.AVP_EAP_PAYLOAD) == MD5_RESPONSE
    attributes = BootstrapAttributes(home_address_ip6=ipaddress.IPv6Address("2001:db8:1::10"))
    answered.callback(dea(der, Accept(SUCCESS, MSK, attributes)))
    assert outcome(second) == Accept(SUCCESS, MSK, attributes)
    assert session.state is None


def test_each_conversation_gets_its_own_session_id(node, backend):
    backend.authenticate(new_session(), IDENTITY)
    backend.authenticate(new_session(), IDENTITY)
    ids = {codec.avp_value(der, constants.AVP_SESSION_ID) for der, _ in node.sent}
    assert len(ids) == 2


def test_reject(node, backend):
    d = backend.authenticate(new_session(), IDENTITY)
    der, answered = node.sent[0]
    answered.callback(dea(der, Reject(FAILURE)))
    assert outcome(d) == Reject(FAILURE)


def test_no_open_peer_is_unavailable_without_sending(node, backend):
    node.peer_open = False
    failure = outcome(backend.authenticate(new_session(), IDENTITY))
    assert failure.check(AaaUnavailable) and failure.value.retry_after == DEFAULT_RETRY_AFTER
    assert node.sent == []


def test_no_answer_is_a_timeout(node, backend):
    d = backend.authenticate(new_session(), IDENTITY)
    node.sent[0][1].errback(RequestTimedOut("no answer within 10 s"))
    assert outcome(d).check(AaaTimeout)


@pytest.mark.parametrize("result, error", [(codec.UNABLE_TO_DELIVER, AaaTimeout),
                                           (deap.TOO_BUSY, AaaUnavailable),
                                           (codec.UNABLE_TO_COMPLY, DiameterError)])
def test_error_answers_map_to_aaa_errors(node, backend, result, error):
    d = backend.authenticate(new_session(), IDENTITY)
    der, answered = node.sent[0]
    answered.callback(dea(der, result=result))
    assert outcome(d).check(error)


def test_stop_fails_outstanding_calls_and_stops_the_node(node, backend):
    d = backend.authenticate(new_session(), IDENTITY)
    stopped = backend.stop()
    assert outcome(d).check(AaaUnavailable)
    assert outcome(stopped) is None and node.stopped
    node.sent[0][1].callback(dea(node.sent[0][0], Reject()))  # a late answer changes nothing
    assert outcome(backend.authenticate(new_session(), IDENTITY)).check(AaaUnavailable)
