"""The SA delivery application's messages: round trips, AVP layout, typed errors only."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone

import pytest
from diameter.message import constants
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.diameter import codec, sa_app
from aaa_mip6.diameter.codec import DiameterError
from aaa_mip6.diameter.sa_app import SaApplication, SaMessage
from aaa_mip6.errors import ConfigError, InvalidInput
from aaa_mip6.sa import SecurityAssociation
from aaa_mip6.suites import SUITES
from hac.config import parse_sa_delivery

APP = SaApplication()
OTHER_VENDOR = SaApplication(vendor_id=99_999, application_id=16_777_300)
HAC, HAC_REALM = "hac.example.org", "example.org"
HA, HA_REALM = "ha1.example.net", "example.net"


def _sa(suite: str = "AES_128_CBC_SHA", **changes) -> SecurityAssociation:
    spec = SUITES[suite]
    values = dict(
        spi=4242, suite=suite, mn_to_ha_ikey=b"\x01" * spec.ikey_length,
        ha_to_mn_ikey=b"\x02" * spec.ikey_length, mn_to_ha_ekey=b"\x03" * spec.ekey_length,
        ha_to_mn_ekey=b"\x04" * spec.ekey_length,
        validity_end=datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc), scope=1,
        mn_id="mn1@example.org", home_address6=ipaddress.IPv6Address("2001:db8:1::7"),
        home_address4=ipaddress.IPv4Address("192.0.2.7"))
    values.update(changes)
    return SecurityAssociation(**values)


def _push(message: SaMessage, app: SaApplication = APP, now: float = 1_900_000_000.0) -> bytes:
    request = app.push_request(f"{HAC};1;2", HAC, HAC_REALM, HA_REALM, HA, message, now)
    return codec.encode_message(request)


def _wire(data: bytes):
    return codec.decode_message(data)


@st.composite
def security_associations(draw) -> SecurityAssociation:
    suite = draw(st.sampled_from(sorted(SUITES)))
    spec = SUITES[suite]
    keys = [draw(st.binary(min_size=size, max_size=size)) for size in
            (spec.ikey_length, spec.ikey_length, spec.ekey_length, spec.ekey_length)]
    moment = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                               timezones=st.just(timezone.utc)))
    return SecurityAssociation(
        spi=draw(st.integers(1, 268_435_455)), suite=suite, mn_to_ha_ikey=keys[0],
        ha_to_mn_ikey=keys[1], mn_to_ha_ekey=keys[2], ha_to_mn_ekey=keys[3],
        validity_end=moment.replace(microsecond=0), scope=draw(st.sampled_from([0, 1])),
        mn_id=draw(st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s)),
        home_address6=draw(st.none() | st.ip_addresses(v=6)),
        home_address4=draw(st.none() | st.ip_addresses(v=4)),
        revoked=draw(st.booleans()))


@given(sa=security_associations(), agents=st.lists(st.ip_addresses(), max_size=2),
       app=st.sampled_from([APP, OTHER_VENDOR]))
def test_push_round_trip(sa, agents, app):
    request = app.decode_request(_wire(_push(SaMessage(sa, tuple(agents)), app)))
    assert request.command == sa_app.SA_PUSH
    assert request.spi == sa.spi and request.origin_host == HAC
    assert request.sa == SaMessage(sa, tuple(agents))


@given(spi=st.integers(1, 268_435_455))
def test_query_and_revoke_round_trip(spi):
    query = APP.decode_request(_wire(codec.encode_message(
        APP.query_request("ha;1;1", HA, HA_REALM, HAC_REALM, None, spi))))
    revoke = APP.decode_request(_wire(codec.encode_message(
        APP.revoke_request("hac;1;1", HAC, HAC_REALM, HA_REALM, HA, spi, "mn@x"))))
    assert (query.command, query.spi, query.sa, query.origin_realm) == (
        sa_app.SA_QUERY, spi, None, HA_REALM)
    assert (revoke.command, revoke.spi, revoke.mn_id) == (sa_app.SA_REVOKE, spi, "mn@x")


def test_push_uses_rfc5778_avps_and_vendor_avps_inside_the_msa():
    message = _wire(_push(SaMessage(_sa(), (ipaddress.ip_address("2001:db8::1"),)),
                          now=_sa().validity_end.timestamp() - 3600))
    assert message.header.command_code == 8_388_800
    assert message.header.application_id == 16_809_689
    assert message.header.is_proxyable
    assert codec.avp_value(message, constants.AVP_USER_NAME) == "mn1@example.org"
    assert codec.as_text(codec.avp_value(message, constants.AVP_DESTINATION_HOST)) == HA
    (msa,) = codec.avp_values(message, constants.AVP_MIP_MN_HA_MSA)
    assert codec.group_values(msa, constants.AVP_MIP_MN_HA_SPI) == [4242]
    assert codec.group_values(msa, constants.AVP_MIP_MSA_LIFETIME) == [3600]
    assert codec.group_values(msa, constants.AVP_MIP_SESSION_KEY) == [
        b"\x01" * 20 + b"\x02" * 20 + b"\x03" * 16 + b"\x04" * 16]
    vendor = {avp.code: avp for avp in msa if avp.vendor_id == 32473}
    assert set(vendor) == {1, 2, 3, 4}
    assert vendor[1].value == b"\x00\x2f" and vendor[2].value == 1 and vendor[4].value == 0
    assert all(avp.is_mandatory for avp in vendor.values())
    addresses = codec.avp_values(message, constants.AVP_MIP_MOBILE_NODE_ADDRESS)
    assert [text for _family, text in addresses] == ["2001:db8:1::7", "192.0.2.7"]


def test_expired_sa_is_sent_with_lifetime_zero():
    sa = _sa()
    message = _wire(_push(SaMessage(sa), now=sa.validity_end.timestamp() + 10))
    (msa,) = codec.avp_values(message, constants.AVP_MIP_MN_HA_MSA)
    assert codec.group_values(msa, constants.AVP_MIP_MSA_LIFETIME) == [0]


def test_null_encryption_suite_carries_integrity_keys_only():
    sa = _sa("NULL_SHA256")
    assert APP.decode_request(_wire(_push(SaMessage(sa)))).sa.sa == sa


def test_vendor_avps_of_another_vendor_are_not_ours():
    with pytest.raises(DiameterError) as caught:
        APP.decode_request(_wire(_push(SaMessage(_sa()), OTHER_VENDOR).replace(
            (16_777_300).to_bytes(4, "big"), APP.application_id.to_bytes(4, "big"))))
    assert caught.value.reason == "missing-avp"


def _answer(command: int, result: int, avps=()) -> bytes:
    request = codec.new_request(command, APP.application_id, [
        codec.new_avp(constants.AVP_SESSION_ID, "s;1")])
    return codec.encode_message(codec.new_answer(request, result, HAC, HAC_REALM,
                                                 APP.application_avps() + list(avps)))


def test_query_answers():
    sa = _sa(revoked=True)
    found = APP.decode_query_answer(_wire(_answer(sa_app.SA_QUERY, codec.SUCCESS,
                                                  APP.sa_avps(SaMessage(sa)))))
    assert found.sa == sa
    assert APP.decode_query_answer(_wire(_answer(sa_app.SA_QUERY, sa_app.USER_UNKNOWN))) is None
    with pytest.raises(DiameterError, match="5012") as caught:
        APP.decode_query_answer(_wire(_answer(sa_app.SA_QUERY, codec.UNABLE_TO_COMPLY)))
    assert caught.value.reason == "unexpected-result"


def test_push_and_revoke_answers():
    APP.check_answer(_wire(_answer(sa_app.SA_PUSH, codec.SUCCESS)), sa_app.SA_PUSH)
    with pytest.raises(DiameterError):
        APP.check_answer(_wire(_answer(sa_app.SA_REVOKE, sa_app.MISSING_AVP)), sa_app.SA_REVOKE)
    with pytest.raises(DiameterError, match="SA-Push"):  # the answer of another command
        APP.check_answer(_wire(_answer(sa_app.SA_QUERY, codec.SUCCESS)), sa_app.SA_PUSH)


def test_request_where_an_answer_is_expected():
    with pytest.raises(DiameterError, match="request where"):
        APP.check_answer(_wire(_push(SaMessage(_sa()))), sa_app.SA_PUSH)


@pytest.mark.parametrize("change, reason", [
    (lambda sa: sa.replace(mn_to_ha_ikey=b"short"), "bad-avp-value"),
    (lambda sa: sa.replace(scope=7), "bad-avp-value"),
    (lambda sa: sa.replace(spi=0), "bad-avp-value"),
    (lambda sa: sa.replace(mn_id=""), "missing-avp"),
])
def test_bad_sa_values_are_typed_errors(change, reason):
    with pytest.raises(DiameterError) as caught:
        APP.decode_request(_wire(_push(SaMessage(change(_sa())))))
    assert caught.value.reason == reason


def test_keys_never_in_errors_or_repr():
    sa = _sa(mn_to_ha_ikey=b"\xaa" * 19)
    with pytest.raises(DiameterError) as caught:
        APP.decode_request(_wire(_push(SaMessage(sa))))
    assert "aaaa" not in str(caught.value).lower() and "\xaa" not in str(caught.value)
    assert "\\xaa" not in repr(SaMessage(sa))


def test_numbers_are_checked():
    with pytest.raises(ValueError):
        SaApplication(vendor_id=0)
    with pytest.raises(ValueError):
        SaApplication(application_id=codec.RELAY_APPLICATION_ID)
    assert APP.vendor_application == (32473, 16_809_689)


def _parse_any(data: bytes) -> None:
    message = codec.decode_message(data)
    if message.header.is_request:
        APP.decode_request(message)
    else:
        for command in sa_app.COMMAND_NAMES:
            try:
                APP.check_answer(message, command)
                APP.decode_query_answer(message)
            except DiameterError:
                pass


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_the_typed_error(data):
    try:
        _parse_any(data)
    except InvalidInput:
        pass


@given(st.data())
def test_mutated_messages_raise_only_the_typed_error(data):
    wire = bytearray(_push(SaMessage(_sa(), (ipaddress.ip_address("192.0.2.1"),))))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(codec.HEADER_LENGTH, len(wire) - 1))
        wire[position] = data.draw(st.integers(0, 255))
    try:
        _parse_any(bytes(wire))
    except InvalidInput:
        pass


# --- settings ---------------------------------------------------------------------------

NODE = {"origin_host": "hac.example.org", "origin_realm": "example.org",
        "destination_realm": "example.net", "peers": ["ha1.example.net=192.0.2.1:5658"],
        "ca": "/ca.pem", "cert": "/hac.pem", "key": "/hac.key"}


def test_node_settings():
    settings = sa_app.node_settings({**NODE, "listen": "[::1]:5658", "watchdog": 6,
                                     "vendor_id": 99_999})
    assert settings.peers == (("ha1.example.net", "192.0.2.1", 5658),)
    assert settings.listen == ("::1", 5658)
    assert settings.watchdog == 6.0 and not settings.insecure_tcp
    assert settings.application == SaApplication(99_999, sa_app.DEFAULT_APPLICATION_ID)


@pytest.mark.parametrize("change, message", [
    ({"origin_host": None}, "diameter.origin_host: required"),
    ({"surprise": 1}, "diameter.surprise: unknown setting"),
    ({"peers": ["ha1.example.net@192.0.2.1:5658"]}, "diameter.peers: .* is not"),
    ({"peers": ["ha=host.example:1"]}, "diameter.peers: .* is not an IP address"),
    ({"peers": ["ha=192.0.2.1"]}, "diameter.peers: .* is not NAME=ADDRESS:PORT"),
    ({"peers": [], "listen": None}, "diameter.peers: give peers"),
    ({"listen": "192.0.2.1:99999"}, "diameter.listen: .* 0..65535"),
    ({"cert": None}, "diameter.cert: cert, key and ca are required"),
    ({"insecure_tcp": "yes"}, "diameter.insecure_tcp: must be true or false"),
    ({"watchdog": 5}, "diameter.watchdog: .* 6..86400"),
    ({"vendor_id": 0}, "diameter.vendor_id: must be an integer"),
    ({"origin_realm": "two words"}, "diameter.origin_realm: .* is not a DiameterIdentity"),
    ({"peers": ["ha_1=192.0.2.1:5658"]}, "diameter.peers: .* is not a DiameterIdentity"),
])
def test_node_settings_errors_name_the_key(change, message):
    table = {key: value for key, value in {**NODE, **change}.items() if value is not None}
    with pytest.raises(ConfigError, match=message):
        sa_app.node_settings(table, "diameter")


def test_plain_tcp_needs_no_credentials():
    table = {key: value for key, value in NODE.items() if key not in ("ca", "cert", "key")}
    assert sa_app.node_settings({**table, "insecure_tcp": True}).insecure_tcp


def test_delivery_settings_and_their_errors():
    settings = parse_sa_delivery({**NODE, "home_agents": {"2001:db8::1": "ha1.example.net"},
                               "control_socket": "/run/hac.sock", "retry_max": 5})
    assert settings.home_agents == {ipaddress.ip_address("2001:db8::1"): "ha1.example.net"}
    assert settings.retry_max == 5.0 and settings.retry_initial == 1.0
    for change, message in (({"home_agents": {}}, "home_agents: a table"),
                            ({"home_agents": {"ha1": "x"}}, "'ha1' is not an IP"),
                            ({"control_socket": "hac.sock"}, "control_socket: must be an absolute"),
                            ({"retry_initial": 9, "retry_max": 5}, "retry_max must be at least"),
                            ({"origin_host": 3}, "origin_host: must be")):
        table = {**NODE, "home_agents": {"2001:db8::1": "ha"}, **change}
        with pytest.raises(ConfigError, match=message):
            parse_sa_delivery(table)


def test_hac_and_ha_configuration_take_the_tables():
    from ha.config import load_config as ha_config
    from hac.config import load_config as hac_config

    ha = ha_config(None, {"listen": ["[2001:db8::1]:7872"], "state": "/tmp/ha.state",
                    "diameter": {**NODE, "destination_realm": "example.org"}})
    assert ha.store is None and ha.diameter.origin_host == "hac.example.org"
    with pytest.raises(ConfigError, match=r"store \(--store\): required"):
        ha_config(None, {"listen": ["[2001:db8::1]:7872"], "state": "/tmp/ha.state"})
    with pytest.raises(ConfigError, match="diameter.peers"):
        ha_config(None, {"listen": ["[2001:db8::1]:7872"], "diameter": {**NODE, "peers": "x"}})
    base = {"listen": "127.0.0.1:7443", "tls.cert": "/c", "tls.key": "/k",
            "credentials.psk_file": "/p", "store.url": "sqlite:////tmp/sa.db",
            "home_agents.addresses": ["2001:db8::1"], "bootstrap.hoa_prefix": "2001:db8:1::/64"}
    config = hac_config(None, {**base, "sa_delivery": {
        **NODE, "home_agents": {"2001:db8::1": "ha1.example.net"}}})
    assert config.sa_delivery.home_agents == {
        ipaddress.ip_address("2001:db8::1"): "ha1.example.net"}
    with pytest.raises(ConfigError, match="sa_delivery: home_agents"):
        hac_config(None, {**base, "sa_delivery": NODE})
    workers = hac_config(None, {**base, "workers": "2", "sa_delivery": {
        **NODE, "home_agents": {"2001:db8::1": "ha1.example.net"}, "poll_interval": 0.25}})
    assert workers.workers == 2 and workers.sa_delivery.poll_interval == 0.25  # the outbox
    with pytest.raises(ConfigError, match="poll_interval"):
        hac_config(None, {**base, "sa_delivery": {
            **NODE, "home_agents": {"2001:db8::1": "ha1.example.net"}, "poll_interval": 0}})


# --- the HA's source against a stand-in node -----------------------------------------------


class FakeNode:
    """What DiameterSASource uses of a DiameterNode: handlers, answers, requests."""

    def __init__(self):
        from aaa_mip6.diameter.peer import LocalNode
        self.local = LocalNode(HA, HA_REALM)
        self.handlers = {}
        self.sent = []

    def register_handler(self, application_id, command, handler):
        self.handlers[command] = handler

    def answer(self, request, result, avps=(), **kwargs):
        return codec.new_answer(request, result, HA, HA_REALM, list(avps), **kwargs)

    def send_request(self, request):
        from twisted.internet import defer
        self.sent.append((request, defer.Deferred()))
        return self.sent[-1][1]


def _source():
    from ha.diameter_source import DiameterSASource
    node = FakeNode()
    settings = sa_app.NodeSettings(HA, HA_REALM, HAC_REALM, insecure_tcp=True,
                                   listen=("127.0.0.1", 1))
    source = DiameterSASource(node, settings, home_agents=(ipaddress.ip_address("2001:db8::1"),))
    changes = []
    source.on_change = changes.append
    return source, node, changes


def test_source_keeps_pushes_and_refuses_bad_or_foreign_ones():
    source, node, changes = _source()
    push = node.handlers[sa_app.SA_PUSH]
    ours = SaMessage(_sa(), (ipaddress.ip_address("2001:db8::1"),))
    assert codec.result_code(push(_wire(_push(ours)))) == codec.SUCCESS
    assert changes == [ours.sa] and source.lookup(ours.sa.spi) == ours.sa and not node.sent
    foreign = SaMessage(_sa(spi=7), (ipaddress.ip_address("2001:db8::9"),))
    assert codec.result_code(push(_wire(_push(foreign)))) == codec.UNABLE_TO_COMPLY
    broken = _wire(_push(SaMessage(_sa(scope=5))))
    assert codec.result_code(push(broken)) == codec.INVALID_AVP_VALUE
    assert source.counters["push-not-ours"] == 1 and source.counters["push-malformed"] == 1
    revoke = node.handlers[sa_app.SA_REVOKE]
    request = APP.revoke_request("s;1", HAC, HAC_REALM, HA_REALM, HA, ours.sa.spi, "mn")
    assert codec.result_code(revoke(_wire(codec.encode_message(request)))) == codec.SUCCESS
    assert changes[-1] == ours.sa.replace(revoked=True)


def test_source_queries_once_per_spi_and_a_failed_query_fails_the_lookups():
    from aaa_mip6.diameter.router import RequestTimedOut
    from twisted.python.failure import Failure
    source, node, _changes = _source()
    results = []
    for _ in range(2):
        source.lookup(99).addCallbacks(results.append, lambda failure: results.append(
            failure.check(RequestTimedOut)))
    assert len(node.sent) == 1  # one query for both lookups
    request, answer = node.sent[0]
    assert APP.decode_request(request).spi == 99
    answer.errback(Failure(RequestTimedOut("no answer")))
    # a failure, not None: the HA must not take an outage for "the HAC has no such SA"
    assert results == [RequestTimedOut, RequestTimedOut]
    assert source.counters["query-failed"] == 1
    results.clear()
    source.lookup(4242).addCallback(results.append)
    request, answer = node.sent[1]
    answer.callback(_wire(_answer(sa_app.SA_QUERY, codec.SUCCESS, APP.sa_avps(SaMessage(_sa())))))
    assert results[-1] == _sa() and source.lookup(4242) == _sa()


def test_queried_sas_past_their_validity_end_are_swept_too():
    from ha.diameter_source import EXPIRED_SWEEP_EVERY
    source, node, _changes = _source()
    expired = datetime(2020, 1, 1, tzinfo=timezone.utc)
    for spi in range(1, EXPIRED_SWEEP_EVERY + 1):
        source.lookup(spi)
        node.sent[-1][1].callback(_wire(_answer(sa_app.SA_QUERY, codec.SUCCESS, APP.sa_avps(
            SaMessage(_sa(spi=spi, validity_end=expired))))))
    assert source.counters["query-found"] == EXPIRED_SWEEP_EVERY
    sent = len(node.sent)
    source.lookup(1)  # forgotten: asked again
    assert len(node.sent) == sent + 1
