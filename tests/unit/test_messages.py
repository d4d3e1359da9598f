import hashlib
import ipaddress
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.iana import MIPV6TLS_PORT
from aaa_mip6 import authenticator, eap
from aaa_mip6 import messages as m
from aaa_mip6 import tvheaders as tv
from aaa_mip6.authenticator import EAP_KEY, Sender
from aaa_mip6.errors import AuthenticatorError, InvalidInput, MessageError
from aaa_mip6.sa import Bootstrap, HomeAgent, SecurityAssociation
from aaa_mip6.suites import SUITES

from .strategies import HEADER_VALUES, dates, ip4, ip4_prefixes, ip6, ip6_prefixes, nais, rands

PSK = b"correct horse battery staple"
MSK = bytes(range(64))
CB = hashlib.sha384(b"the HAC's certificate").digest()
RAND_A, RAND_B = b"\x11" * 32, b"\x22" * 32
IDENTITY = eap.EapPacket(eap.Code.REQUEST, 1, eap.Type.IDENTITY).encode()
SUCCESS = eap.EapPacket(eap.Code.SUCCESS, 9).encode()
FAILURE = eap.EapPacket(eap.Code.FAILURE, 9).encode()

eap_packets = st.one_of(
    st.builds(lambda code, ident: eap.EapPacket(code, ident).encode(),
              st.sampled_from([eap.Code.SUCCESS, eap.Code.FAILURE]), st.integers(0, 255)),
    st.builds(lambda code, ident, kind, data: eap.EapPacket(code, ident, kind, data).encode(),
              st.sampled_from([eap.Code.REQUEST, eap.Code.RESPONSE]), st.integers(0, 255),
              st.integers(1, 255), st.binary(max_size=40)),
)
bootstraps = st.builds(
    Bootstrap,
    st.builds(HomeAgent, st.none() | ip6, st.none() | ip4, st.integers(1, 65535)),
    st.none() | ip6, st.none() | ip4, st.none() | ip6_prefixes, st.none() | ip4_prefixes,
    st.none() | ip6, st.none() | ip4,
)
keys = st.binary(min_size=1, max_size=32)


@st.composite
def provisions(draw):
    suite = draw(st.sampled_from(list(SUITES.values())))
    ikeys = st.binary(min_size=suite.ikey_length, max_size=suite.ikey_length)
    ekeys = st.binary(min_size=suite.ekey_length, max_size=suite.ekey_length)
    return m.Provision(
        draw(HEADER_VALUES[tv.SPI]), suite.code, draw(st.sampled_from([0, 1])), draw(dates),
        draw(ikeys), draw(ikeys), draw(ekeys), draw(ekeys), draw(st.none() | bootstraps),
    )


psk_or_eap = st.one_of(
    st.fixed_dictionaries({"mn_rand": rands, "hac_rand": rands}),
    st.fixed_dictionaries({"eap_payload": eap_packets}),
)
error_statuses = st.sampled_from([400, 401, 500, 501, 503, 504])

requests = st.one_of(
    st.builds(m.MnInit, nais, rands, HEADER_VALUES[tv.AUTH_METHOD]),
    st.builds(m.MnMid, eap_packets),
    st.builds(lambda scope, suites, flow: m.MnDone(scope, suites, **flow),
              st.sampled_from([0, 1]), HEADER_VALUES[tv.SUITELIST], psk_or_eap),
)
responses = st.one_of(
    st.builds(lambda r1, r2: m.HacInit(tv.AuthMethod.PSK, r1, r2), rands, rands),
    st.builds(lambda payload: m.HacInit(tv.AuthMethod.EAP, eap_payload=payload), eap_packets),
    st.builds(m.HacMid, eap_packets),
    st.builds(lambda flow, provision: m.HacDone(200, provision=provision, **flow),
              psk_or_eap, provisions()),
    st.builds(lambda flow, status: m.HacDone(status, **flow), psk_or_eap, error_statuses),
    st.builds(m.HacError, error_statuses, st.none() | dates),
)
ALL_REQUESTS = (m.MnInit, m.MnMid, m.MnDone)
ALL_RESPONSES = (m.HacInit, m.HacMid, m.HacDone, m.HacError)


