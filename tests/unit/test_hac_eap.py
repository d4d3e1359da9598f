"""hac.core EAP flow (RFC 6618 §5.9, spec notes §4): AAA round trips, the continue rule,
MSK-keyed Done, status mapping, and the provisioning of AAA bootstrap attributes."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import container, eap
from aaa_mip6 import messages as m
from aaa_mip6.aaa import Accept, AaaError, AaaTimeout, AaaUnavailable, Challenge, Reject
from aaa_mip6 import tvheaders as tv
from aaa_mip6.authenticator import EAP_KEY, Sender, compute
from aaa_mip6.errors import AaaLimitError
from aaa_mip6.sa import Bootstrap, HomeAgent
from aaa_mip6.store.sqlite import SQLiteStore
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod
from hac.actions import AskAaa, Close, Failed, ProvisionSA, Send, Succeeded
from hac.core import HacSession, Phase, SessionSettings
from hac.provisioning import BootstrapPolicy, Provisioner, SaPolicy

MN_ID = "alice@example.org"
ANONYMOUS = "anonymous@example.org"
CB = hashlib.sha256(b"the HAC's certificate").digest()
MN_RAND = b"\x11" * 32
EAP_ID = 0x22  # the HAC's EAP Identifier: the first octet of its "random"
AES = SUITES["AES_128_CBC_SHA"]
MSK64 = bytes(range(64))
MSK32 = bytes(range(100, 132))  # EAP-MSCHAPv2 over RADIUS: MPPE 16 + 16
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def request(identifier: int, data: bytes = b"", type_=eap.Type.MD5_CHALLENGE) -> bytes:
    return eap.EapPacket(eap.Code.REQUEST, identifier, type_, data).encode()


def response(identifier: int, data: bytes = b"r", type_=eap.Type.MD5_CHALLENGE) -> bytes:
    return eap.EapPacket(eap.Code.RESPONSE, identifier, type_, data).encode()


SUCCESS = eap.EapPacket(eap.Code.SUCCESS, 7).encode()
FAILURE = eap.EapPacket(eap.Code.FAILURE, 7).encode()
IDENTITY = eap.EapPacket(eap.Code.RESPONSE, EAP_ID, eap.Type.IDENTITY, MN_ID.encode()).encode()


def settings(**changes) -> SessionSettings:
    values = dict(psk_lookup=lambda _: None, server_secret=b"s" * 32, channel_binding=CB,
                  choose_suite=SaPolicy().choose_suite, random=lambda size: b"\x22" * size,
                  methods=(AuthMethod.EAP, AuthMethod.PSK), now=lambda: NOW)
    values.update(changes)
    return SessionSettings(**values)


def frame(identifier: int, message, key: bytes | None = EAP_KEY) -> bytes:
    return container.encode(identifier, m.encode(message, key, CB if key else None))


def init(methods=(AuthMethod.EAP,)) -> bytes:
    return frame(1, m.MnInit(MN_ID, MN_RAND, methods), None)


def mid(identifier: int, payload: bytes) -> bytes:
    return frame(identifier, m.MnMid(payload))


def done(identifier: int, payload: bytes, key: bytes = EAP_KEY, suites=(AES.code,)) -> bytes:
    return frame(identifier, m.MnDone(1, suites, eap_payload=payload), key)


def reply(actions, expected, key: bytes | None = EAP_KEY):
    """(identifier, message) of the one Send; its auth verified with ``key``."""
    (data,) = [action.data for action in actions if isinstance(action, Send)]
    (framed,) = container.Deframer().feed(data)
    received = m.decode_response(framed.content, expected)
    if key is not None:
        received.verify(key, CB)
    return framed.identifier, received.message


def provision(spi: int = 77) -> m.Provision:
    return m.Provision(spi, AES.code, 1, NOW + timedelta(days=1), b"\x01" * 20, b"\x02" * 20,
                       b"\x03" * 16, b"\x04" * 16, Bootstrap(HomeAgent(None, None, 7872)))


def at_done(session: HacSession, key: bytes = EAP_KEY) -> list:
    """Figure 5 up to the MN's Done: Init, Mid (identity), challenge, Done; the AskAaa."""
    session.data_received(init())
    assert session.data_received(mid(2, IDENTITY)) == [AskAaa(MN_ID, IDENTITY)]
    session.aaa_answered(Challenge(request(3, b"challenge")))
    return session.data_received(done(3, response(3), key))


