"""mip6-aaa-gw: DER -> upstream AaaBackend -> DEA, State both ways, retransmissions, CLI checks."""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

import pytest
from diameter.message import constants
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

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
from aaa_mip6.errors import ConfigError
from aaa_mip6.twisted.diameter_eap import DiameterEapBackend
from gateway.cli import EXIT_CONFIG, main, prepare, start
from gateway.config import SETTINGS, load_config, read_toml
from gateway.relay import EapGateway, parse_calling_station_id
from tests.unit.test_diameter_eap import (
    AAA_HOST,
    AAA_REALM,
    FAILURE,
    HAC_HOST,
    HAC_REALM,
    IDENTITY,
    MD5_REQUEST,
    MD5_RESPONSE,
    MSK,
    SUCCESS,
    FakeNode,
    new_session,
    outcome,
    wire,
)

TIMEOUT = 30


class FakeUpstream:
    """An AaaBackend whose answers the test gives; records every call."""

    def __init__(self):
        self.calls: list[tuple[AaaSession, bytes, defer.Deferred]] = []
        self.stopped = False

    def authenticate(self, session, eap_payload):
        d = defer.Deferred()
        self.calls.append((session, eap_payload, d))
        return d

    def stop(self):
        self.stopped = True
        return defer.succeed(None)


@pytest.fixture
def gateway_node():
    return FakeNode(AAA_HOST, AAA_REALM)


@pytest.fixture
def upstream():
    return FakeUpstream()


@pytest.fixture
def gateway(gateway_node, upstream):
    return EapGateway(gateway_node, upstream, multi_round_timeout=TIMEOUT)


_end_to_end = iter(range(1000, 10**6))


def der(session_id="hac.example.org;1;1;mip6-a", payload=IDENTITY, state=None, end_to_end=None,
        user_name="mn1@example.org"):
    message = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM, deap.EapRequest(
        session_id, HAC_HOST, user_name, payload, state, "[2001:db8::7]:40001"))
    message.header.end_to_end_identifier = next(_end_to_end) if end_to_end is None else end_to_end
    message.header.hop_by_hop_identifier = 1
    return wire(message)


def handle(gateway, request) -> deap.EapAnswer:
    """The gateway's DEA for ``request`` (it must be ready), as the HAC reads it."""
    return deap.decode_dea(wire(outcome(defer.maybeDeferred(gateway.handle, request))))


def result_of(gateway, request) -> int:
    return codec.result_code(wire(outcome(defer.maybeDeferred(gateway.handle, request))))


def test_the_gateway_handles_diameter_eap_requests(gateway, gateway_node):
    key = (deap.EAP_APPLICATION_ID, deap.DIAMETER_EAP_COMMAND)
    assert gateway_node.handlers[key] == gateway.handle


def test_multi_round_maps_state_both_ways_and_returns_msk_and_attributes(gateway, upstream):
    pending = gateway.handle(der())
    session, payload, answered = upstream.calls[0]
    assert (session.user_name, payload) == ("mn1@example.org", IDENTITY)
    assert (session.mn_address, session.mn_port) == (ipaddress.ip_address("2001:db8::7"), 40001)
    assert session.session_id == "hac.example.org;1;1;mip6-a"
    answered.callback(Challenge(MD5_REQUEST))
    dea = wire(outcome(pending))
    first = deap.decode_dea(dea)
    assert first.answer == Challenge(MD5_REQUEST) and len(first.state) == 16
    assert codec.avp_value(dea, constants.AVP_MULTI_ROUND_TIME_OUT) == TIMEOUT
    assert codec.avp_value(dea, constants.AVP_SESSION_ID) == "hac.example.org;1;1;mip6-a"

    pending = gateway.handle(der(payload=MD5_RESPONSE, state=first.state))
    again, payload, answered = upstream.calls[1]
    assert again is session and payload == MD5_RESPONSE  # RADIUS State lives in the session
    attributes = BootstrapAttributes(home_address_ip4=ipaddress.IPv4Address("192.0.2.10"))
    answered.callback(Accept(SUCCESS, MSK, attributes))
    final = deap.decode_dea(wire(outcome(pending)))
    assert final.result_code == codec.SUCCESS
    assert final.answer == Accept(SUCCESS, MSK, attributes) and final.state is None