@given(requests, keys, st.booleans())
def test_requests_round_trip_and_verify(message, key, draft01):
    content = m.encode(message, key, CB, draft01=draft01)
    received = m.decode_request(content, ALL_REQUESTS)
    assert received.message == message
    if isinstance(message, m.MnInit):
        assert received.auth is None
    else:
        received.verify(key, CB, draft01=draft01)


@given(responses, keys, st.booleans())
def test_responses_round_trip_and_verify(message, key, draft01):
    content = m.encode(message, key, CB, draft01=draft01)
    received = m.decode_response(content, ALL_RESPONSES)
    assert received.message == message
    received.verify(key, CB, draft01=draft01)
    assert m.decode_response(m.encode(received.message, key, CB), ALL_RESPONSES).message == message


@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_invalid_input(content):
    for decode, expected in ((m.decode_request, ALL_REQUESTS), (m.decode_response, ALL_RESPONSES)):
        try:
            decode(content, expected)
        except InvalidInput:
            pass


@given(responses, st.data())
def test_mutated_responses_only_raise_invalid_input(message, data):
    content = bytearray(m.encode(message, PSK, CB))
    for _ in range(data.draw(st.integers(1, 3))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    try:
        m.decode_response(bytes(content), ALL_RESPONSES).verify(PSK, CB)
    except InvalidInput:
        pass


# --- the PSK and EAP exchanges, as the HAC and MN will run them ---------------


def full_provision() -> m.Provision:
    return m.Provision(
        spi=4242, suite=b"\x00\x2f", scope=1,
        validity_end=datetime(2030, 1, 1, 12, tzinfo=timezone.utc),
        mn_to_ha_ikey=b"\x01" * 20, ha_to_mn_ikey=b"\x02" * 20,
        mn_to_ha_ekey=b"\x03" * 16, ha_to_mn_ekey=b"\x04" * 16,
        bootstrap=Bootstrap(
            HomeAgent(ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv4Address("192.0.2.1"),
                      7000),
            ipaddress.IPv6Address("2001:db8:1::7"), ipaddress.IPv4Address("198.51.100.7"),
            ipaddress.IPv6Network("2001:db8:1::/64"), ipaddress.IPv4Network("198.51.100.0/24"),
            ipaddress.IPv6Address("2001:db8::53"), ipaddress.IPv4Address("192.0.2.53"),
        ),
    )


def test_psk_exchange():
    init = m.encode(m.MnInit("mn@example.org", RAND_A, (tv.AuthMethod.PSK,)))
    assert init == b"mn-id:mn@example.org\r\nmn-rand:" + b"11" * 32 + b"\r\nauth-method:psk\r\n\r\n"
    got = m.decode_request(init, m.MnInit)
    assert got.message.mn_id == "mn@example.org"

    answer = m.encode(m.HacInit(tv.AuthMethod.PSK, RAND_A, RAND_B), PSK, CB)
    assert answer.startswith(b"mn-rand:" + b"11" * 32 + b"\r\nhac-rand:" + b"22" * 32
                             + b"\r\nauth-method:psk\r\nauth:")
    m.decode_response(answer, (m.HacInit, m.HacError)).verify(PSK, CB)

    done = m.encode(m.MnDone(1, (b"\x00\x2f", b"\x00\x3c"), RAND_A, RAND_B), PSK, CB)
    assert done.startswith(b"mn-rand:" + b"11" * 32 + b"\r\nhac-rand:" + b"22" * 32
                           + b"\r\nmip6-sas:1\r\nmip6-suitelist:{00 2F} {00 3C}\r\nauth:")
    request = m.decode_request(done, (m.MnDone,))
    request.verify(PSK, CB)
    assert request.message.method is tv.AuthMethod.PSK

    final = m.encode(m.HacDone(200, RAND_A, RAND_B, provision=full_provision()), PSK, CB)
    names = [line.partition(b":")[0] for line in final.split(b"\r\n") if line]
    assert names == [
        b"mip6-sas", b"mip6-spi", b"mip6-mn-to-ha-ikey", b"mip6-ha-to-mn-ikey",
        b"mip6-mn-to-ha-ekey", b"mip6-ha-to-mn-ekey", b"mip6-sa-validity-end",
        b"mip6-ciphersuite", b"mip6-haa-ip6", b"mip6-haa-ip4", b"mip6-port", b"mip6-ip6-hoa",
        b"mip6-ip4-hoa", b"mip6-ip6-hnp", b"mip6-ip4-hnp", b"dns-ip6", b"dns-ip4",
        b"mn-rand", b"hac-rand", b"status-code", b"auth",
    ]
    received = m.decode_response(final, (m.HacDone, m.HacError))
    received.verify(PSK, CB)
    assert received.message.provision == full_provision()


def test_eap_exchange_keys_init_and_mid_with_one_and_done_with_the_msk():
    hac_init = m.encode(m.HacInit(tv.AuthMethod.EAP, eap_payload=IDENTITY), EAP_KEY, CB)
    m.decode_response(hac_init, (m.HacInit, m.HacError)).verify(EAP_KEY, CB)
    response = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.IDENTITY, b"anonymous").encode()
    mid = m.decode_request(m.encode(m.MnMid(response), EAP_KEY, CB), (m.MnMid, m.MnDone))
    assert mid.message == m.MnMid(response)
    done = m.decode_request(m.encode(m.MnDone(0, (b"\x00\x3c",), eap_payload=response), MSK, CB),
                            (m.MnMid, m.MnDone))
    assert done.message.method is tv.AuthMethod.EAP
    with pytest.raises(AuthenticatorError):
        done.verify(EAP_KEY, CB)
    done.verify(MSK, CB)
    final = m.HacDone(200, eap_payload=SUCCESS, provision=full_provision())
    after_done = (m.HacMid, m.HacDone, m.HacError)
    assert m.decode_response(m.encode(final, MSK, CB), after_done).message == final