# --- the flows -----------------------------------------------------------------


def test_figure5_flow_with_msk_keyed_done_provisions_the_aaa_attributes():
    session = HacSession(settings())
    identifier, hac_init = reply(session.data_received(init()), m.HacInit)
    assert (identifier, hac_init.auth_method) == (1, AuthMethod.EAP)
    assert eap.decode(hac_init.eap_payload) == eap.EapPacket(eap.Code.REQUEST, EAP_ID,
                                                              eap.Type.IDENTITY)
    assert session.phase is Phase.EAP

    assert session.data_received(mid(2, IDENTITY)) == [AskAaa(MN_ID, IDENTITY)]
    assert session.phase is Phase.AAA
    identifier, hac_mid = reply(session.aaa_answered(Challenge(request(3, b"c"))), m.HacMid)
    assert (identifier, hac_mid.eap_payload) == (2, request(3, b"c"))

    assert session.data_received(done(3, response(3), MSK64)) == [AskAaa(MN_ID, response(3))]
    attributes = {"home_address_ip6": ipaddress.IPv6Address("2001:db8:1::10")}
    actions = session.aaa_answered(Accept(SUCCESS, MSK64, attributes))
    assert actions == [ProvisionSA(MN_ID, AES, 1, attributes)]

    actions = session.provisioned(provision())
    identifier, hac_done = reply(actions, m.HacDone, MSK64)
    assert (identifier, hac_done.status, hac_done.eap_payload) == (3, 200, SUCCESS)
    assert hac_done.provision == provision()
    assert actions[1:] == [Succeeded(77, "AES_128_CBC_SHA"), Close()]


def test_anonymous_outer_identity_is_the_aaa_user_name():
    session = HacSession(settings())
    session.data_received(init())
    outer = eap.EapPacket(eap.Code.RESPONSE, EAP_ID, eap.Type.IDENTITY, ANONYMOUS.encode())
    assert session.data_received(mid(2, outer.encode())) == [AskAaa(ANONYMOUS, outer.encode())]
    session.aaa_answered(Challenge(request(3)))
    assert session.data_received(mid(3, response(3))) == [AskAaa(ANONYMOUS, response(3))]


def test_identity_from_mn_id_asks_the_aaa_at_once_and_inits_with_its_challenge():
    session = HacSession(settings(eap_identity_from_mn_id=True))
    assert session.data_received(init()) == [AskAaa(MN_ID, IDENTITY)]
    identifier, hac_init = reply(session.aaa_answered(Challenge(request(5))), m.HacInit)
    assert (identifier, hac_init.eap_payload) == (1, request(5))
    assert session.data_received(done(2, response(5))) == [AskAaa(MN_ID, response(5))]
    assert session.aaa_answered(Accept(SUCCESS, None)) == [ProvisionSA(MN_ID, AES, 1, {})]


@pytest.mark.parametrize("msk", [None, MSK32, MSK64], ids=["no-msk", "msk32", "msk64"])
def test_done_auth_is_keyed_with_the_msk_the_aaa_gave_else_1(msk):
    session = HacSession(settings())
    at_done(session, msk or EAP_KEY)
    assert session.aaa_answered(Accept(SUCCESS, msk)) == [ProvisionSA(MN_ID, AES, 1, {})]
    reply(session.provisioned(provision()), m.HacDone, msk or EAP_KEY)


@pytest.mark.parametrize("mn_key, aaa_msk", [(EAP_KEY, MSK64), (MSK64, None), (MSK32, MSK64)])
def test_done_with_another_key_than_the_aaa_msk_gets_401_and_eap_failure(mn_key, aaa_msk):
    session = HacSession(settings())
    at_done(session, mn_key)
    actions = session.aaa_answered(Accept(SUCCESS, aaa_msk))
    _, hac_done = reply(actions, m.HacDone, EAP_KEY)
    assert hac_done.status == 401 and hac_done.provision is None
    assert eap.decode(hac_done.eap_payload) == eap.EapPacket(eap.Code.FAILURE, 7)
    assert actions[1].status == 401 and isinstance(actions[-1], Close)