def test_reject_is_4001_with_the_eap_failure(gateway, upstream):
    pending = gateway.handle(der())
    upstream.calls[0][2].callback(Reject(FAILURE))
    answer = deap.decode_dea(wire(outcome(pending)))
    assert answer.result_code == deap.AUTHENTICATION_REJECTED and answer.answer == Reject(FAILURE)


@pytest.mark.parametrize("error, result", [
    (AaaTimeout("no RADIUS server answered"), codec.UNABLE_TO_DELIVER),
    (AaaUnavailable("dead", retry_after=30), deap.TOO_BUSY),
    (RuntimeError("bug"), codec.UNABLE_TO_COMPLY)])
def test_upstream_errors_become_result_codes(gateway, upstream, error, result):
    pending = gateway.handle(der())
    upstream.calls[0][2].errback(error)
    answer = wire(outcome(pending))
    assert codec.result_code(answer) == result
    assert codec.avp_value(answer, constants.AVP_AUTH_APPLICATION_ID) == 5


def _challenged(gateway, upstream, session_id="hac.example.org;1;1;mip6-a"):
    pending = gateway.handle(der(session_id))
    upstream.calls[-1][2].callback(Challenge(MD5_REQUEST))
    return deap.decode_dea(wire(outcome(pending))).state


def test_a_wrong_or_stale_state_is_refused_without_radius(gateway, upstream):
    state = _challenged(gateway, upstream)
    assert result_of(gateway, der(payload=MD5_RESPONSE, state=b"x" * 16)) == \
        codec.INVALID_AVP_VALUE
    assert len(upstream.calls) == 1
    gateway.handle(der(payload=MD5_RESPONSE, state=state))
    assert len(upstream.calls) == 2
    # the same State again while that round is in flight: refused
    assert result_of(gateway, der(payload=MD5_RESPONSE, state=state)) == codec.INVALID_AVP_VALUE


def test_state_for_an_unknown_session_is_5002(gateway, upstream):
    assert result_of(gateway, der(state=b"s" * 16)) == deap.UNKNOWN_SESSION_ID
    assert upstream.calls == []


def test_missing_user_name_is_5005(gateway, upstream):
    request = deap.encode_der(HAC_HOST, HAC_REALM, AAA_REALM,
                              deap.EapRequest("s;1", HAC_HOST, "mn", IDENTITY))
    request.avps = [avp for avp in request.avps if avp.code != constants.AVP_USER_NAME]
    assert result_of(gateway, wire(request)) == deap.MISSING_AVP
    assert upstream.calls == []


def test_a_retransmitted_der_is_answered_from_the_same_round(gateway, upstream):
    first = gateway.handle(der(end_to_end=77))
    retransmitted = gateway.handle(der(end_to_end=77))
    assert len(upstream.calls) == 1
    upstream.calls[0][2].callback(Challenge(MD5_REQUEST))
    a, b = deap.decode_dea(wire(outcome(first))), deap.decode_dea(wire(outcome(retransmitted)))
    assert a == b and a.answer == Challenge(MD5_REQUEST)
    late = handle(gateway, der(end_to_end=77))  # after the round finished: replayed
    assert late == a and len(upstream.calls) == 1


def test_a_new_der_without_state_while_a_round_is_in_flight_is_refused(gateway, upstream):
    gateway.handle(der())
    assert result_of(gateway, der()) == codec.UNABLE_TO_COMPLY
    assert len(upstream.calls) == 1


def test_idle_conversations_expire(gateway, gateway_node, upstream):
    state = _challenged(gateway, upstream)
    _challenged(gateway, upstream, "other;1")
    assert len(gateway.sessions) == 2
    gateway_node.clock.advance(TIMEOUT + 1)
    assert result_of(gateway, der(payload=MD5_RESPONSE, state=state)) == deap.UNKNOWN_SESSION_ID
    assert len(gateway.sessions) == 0