def test_a_new_challenge_may_answer_the_mn_done():
    content = m.encode(m.HacMid(IDENTITY), EAP_KEY, CB)
    received = m.decode_response(content, (m.HacMid, m.HacDone, m.HacError))
    assert received.message == m.HacMid(IDENTITY)


def test_eap_reject_is_a_done_with_the_failure_and_no_sa():
    content = m.encode(m.HacDone(401, eap_payload=FAILURE), MSK, CB)
    assert content.startswith(b"eap-payload:04090004\r\nstatus-code:401\r\nauth:")
    message = m.decode_response(content, (m.HacMid, m.HacDone, m.HacError)).message
    assert message == m.HacDone(401, eap_payload=FAILURE)


def test_error_response_at_any_step():
    error = m.HacError(503, datetime(2030, 1, 1, tzinfo=timezone.utc))
    content = m.encode(error, EAP_KEY, CB)
    assert content.startswith(
        b"status-code:503\r\nretry-after:Tue, 01 Jan 2030 00:00:00 GMT\r\nauth:")
    for expected in ((m.HacInit, m.HacError), (m.HacMid, m.HacDone, m.HacError)):
        assert m.decode_response(content, expected).message == error
    with pytest.raises(MessageError) as caught:
        m.decode_response(content, m.HacInit)
    assert caught.value.reason == "unexpected"


def test_signed_octets_are_what_auth_covers():
    content = m.encode(m.HacMid(IDENTITY), EAP_KEY, CB)
    received = m.decode_response(content, m.HacMid)
    assert received.signed == b"eap-payload:" + IDENTITY.hex().encode() + b"\r\n"
    assert received.auth == authenticator.compute(EAP_KEY, Sender.HAC, received.signed, CB)


def test_label_matters_a_request_does_not_verify_as_a_response():
    content = m.encode(m.MnMid(IDENTITY), EAP_KEY, CB)
    forged = m.decode_response(content, m.HacMid)  # same headers, other direction
    with pytest.raises(AuthenticatorError):
        forged.verify(EAP_KEY, CB)


def test_draft01_and_rfc_forms_do_not_interoperate():
    content = m.encode(m.HacMid(IDENTITY), EAP_KEY, CB, draft01=True)
    received = m.decode_response(content, m.HacMid)
    received.verify(EAP_KEY, CB, draft01=True)
    with pytest.raises(AuthenticatorError):
        received.verify(EAP_KEY, CB)