def test_continue_rule_a_challenge_to_done_gets_a_mid_then_done_again():
    session = HacSession(settings())
    at_done(session, MSK64)
    identifier, hac_mid = reply(session.aaa_answered(Challenge(request(4, b"ticket"))),
                                m.HacMid)
    assert (identifier, hac_mid.eap_payload) == (3, request(4, b"ticket"))
    assert session.phase is Phase.EAP
    assert session.data_received(done(4, response(4, b""), MSK64)) == [
        AskAaa(MN_ID, response(4, b""))]
    assert session.aaa_answered(Accept(SUCCESS, MSK64)) == [ProvisionSA(MN_ID, AES, 1, {})]


def test_mid_after_a_mid_answer_goes_on_and_many_rounds_are_fine():
    session = HacSession(settings())
    session.data_received(init())
    session.data_received(mid(2, IDENTITY))
    for identifier in range(3, 30):
        reply(session.aaa_answered(Challenge(request(identifier))), m.HacMid)
        assert session.data_received(mid(identifier, response(identifier))) == [
            AskAaa(MN_ID, response(identifier))]


# --- refusals and status codes -------------------------------------------------------


def assert_error(actions, status: int, identifier: int):
    got, error = reply(actions, m.HacError)
    assert (got, error.status) == (identifier, status)
    assert [type(action) for action in actions] == [Send, Failed, Close]
    assert actions[1].status == status
    return error


def test_reject_to_done_gets_done_401_with_the_aaa_eap_failure():
    session = HacSession(settings())
    at_done(session, MSK64)
    actions = session.aaa_answered(Reject(FAILURE))
    identifier, hac_done = reply(actions, m.HacDone)
    assert (identifier, hac_done.status, hac_done.eap_payload) == (3, 401, FAILURE)
    assert actions[1:] == [Failed(401, "the AAA rejected the MN: EAP-Failure"), Close()]
    assert session.phase is Phase.CLOSED


def test_reject_logs_what_the_aaa_said_and_sends_the_mn_only_the_eap_failure():
    session = HacSession(settings())
    at_done(session, MSK64)
    actions = session.aaa_answered(Reject(FAILURE, 'pap: password does not match\n"x"'))
    _, hac_done = reply(actions, m.HacDone)
    assert (hac_done.status, hac_done.eap_payload) == (401, FAILURE)
    assert actions[1] == Failed(
        401, "the AAA rejected the MN: Reply-Message 'pap: password does not match\\n\"x\"', "
             "EAP-Failure")
    assert b"pap" not in actions[0].data


def test_reject_to_mid_also_ends_with_done_401():
    session = HacSession(settings())
    session.data_received(init())
    session.data_received(mid(2, IDENTITY))
    _, hac_done = reply(session.aaa_answered(Reject(FAILURE)), m.HacDone)
    assert hac_done.status == 401


def test_reject_without_eap_failure_or_at_init_is_an_error_401():
    session = HacSession(settings())
    at_done(session)
    assert_error(session.aaa_answered(Reject(None)), 401, 3)
    session = HacSession(settings(eap_identity_from_mn_id=True))
    session.data_received(init())
    assert_error(session.aaa_answered(Reject(FAILURE)), 401, 1)


def test_aaa_timeout_is_504():
    session = HacSession(settings())
    at_done(session)
    assert_error(session.aaa_failed(AaaTimeout("no answer")), 504, 3)


def test_aaa_unavailable_is_503_with_retry_after_now_plus_its_delay():
    session = HacSession(settings())
    session.data_received(init())
    session.data_received(mid(2, IDENTITY))
    error = assert_error(session.aaa_failed(AaaUnavailable("down", retry_after=30)), 503, 2)
    assert error.retry_after == NOW + timedelta(seconds=30)


@pytest.mark.parametrize("error", [AaaError("odd"), RuntimeError("bug")])
def test_other_aaa_failures_are_500(error):
    session = HacSession(settings())
    at_done(session)
    assert_error(session.aaa_failed(error), 500, 3)


def test_accept_before_the_mns_done_is_400():
    session = HacSession(settings())
    session.data_received(init())
    session.data_received(mid(2, IDENTITY))
    assert_error(session.aaa_answered(Accept(SUCCESS, MSK64)), 400, 2)