def test_conversations_are_capped_and_the_next_is_too_busy(gateway_node, upstream):
    small = EapGateway(gateway_node, upstream, multi_round_timeout=TIMEOUT,
                       max_conversations=3)
    for index in range(3):
        _challenged(small, upstream, f"hac.example.org;1;{index}")
    assert result_of(small, der("hac.example.org;1;9")) == deap.TOO_BUSY
    assert len(small.sessions) == 3 and len(upstream.calls) == 3
    gateway_node.clock.advance(TIMEOUT + 1)  # idle ones expire and make room
    small.handle(der("hac.example.org;1;9"))
    assert len(small.sessions) == 1 and len(upstream.calls) == 4
    assert small.counters["challenge"] == 3 and small.counters["refused"] == 1


def test_stop_stops_upstream_and_node(gateway, gateway_node, upstream):
    outcome(gateway.stop())
    assert upstream.stopped and gateway_node.stopped


def test_hac_backend_through_the_gateway_in_memory(gateway, upstream):
    """The whole DER/DEA path without sockets: backend -> bytes -> gateway -> bytes."""
    hac_node = FakeNode()

    def send_request(request):
        request.header.end_to_end_identifier = next(_end_to_end)  # as a DiameterNode does
        return defer.maybeDeferred(gateway.handle, wire(request)).addCallback(wire)

    hac_node.send_request = send_request
    backend = DiameterEapBackend(hac_node, AAA_REALM)
    session = new_session()
    first = backend.authenticate(session, IDENTITY)
    upstream.calls[0][2].callback(Challenge(MD5_REQUEST))
    assert outcome(first) == Challenge(MD5_REQUEST)
    second = backend.authenticate(session, MD5_RESPONSE)
    assert upstream.calls[1][0] is upstream.calls[0][0]
    upstream.calls[1][2].callback(Accept(SUCCESS, MSK[:32]))
    assert outcome(second) == Accept(SUCCESS, MSK[:32])
    third = backend.authenticate(new_session(), IDENTITY)
    upstream.calls[2][2].errback(AaaTimeout("no RADIUS server answered"))
    assert outcome(third).check(AaaTimeout)


@pytest.mark.parametrize("text, expected", [
    ("192.0.2.1:4433", ("192.0.2.1", 4433)),
    ("[2001:db8::1]:80", ("2001:db8::1", 80)),
    (None, ("::", 0)),
    ("00-11-22-33-44-55", ("::", 0)),
])
def test_calling_station_id(text, expected):
    address, port = parse_calling_station_id(text)
    assert (str(address), port) == expected


# --- mip6-aaa-gw --------------------------------------------------------------------


def _argv(tmp_path, *extra):
    return ["--origin-host", "gw.example.net", "--origin-realm", "example.net",
            "--radius-server", "127.0.0.1:1812", "--radius-secret-file",
            str(tmp_path / "secret"), *extra]


def test_cli_needs_tls_material_unless_insecure_tcp(tmp_path, capsys):
    (tmp_path / "secret").write_text("s3cret\n")
    assert main(_argv(tmp_path)) == EXIT_CONFIG
    assert "--cert" in capsys.readouterr().err


def test_cli_refuses_a_missing_secret_file_and_a_bad_listen_address(tmp_path, capsys):
    assert main(_argv(tmp_path, "--insecure-tcp")) == EXIT_CONFIG
    assert "--radius-secret-file" in capsys.readouterr().err
    (tmp_path / "secret").write_text("s3cret\n")
    assert main(_argv(tmp_path, "--insecure-tcp", "--listen", "nowhere")) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "--listen" in err and "s3cret" not in err


REPO = Path(__file__).parents[2]
REQUIRED = {"diameter.origin_host": "gw.example.net", "diameter.origin_realm": "example.net",
            "radius.servers": ["127.0.0.1:1812"], "radius.secret_file": "/nonexistent",
            "diameter.insecure_tcp": True}