def test_mn_init_has_no_auth_to_verify_and_others_need_a_key():
    received = m.decode_request(m.encode(m.MnInit("a@b.c", RAND_A, ("eap",))), m.MnInit)
    with pytest.raises(ValueError):
        received.verify(EAP_KEY, CB)
    with pytest.raises(ValueError):
        m.encode(m.MnMid(IDENTITY))


# --- header sets: mandatory, allowed, consistent --------------------------------


def content_of(*lines: bytes, auth: bool = True) -> bytes:
    body = b"".join(line + b"\r\n" for line in lines)
    return body + (b"auth:" + b"00" * 32 + b"\r\n" if auth else b"") + b"\r\n"


MN_RAND_LINE = b"mn-rand:" + b"11" * 32
HAC_RAND_LINE = b"hac-rand:" + b"22" * 32
EAP_LINE = b"eap-payload:" + IDENTITY.hex().encode()


@pytest.mark.parametrize("lines, auth", [
    ((b"mn-id:a@b.c", b"auth-method:psk"), False),  # no mn-rand
    ((b"mn-id:a@b.c", MN_RAND_LINE), False),  # no auth-method
    ((b"mn-id:a@b.c", MN_RAND_LINE, b"auth-method:psk"), True),  # Init carries no auth
    ((b"mn-id:a@b.c", MN_RAND_LINE, b"auth-method:psk", b"mip6-sas:1"), False),
    ((EAP_LINE,), False),  # Mid without auth
    ((EAP_LINE, b"mip6-spi:5"), True),
    ((b"mip6-sas:1", MN_RAND_LINE, HAC_RAND_LINE), True),  # Done without suitelist
    ((b"mip6-suitelist:{00 2F}", MN_RAND_LINE, HAC_RAND_LINE), True),  # without sas
    ((b"mip6-sas:1", b"mip6-suitelist:{00 2F}", MN_RAND_LINE), True),  # one rand
    ((b"mip6-sas:1", b"mip6-suitelist:{00 2F}", MN_RAND_LINE, HAC_RAND_LINE, EAP_LINE), True),
    ((b"mip6-sas:1", b"mip6-suitelist:{00 2F}"), True),  # neither PSK nor EAP
    ((b"eap-payload:01", ), True),  # not a whole EAP packet
    ((b"status-code:200",), True),  # a response header in a request
])
def test_bad_requests(lines, auth):
    with pytest.raises(InvalidInput):
        m.decode_request(content_of(*lines, auth=auth), ALL_REQUESTS)


@pytest.mark.parametrize("lines", [
    (b"auth-method:psk,eap", MN_RAND_LINE, HAC_RAND_LINE),  # HAC must select one
    (b"auth-method:psk", EAP_LINE),  # headers of the other method
    (b"auth-method:eap", MN_RAND_LINE, HAC_RAND_LINE),
    (b"auth-method:psk", MN_RAND_LINE, HAC_RAND_LINE, b"mn-id:a@b.c"),
    (b"status-code:200", MN_RAND_LINE, HAC_RAND_LINE),  # 200 without the SA
    (b"status-code:100", EAP_LINE),  # 100 cannot end an exchange
    (b"status-code:200",),  # an "error" that is not one
    (b"status-code:401", MN_RAND_LINE, HAC_RAND_LINE, b"mip6-spi:5"),  # SA with a failure
    (b"status-code:200", MN_RAND_LINE, HAC_RAND_LINE, b"mip6-sas:1", b"mip6-spi:5"),  # partial SA
    (b"status-code:200", MN_RAND_LINE, HAC_RAND_LINE, b"mip6-sas:1", b"mip6-spi:5",
     b"mip6-mn-to-ha-ikey:01", b"mip6-ha-to-mn-ikey:01", b"mip6-mn-to-ha-ekey:01",
     b"mip6-sa-validity-end:Tue, 01 Jan 2030 00:00:00 GMT", b"mip6-ciphersuite:{00 2F}"),
    (b"status-code:200", MN_RAND_LINE, HAC_RAND_LINE, b"mip6-sas:1", b"mip6-spi:5",
     b"mip6-suitelist:{00 2F}"),
    (EAP_LINE, b"retry-after:Tue, 01 Jan 2030 00:00:00 GMT"),  # Mid with retry-after
])
def test_bad_responses(lines):
    with pytest.raises(MessageError):
        m.decode_response(content_of(*lines), ALL_RESPONSES)