def test_provisioning_failure_after_accept_is_done_500_with_eap_failure():
    session = HacSession(settings())
    at_done(session, MSK64)
    session.aaa_answered(Accept(SUCCESS, MSK64))
    actions = session.provisioning_failed(500, "store: down")
    _, hac_done = reply(actions, m.HacDone, EAP_KEY)
    assert hac_done.status == 500
    assert eap.decode(hac_done.eap_payload).code is eap.Code.FAILURE


def signed(identifier: int, lines: bytes) -> bytes:
    """A request of these header lines with a valid ``auth`` (key ``1``), however odd."""
    auth = compute(EAP_KEY, Sender.MN, lines, CB)
    return container.encode(identifier, tv.seal(lines, auth))


def eap_payload_line(payload: bytes) -> bytes:
    return b"eap-payload:" + payload.hex().encode() + b"\r\n"


DONE_LINES = b"mip6-sas:1\r\nmip6-suitelist:{00 2F}\r\n"
LONG_IDENTITY = eap.EapPacket(eap.Code.RESPONSE, EAP_ID, eap.Type.IDENTITY,
                              b"u" * 242 + b"@example.org").encode()  # 254 octets
MALFORMED_IN_EAP = {
    "garbage": lambda n: container.encode(n, b"garbage\r\n\r\n"),
    "no end-of-message": lambda n: container.encode(n, eap_payload_line(IDENTITY)),
    "Init again": lambda n: frame(n, m.MnInit(MN_ID, MN_RAND, (AuthMethod.EAP,)), None),
    "unknown header": lambda n: signed(n, eap_payload_line(IDENTITY) + b"x-extra:1\r\n"),
    "bad hex": lambda n: signed(n, b"eap-payload:0z\r\n"),
    "repeated header": lambda n: signed(n, eap_payload_line(IDENTITY) * 2),
    "Mid without auth": lambda n: container.encode(n, eap_payload_line(IDENTITY) + b"\r\n"),
    "Mid with rands": lambda n: signed(n, b"mn-rand:" + MN_RAND.hex().encode() + b"\r\n"
                                       + eap_payload_line(IDENTITY)),
    "Done without suitelist": lambda n: signed(n, b"mip6-sas:1\r\n"
                                               + eap_payload_line(response(3))),
    "Done without eap-payload or rands": lambda n: signed(n, DONE_LINES),
    "EAP Length over the packet": lambda n: signed(n, eap_payload_line(b"\x02\x05\x00\x09\x01ab")),
    "EAP Length under the packet": lambda n: signed(n, eap_payload_line(IDENTITY[:3] + b"\x05"
                                                                        + IDENTITY[4:])),
    "EAP shorter than its header": lambda n: signed(n, eap_payload_line(b"\x02\x05")),
    "unknown EAP code": lambda n: signed(n, eap_payload_line(b"\x05\x05\x00\x04")),
    "Response without a Type": lambda n: signed(n, eap_payload_line(b"\x02\x05\x00\x04")),
    "Done with an EAP Length mismatch": lambda n: signed(
        n, DONE_LINES + eap_payload_line(b"\x02\x05\x00\x06\x04")),
    "EAP Request from the MN": lambda n: mid(n, request(5)),
    "EAP Success from the MN": lambda n: mid(n, SUCCESS),
    "EAP Failure in a Done": lambda n: done(n, FAILURE),
    "identity over 253 octets": lambda n: mid(n, LONG_IDENTITY),
    "identity not UTF-8": lambda n: mid(n, eap.EapPacket(eap.Code.RESPONSE, EAP_ID,
                                                         eap.Type.IDENTITY, b"\xff").encode()),
}


@pytest.mark.parametrize("make", MALFORMED_IN_EAP.values(), ids=MALFORMED_IN_EAP.keys())
def test_every_malformed_second_request_is_400_then_close_before_any_aaa_round(make):
    session = HacSession(settings())
    session.data_received(init())
    actions = session.data_received(make(2))
    assert_error(actions, 400, 2)
    assert not any(isinstance(action, AskAaa) for action in actions)
    assert session.phase is Phase.CLOSED