@pytest.mark.parametrize("key, value, expected", [
    ("diameter.origin_host", "gw example", "DiameterIdentity"),
    ("diameter.listen", "nowhere", "ADDRESS:PORT"),
    ("diameter.insecure_tcp", "yes", "true or false"),
    ("diameter.watchdog", "1", "6..86400"),
    ("diameter.watchdog", 5.9, "6..86400"),
    ("eap.multi_round_timeout", "0", "1..86400"),
    ("eap.multi_round_timeout", "nan", "1..86400"),
    ("eap.max_conversations", 0, "1..10000000"),
    ("radius.servers", ["radius.example.net"], "IP address"),
    ("radius.servers", [], "non-empty"),
    ("radius.nas_address", "localhost", "not an IP address"),
    ("log.level", "loud", "debug, info"),
    ("log.format", "yaml", "text, json"),
])
def test_a_bad_value_names_its_key_flag_and_the_allowed_values(key, value, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(None, {**REQUIRED, key: value})
    message = str(caught.value)
    assert message.startswith(f"{key} ({SETTINGS[key].metadata['flag']}): ")
    assert expected in message


def test_the_cli_names_the_flag_and_range_and_exits_2(tmp_path, capsys):
    """--multi-round-timeout 0 was a ValueError traceback; --watchdog 1 named no flag."""
    for flag, value, expected in (("--multi-round-timeout", "0", "1..86400"),
                                  ("--watchdog", "1", "6..86400")):
        assert main(_argv(tmp_path, "--insecure-tcp", flag, value)) == EXIT_CONFIG
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err and expected in err


def test_every_flag_has_a_key_and_every_key_is_documented_and_in_the_sample():
    page = (REPO / "docs" / "configuration.md").read_text()
    documented = page.partition("\n## mip6-aaa-gw\n")[2].partition("\n## ")[0]
    sample = REPO / "etc" / "mip6-aaa-gw.toml"
    assert set(read_toml(sample)) == set(SETTINGS)
    load_config(sample)
    for key, spec in SETTINGS.items():
        assert spec.metadata["flag"], key
        assert f"`{key}`" in documented and f"`{spec.metadata['flag']}" in documented, key


def test_the_config_file_sets_every_key_and_flags_win(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text("""
[diameter]
origin_host = "gw.example.net"
origin_realm = "example.net"
listen = "[::1]:3869"
insecure_tcp = true
watchdog = 12
[radius]
servers = ["127.0.0.1:1812", "[::1]:1645"]
secret_file = "/etc/mip6/secret"
nas_identifier = "gw1"
nas_address = "::1"
[eap]
multi_round_timeout = 30
max_conversations = 10
[log]
level = "debug"
""")
    config = load_config(path)
    assert config.listen_address == ("::1", 3869) and config.watchdog == 12.0
    assert [str(server.address) for server in config.radius_servers] == ["127.0.0.1", "::1"]
    assert config.radius_servers[1].port == 1645
    assert (config.nas_identifier, str(config.nas_address)) == ("gw1", "::1")
    assert (config.multi_round_timeout, config.max_conversations) == (30.0, 10)
    flags = load_config(path, {"log.level": "error", "diameter.watchdog": "7"})
    assert (flags.log_level, flags.watchdog) == ("error", 7.0)


@pytest.mark.parametrize("text, expected", [
    ("[diameter]\nbogus = 1\n", "unknown key diameter.bogus"),
    ("[diameter\n", "not valid TOML"),
])
def test_a_bad_config_file_is_one_line(tmp_path, capsys, text, expected):
    path = tmp_path / "gw.toml"
    path.write_text(text)
    assert main(["--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_check_config_reports_a_port_in_use(tmp_path, capsys):
    (tmp_path / "secret").write_text("s3cret\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(_argv(tmp_path, "--insecure-tcp", "--check-config", "--listen",
                          f"127.0.0.1:{port}")) == 1  # a runtime failure
    err = capsys.readouterr().err
    assert f"diameter.listen (--listen) 127.0.0.1:{port}: cannot bind (the port is in use)" in err
    assert main(_argv(tmp_path, "--insecure-tcp", "--check-config", "--listen",
                      "127.0.0.1:0")) == 0
    assert "configuration OK: gw.example.net (realm example.net)" in capsys.readouterr().out


def _running(tmp_path, *extra):
    secret = tmp_path / "secret"
    if not secret.exists():
        secret.write_text("first\n")
        secret.chmod(0o600)
    config = load_config(None, {**REQUIRED, "radius.secret_file": str(secret),
                                "diameter.listen": "127.0.0.1:0", **dict(extra)})
    return start(prepare(config), MemoryReactorClock()), secret


def test_reload_rereads_the_secret_file_and_keeps_it_when_the_file_is_bad(tmp_path, caplog):
    running, secret = _running(tmp_path)
    [server] = running.radius._servers
    assert server.config.secret == b"first"
    secret.write_text("second\n")
    with caplog.at_level(logging.INFO, logger="mip6-aaa-gw"):
        running.reload()
        assert server.config.secret == b"second"
        secret.write_text("")
        running.reload()
    assert server.config.secret == b"second"
    assert "reloaded: RADIUS secret from" in caplog.text
    assert "reload failed, settings unchanged" in caplog.text and "is empty" in caplog.text
    assert "second" not in caplog.text and "first" not in caplog.text


def test_reload_rereads_the_radius_servers_from_the_config_file(tmp_path, caplog):
    secret = tmp_path / "secret"
    secret.write_text("first\n")
    secret.chmod(0o600)
    path = tmp_path / "gw.toml"

    def configure(*servers: str) -> None:
        path.write_text('[diameter]\norigin_host = "gw.example.net"\n'
                        'origin_realm = "example.net"\ninsecure_tcp = true\n'
                        'listen = "127.0.0.1:0"\n'
                        f'[radius]\nsecret_file = "{secret}"\nservers = {list(servers)!r}\n'
                        .replace("'", '"'))

    configure("127.0.0.1:1812")
    running = start(prepare(load_config(path, {})), MemoryReactorClock(), path, {})
    configure("192.0.2.7:1812", "127.0.0.1:1812")
    with caplog.at_level(logging.INFO, logger="mip6-aaa-gw"):
        running.reload()
    assert repr(running.radius) == "RadiusClient(192.0.2.7:1812, 127.0.0.1:1812)"
    assert "servers RadiusClient(192.0.2.7:1812, 127.0.0.1:1812)" in caplog.text
    configure()  # no server: refused, the list in force stays
    with caplog.at_level(logging.INFO, logger="mip6-aaa-gw"):
        running.reload()
    assert "reload failed, settings unchanged: radius.servers" in caplog.text
    assert repr(running.radius) == "RadiusClient(192.0.2.7:1812, 127.0.0.1:1812)"


def test_status_is_one_line_with_peers_and_counters(tmp_path, caplog):
    running, _ = _running(tmp_path)
    running.gateway.counters["requests"] += 3
    with caplog.at_level(logging.INFO, logger="mip6-aaa-gw"):
        running.status()
    [record] = [r for r in caplog.records if r.getMessage().startswith("status:")]
    line = record.getMessage()
    assert "\n" not in line and "peers [none]" in line and "requests 3" in line
    assert "conversations 0" in line


def test_exposed_secret_and_key_warn_and_a_certificate_not_naming_the_host_warns(
        tmp_path, caplog):
    from aaa_mip6 import pki

    ca = pki.make_ca(tmp_path)
    other = pki.make_cert(tmp_path, ca, "other", dns_names=("other.example.net",))
    other.key_path.chmod(0o644)
    secret = tmp_path / "exposed-secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    config = load_config(None, {**REQUIRED, "radius.secret_file": str(secret),
                                "diameter.insecure_tcp": False, "tls.cert": str(other.cert_path),
                                "tls.key": str(other.key_path),
                                "tls.peer_ca": str(ca.cert_path)})
    with caplog.at_level(logging.WARNING, logger="mip6-aaa-gw"):
        prepare(config)
    assert "RADIUS secret file" in caplog.text and "TLS key" in caplog.text
    assert "does not name diameter.origin_host (--origin-host) gw.example.net" in caplog.text
    assert "s3cret" not in caplog.text