def test_response_without_auth_is_rejected():
    with pytest.raises(MessageError):
        m.decode_response(content_of(b"status-code:400", auth=False), ALL_RESPONSES)


def test_unexpected_request_kind():
    content = m.encode(m.MnMid(IDENTITY), EAP_KEY, CB)
    with pytest.raises(MessageError) as caught:
        m.decode_request(content, m.MnInit)
    assert caught.value.reason == "unexpected"


def test_hac_done_without_bootstrap_and_with_a_null_encryption_suite():
    provision = m.Provision(7, b"\x00\x02", 0, datetime(2030, 1, 1, tzinfo=timezone.utc),
                            b"\x01" * 20, b"\x02" * 20)
    content = m.encode(m.HacDone(200, RAND_A, RAND_B, provision=provision), PSK, CB)
    assert b"ekey" not in content and b"mip6-port" not in content
    assert m.decode_response(content, m.HacDone).message.provision == provision


def test_missing_port_means_the_iana_port():
    content = m.encode(m.HacDone(200, RAND_A, RAND_B, provision=full_provision()), PSK, CB)
    lines = [line for line in content.split(b"\r\n")
             if line and not line.startswith(b"mip6-port")]
    message = m.decode_response(b"\r\n".join(lines) + b"\r\n\r\n", m.HacDone).message
    assert message.provision.bootstrap.home_agent.port == MIPV6TLS_PORT == 7872


def test_messages_refuse_inconsistent_fields_when_built():
    with pytest.raises(MessageError):
        m.HacInit(tv.AuthMethod.EAP, RAND_A, RAND_B)
    with pytest.raises(MessageError):
        m.HacDone(200, RAND_A, RAND_B)
    with pytest.raises(MessageError):
        m.HacError(200)
    with pytest.raises(InvalidInput):
        m.MnMid(b"\x02\x01\x00\x09x")  # EAP length lies


@pytest.mark.parametrize("change", [
    {"mn_to_ha_ikey": b"\x01" * 16}, {"ha_to_mn_ekey": b""}, {"mn_to_ha_ekey": b"\x03" * 24},
    {"suite": b"\x00\x35"},
])
def test_provision_keys_must_fit_the_suite(change):
    fields = {"spi": 1, "suite": b"\x00\x2f", "scope": 1,
              "validity_end": datetime(2030, 1, 1, tzinfo=timezone.utc),
              "mn_to_ha_ikey": b"\x01" * 20, "ha_to_mn_ikey": b"\x02" * 20,
              "mn_to_ha_ekey": b"\x03" * 16, "ha_to_mn_ekey": b"\x04" * 16}
    m.Provision(**fields)
    with pytest.raises(MessageError):
        m.Provision(**{**fields, **change})


# --- converters between HacDone and the SA model ----------------------------------


def test_provision_from_and_to_security_association():
    provision = full_provision()
    sa = provision.security_association("mn@example.org")
    assert sa == SecurityAssociation(
        spi=4242, suite="AES_128_CBC_SHA", mn_to_ha_ikey=b"\x01" * 20, ha_to_mn_ikey=b"\x02" * 20,
        mn_to_ha_ekey=b"\x03" * 16, ha_to_mn_ekey=b"\x04" * 16,
        validity_end=datetime(2030, 1, 1, 12, tzinfo=timezone.utc), scope=1, mn_id="mn@example.org",
        home_address6=ipaddress.IPv6Address("2001:db8:1::7"),
        home_address4=ipaddress.IPv4Address("198.51.100.7"),
    )
    assert m.Provision.from_security_association(sa, provision.bootstrap) == provision


def test_provision_repr_hides_keys():
    text = repr(full_provision())
    assert "spi=4242" in text
    for octet in (b"\x01", b"\x02", b"\x03", b"\x04"):
        assert repr(octet * 16)[2:-1] not in text and (octet * 16).hex() not in text