@pytest.mark.parametrize("make", [make for name, make in MALFORMED_IN_EAP.items()
                                  if not name.startswith("identity")],
                         ids=[name for name in MALFORMED_IN_EAP if not name.startswith("identity")])
def test_every_malformed_third_request_is_400_then_close(make):
    session = HacSession(settings())
    session.data_received(init())
    session.data_received(mid(2, IDENTITY))
    session.aaa_answered(Challenge(request(3)))
    assert_error(session.data_received(make(3)), 400, 3)


@given(content=st.binary(min_size=1, max_size=300), later=st.booleans())
def test_arbitrary_content_in_the_eap_phase_is_an_error_response_and_close(content, later):
    session = HacSession(settings())
    session.data_received(init())
    if later:
        session.data_received(mid(2, IDENTITY))
        session.aaa_answered(Challenge(request(3)))
    identifier = 3 if later else 2
    actions = session.data_received(container.encode(identifier, content))
    _, error = reply(actions, m.HacError)
    assert error.status in (400, 401) and isinstance(actions[-1], Close)


def test_a_253_octet_identity_is_the_user_name():
    identity = b"u" * 241 + b"@example.org"
    packet = eap.EapPacket(eap.Code.RESPONSE, EAP_ID, eap.Type.IDENTITY, identity).encode()
    session = HacSession(settings())
    session.data_received(init())
    assert session.data_received(mid(2, packet)) == [AskAaa(identity.decode(), packet)]


def test_an_eap_packet_over_an_aaa_limit_is_400():
    session = HacSession(settings())
    at_done(session)
    error = AaaLimitError("Access-Request of 4100 octets exceeds 4096")
    assert_error(session.aaa_failed(error), 400, 3)


def test_mid_with_a_bad_auth_is_401():
    session = HacSession(settings())
    session.data_received(init())
    assert_error(session.data_received(frame(2, m.MnMid(IDENTITY), b"2")), 401, 2)


def test_done_with_no_allowed_suite_is_501_before_any_aaa_round():
    session = HacSession(settings(choose_suite=lambda _: None))
    session.data_received(init())
    assert_error(session.data_received(done(2, IDENTITY)), 501, 2)


def test_psk_done_in_an_eap_session_is_400():
    session = HacSession(settings())
    session.data_received(init())
    psk_done = frame(2, m.MnDone(1, (AES.code,), MN_RAND, b"\x22" * 32))
    assert_error(session.data_received(psk_done), 400, 2)


def test_request_while_the_aaa_works_is_400():
    session = HacSession(settings())
    session.data_received(init())
    session.data_received(mid(2, IDENTITY))
    assert_error(session.data_received(mid(3, response(3))), 400, 3)


# --- method negotiation -----------------------------------------------------------------


@pytest.mark.parametrize("hac, mn, chosen", [
    ((AuthMethod.EAP, AuthMethod.PSK), (AuthMethod.PSK, AuthMethod.EAP), AuthMethod.EAP),
    ((AuthMethod.PSK, AuthMethod.EAP), (AuthMethod.EAP, AuthMethod.PSK), AuthMethod.PSK),
    ((AuthMethod.PSK, AuthMethod.EAP), (AuthMethod.EAP,), AuthMethod.EAP),
])
def test_the_hacs_preference_picks_among_the_mns_methods(hac, mn, chosen):
    session = HacSession(settings(methods=hac, psk_lookup=lambda _: b"k" * 16))
    actions = session.data_received(init(mn))
    key = EAP_KEY if chosen is AuthMethod.EAP else b"k" * 16
    assert reply(actions, m.HacInit, key)[1].auth_method is chosen


def test_no_method_in_common_is_501():
    session = HacSession(settings(methods=(AuthMethod.PSK,)))
    assert_error(session.data_received(init((AuthMethod.EAP,))), 501, 1)


def test_settings_need_a_method():
    with pytest.raises(ValueError):
        settings(methods=())


# --- the 256th exchange and what stays after the end ------------------------------------


def test_the_256th_exchange_is_refused_with_400():
    session = HacSession(settings())
    session.data_received(init())
    session.data_received(mid(2, IDENTITY))
    for identifier in range(3, 256):  # exchanges 3..255, each answered by a challenge
        reply(session.aaa_answered(Challenge(request(identifier % 256))), m.HacMid)
        assert session.data_received(mid(identifier, response(identifier % 256)))
    reply(session.aaa_answered(Challenge(request(0))), m.HacMid)
    actions = session.data_received(mid(1, response(0)))  # the Identifier can only wrap
    assert_error(actions, 400, 1)
    assert "255 exchanges" in actions[1].reason


def test_after_the_end_every_event_is_ignored_and_no_msk_is_kept():
    session = HacSession(settings())
    at_done(session, MSK64)
    session.aaa_answered(Accept(SUCCESS, MSK64))
    session.provisioned(provision())
    assert session.phase is Phase.CLOSED
    assert session.aaa_answered(Challenge(request(9))) == []
    assert session.aaa_failed(AaaTimeout("late")) == []
    assert session.provisioned(provision()) == []
    assert session.data_received(mid(4, response(9))) == []
    assert session._key == EAP_KEY and session._mn_done is None  # no MSK kept after the end


def test_answers_out_of_phase_are_ignored():
    session = HacSession(settings())
    session.data_received(init())
    assert session.aaa_answered(Challenge(request(3))) == []
    assert session.aaa_failed(AaaTimeout("x")) == []
    assert session.phase is Phase.EAP


# --- AAA-driven bootstrap in the provisioner -----------------------------------------------


@pytest.fixture
def provisioner(tmp_path):
    store = SQLiteStore(tmp_path / "sa.db")
    agents = (HomeAgent(ipaddress.IPv6Address("2001:db8::1"), None, 7000),
              HomeAgent(ipaddress.IPv6Address("2001:db8::2"), None, 7001))
    policy = BootstrapPolicy(agents, ipaddress.IPv6Network("2001:db8:1::/64"),
                             dns6=ipaddress.IPv6Address("2001:db8::53"))
    yield Provisioner(store, SaPolicy(lifetime=3600), policy, hac_instance="t", now=lambda: NOW)
    store.close()


def test_without_attributes_local_policy_applies(provisioner):
    result = provisioner.provision(MN_ID, AES, 1, {})
    assert result.bootstrap.home_address6 in ipaddress.IPv6Network("2001:db8:1::/64")
    assert result.validity_end == NOW + timedelta(seconds=3600)
    assert result.bootstrap.dns6 == ipaddress.IPv6Address("2001:db8::53")


def test_aaa_attributes_override_local_policy(provisioner):
    attributes = {
        "home_address_ip6": ipaddress.IPv6Address("2001:db8:9::10"),
        "home_address_ip4": ipaddress.IPv4Address("192.0.2.10"),
        "home_link_prefix": ipaddress.IPv6Network("2001:db8:9::/64"),
        "home_agent_ip6": ipaddress.IPv6Address("2001:db8::2"),
        "dns_ip6": ipaddress.IPv6Address("2001:db8:9::53"),
        "session_timeout": 600,
    }
    result = provisioner.provision(MN_ID, AES, 1, attributes)
    bootstrap = result.bootstrap
    assert bootstrap.home_address6 == attributes["home_address_ip6"]
    assert bootstrap.home_address4 == attributes["home_address_ip4"]
    assert bootstrap.home_prefix6 == attributes["home_link_prefix"]
    assert bootstrap.home_agent == HomeAgent(attributes["home_agent_ip6"], None, 7001)
    assert bootstrap.dns6 == attributes["dns_ip6"]
    assert result.validity_end == NOW + timedelta(seconds=600)
    stored = provisioner.store.get(result.spi)
    assert stored.sa.home_address6 == attributes["home_address_ip6"]


def test_aaa_prefix_alone_allocates_from_it_and_unknown_ha_takes_the_first_port(provisioner):
    attributes = {"home_link_prefix": ipaddress.IPv6Network("2001:db8:7::/64"),
                  "home_agent_ip6": ipaddress.IPv6Address("2001:db8::99"),
                  "session_timeout": 10 ** 9}
    result = provisioner.provision(MN_ID, AES, 1, attributes)
    assert result.bootstrap.home_address6 in attributes["home_link_prefix"]
    assert result.bootstrap.home_agent.port == 7000
    assert result.validity_end == NOW + timedelta(seconds=3600)  # a cap, never an extension
