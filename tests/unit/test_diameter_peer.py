"""Diameter peer state machine, watchdog, router, and two nodes over Twisted loopback TCP/TLS."""

from __future__ import annotations

import random
import socket

import pytest
from diameter.message import constants
from twisted.internet import defer, task

from aaa_mip6 import pki
from aaa_mip6.backoff import Backoff
from aaa_mip6.diameter import codec
from aaa_mip6.diameter.peer import (
    AnswerReceived,
    EndToEndIdentifiers,
    LocalNode,
    PeerClosed,
    PeerConnection,
    PeerOpened,
    PeerState,
    PeerSuspect,
    Reconnect,
    RequestReceived,
    WatchdogTimers,
    admit_cer,
    wins_election,
)
from aaa_mip6.diameter.router import RequestTimedOut, Router
from aaa_mip6.twisted import tls
from aaa_mip6.twisted.diameter_node import DiameterNode
from lab.reactors import run_on_fresh_reactor, sleep

APP = codec.TEST_APPLICATION_ID
TEST_COMMAND = 8388620  # in the experimental command range (RFC 6733 §11.2.1)
TW = WatchdogTimers(tw=30.0, jitter=2.0)


def node(host: str, realm: str = "example.org", apps=frozenset({APP}), **kwargs) -> LocalNode:
    return LocalNode(host, realm, auth_applications=frozenset(apps), **kwargs)


def pump(a: PeerConnection, b: PeerConnection, now: float = 0.0) -> None:
    """Carry bytes both ways until neither side has anything to send."""
    while True:
        to_b, to_a = a.data_to_send(), b.data_to_send()
        if not to_a and not to_b:
            return
        if to_b:
            b.data_received(to_b, now)
        if to_a:
            a.data_received(to_a, now)


def connect(local_a: LocalNode, local_b: LocalNode, **kwargs):
    a = PeerConnection(local_a, initiator=True, watchdog=TW, rng=random.Random(1))
    b = PeerConnection(local_b, initiator=False, watchdog=TW, rng=random.Random(2), **kwargs)
    a.connection_made(0.0)
    b.connection_made(0.0)
    pump(a, b)
    return a, b


def request(realm: str = "example.net", application: int = APP, command: int = TEST_COMMAND):
    return codec.new_request(command, application, [
        codec.new_avp(constants.AVP_SESSION_ID, "a.example.org;1"),
        codec.new_avp(constants.AVP_ORIGIN_HOST, b"a.example.org"),
        codec.new_avp(constants.AVP_ORIGIN_REALM, b"example.org"),
        codec.new_avp(constants.AVP_DESTINATION_REALM, realm.encode()),
    ])


# --- sans-I/O peer ----------------------------------------------------------------------


def test_capabilities_exchange_opens_both_ends_with_advertised_applications():
    a, b = connect(node("a.example.org", vendor_applications=frozenset({(32473, 16777300)})),
                   node("b.example.net", "example.net", apps={APP, 5}))
    assert a.state == b.state == PeerState.OPEN
    [opened_a] = a.events()
    [opened_b] = b.events()
    assert isinstance(opened_a, PeerOpened)
    assert opened_a.remote.origin_host == "b.example.net"
    assert opened_a.remote.applications == {APP, 5}
    assert opened_a.remote.host_ip_addresses == ("127.0.0.1",)
    assert opened_b.remote.applications == {APP, 16777300}
    assert not opened_b.remote.is_relay


def test_relay_application_means_every_application():
    a, _ = connect(node("a.example.org"), node("relay.example.org",
                                               apps={codec.RELAY_APPLICATION_ID}))
    remote = a.events()[0].remote
    assert remote.is_relay and remote.supports(5) and remote.supports(APP)


def test_no_common_application_refuses_the_connection():
    a, b = connect(node("a.example.org", apps={APP}), node("b.example.org", apps={5}))
    assert a.state == b.state == PeerState.CLOSED
    assert a.wants_close and b.wants_close
    [closed] = a.events()
    assert isinstance(closed, PeerClosed) and str(codec.NO_COMMON_APPLICATION) in closed.reason


def test_admit_callback_can_refuse():
    a, b = connect(node("a.example.org"), node("b.example.org"),
                   admit=lambda remote: codec.ELECTION_LOST)
    assert b.state == PeerState.CLOSED and a.state == PeerState.CLOSED
    assert str(codec.ELECTION_LOST) in a.events()[0].reason


def test_request_and_answer_matched_by_hop_by_hop():
    a, b = connect(node("a.example.org"), node("b.example.net", "example.net"))
    a.events(), b.events()
    hop_by_hop = a.send_request(request(), "token-1")
    pump(a, b)
    [received] = b.events()
    assert isinstance(received, RequestReceived)
    assert received.request.header.hop_by_hop_identifier == hop_by_hop
    assert received.request.header.end_to_end_identifier != 0
    b.send_answer(codec.new_answer(received.request, codec.SUCCESS, "b.example.net", "example.net"))
    pump(a, b)
    [answered] = a.events()
    assert isinstance(answered, AnswerReceived) and answered.token == "token-1"
    assert codec.result_code(answered.answer) == codec.SUCCESS
    assert a.pending_count == 0


def test_unsupported_application_gets_3007():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    a.events(), b.events()
    a.send_request(request(application=5), "t")
    pump(a, b)
    assert b.events() == []
    [answered] = a.events()
    assert codec.result_code(answered.answer) == codec.APPLICATION_UNSUPPORTED
    assert answered.answer.header.is_error


def test_a_request_for_another_destination_host_gets_3002_rfc6733_6_1_4():
    a, b = connect(node("a.example.org"), node("b.example.net", "example.net"))
    a.events(), b.events()
    for token, host in (("other", b"c.example.net"), ("ours", b"B.Example.Net"), ("none", None)):
        message = request()
        if host is not None:
            message.append_avp(codec.new_avp(constants.AVP_DESTINATION_HOST, host))
        a.send_request(message, token)
    pump(a, b)
    assert [event.request.header.command_code for event in b.events()] == [TEST_COMMAND] * 2
    answers = {event.token: event.answer for event in a.events()}
    assert codec.result_code(answers["other"]) == codec.UNABLE_TO_DELIVER
    assert answers["other"].header.is_error
    assert set(answers) == {"other"}  # the other two reached b, which has not answered


def test_a_command_without_a_handler_gets_3001_from_the_connection():
    handled = {(APP, TEST_COMMAND)}
    a, b = connect(node("a.example.org"), node("b.example.org"), handles=handled)
    a.events(), b.events()
    a.send_request(request(command=TEST_COMMAND + 1), "other")
    a.send_request(request(), "handled")
    pump(a, b)
    [received] = b.events()
    assert isinstance(received, RequestReceived)
    assert received.request.header.command_code == TEST_COMMAND
    [unsupported] = a.events()
    assert unsupported.token == "other"
    assert codec.result_code(unsupported.answer) == codec.COMMAND_UNSUPPORTED


def test_a_request_whose_handling_failed_gets_5012_while_the_connection_is_up():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    a.events(), b.events()
    a.send_request(request(), "t")
    pump(a, b)
    [received] = b.events()
    b.request_failed(received.request)
    pump(a, b)
    [answered] = a.events()
    assert codec.result_code(answered.answer) == codec.UNABLE_TO_COMPLY
    b.connection_lost()
    b.request_failed(received.request)
    assert b.data_to_send() == b""


def test_unknown_answer_is_dropped_and_counted():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    a.events(), b.events()
    stray = request()
    stray.header.hop_by_hop_identifier = 12345
    b.send_answer(codec.new_answer(stray, codec.SUCCESS, "b.example.org", "example.org"))
    pump(a, b)
    assert a.events() == []
    assert a.unknown_answers == 1


def test_undecodable_request_gets_5014():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    a.events(), b.events()
    data = bytearray(codec.encode_message(request()))
    data[24:28] = (0x40000000 | 4000).to_bytes(4, "big")  # first AVP claims 4000 octets
    data[12:16] = (77).to_bytes(4, "big")
    b.data_received(bytes(data), 1.0)
    answer = codec.decode_message(b.data_to_send())
    assert answer.header.hop_by_hop_identifier == 77
    assert codec.result_code(answer) == codec.INVALID_AVP_LENGTH
    assert b.state == PeerState.OPEN


def test_framing_error_closes():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    b.events()
    b.data_received(b"\x02" + bytes(19), 1.0)
    [closed] = b.events()
    assert isinstance(closed, PeerClosed) and "version" in closed.reason
    assert b.wants_close


def test_watchdog_dwr_after_tw_with_jitter_and_dwa_keeps_open():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    deadline = a.timer()
    assert TW.tw - TW.jitter <= deadline <= TW.tw + TW.jitter
    a.handle_timer(deadline - 0.001)
    assert a.data_to_send() == b""
    a.handle_timer(deadline)
    dwr = codec.decode_message(a.data_to_send())
    assert dwr.header.command_code == 280 and dwr.header.is_request
    b.data_received(codec.encode_message(dwr), deadline)
    a.data_received(b.data_to_send(), deadline)
    assert a.state == PeerState.OPEN and not a.suspect
    assert a.timer() >= deadline + TW.tw - TW.jitter


def test_watchdog_suspect_after_one_missed_dwa_then_down_after_two():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    a.events()
    a.send_request(request(), "pending")
    a.data_to_send()
    a.handle_timer(a.timer())  # DWR
    assert a.data_to_send()
    a.handle_timer(a.timer())  # no DWA: suspect, pending withdrawn for failover
    assert a.events() == [PeerSuspect(("pending",))]
    assert a.suspect and a.state == PeerState.OPEN and a.pending_count == 0
    second = a.timer()
    assert second <= 3 * (TW.tw + TW.jitter)
    a.handle_timer(second)  # still nothing: down
    [closed] = a.events()
    assert isinstance(closed, PeerClosed) and "watchdog" in closed.reason
    assert a.wants_close


def test_any_message_clears_suspect():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    a.handle_timer(a.timer())
    a.handle_timer(a.timer())
    assert a.suspect
    a.data_received(b.data_to_send() or _dwa_from(b, a), a.timer() - 1)
    assert not a.suspect


def _dwa_from(b: PeerConnection, a: PeerConnection) -> bytes:
    b.data_received(a.data_to_send(), 0.0)
    return b.data_to_send()


def test_dpr_dpa_clean_shutdown():
    a, b = connect(node("a.example.org"), node("b.example.org"))
    a.events(), b.events()
    a.disconnect(5.0, cause=1)
    assert a.state == PeerState.CLOSING
    pump(a, b, 5.0)
    [closed_b] = b.events()
    [closed_a] = a.events()
    assert closed_b.disconnect_cause == 1 and closed_b.reason == "peer sent DPR"
    assert closed_a.reason == "disconnected"
    assert a.wants_close and b.wants_close


def test_no_cea_within_tw_closes():
    a = PeerConnection(node("a.example.org"), initiator=True, watchdog=TW)
    a.connection_made(0.0)
    a.handle_timer(TW.tw)
    assert a.state == PeerState.CLOSED


@pytest.mark.parametrize("local, remote, won", [
    ("b.example.org", "a.example.org", True),
    ("a.example.org", "b.example.org", False),
    ("a.example.org", "a.example.org.", False),  # octet order: a prefix is smaller
])
def test_election_between_crossing_connections(local, remote, won):
    """RFC 6733 §5.6.4: both connected at once; the greater Origin-Host keeps the
    connection the other side started (answers 2001, closes its own), the other refuses
    with 4003 and keeps its own."""
    admission = admit_cer(local, remote, own_connection_waiting=True)
    if won:
        assert admission.result_code == codec.SUCCESS and admission.close_own_connection
    else:
        assert admission.result_code == codec.ELECTION_LOST
        assert not admission.close_own_connection
    # Exactly one of the two connections survives: the one the loser started.
    other = admit_cer(remote, local, own_connection_waiting=True)
    assert {admission.result_code, other.result_code} == {codec.SUCCESS, codec.ELECTION_LOST}


@pytest.mark.parametrize("facts, result", [
    ({}, codec.SUCCESS),
    ({"already_open": True}, codec.ELECTION_LOST),
    ({"already_open": True, "own_connection_waiting": True}, codec.ELECTION_LOST),
    ({"identity_ok": False}, codec.UNKNOWN_PEER),
    ({"identity_ok": False, "own_connection_waiting": True}, codec.UNKNOWN_PEER),
])
def test_admission_without_an_election(facts, result):
    admission = admit_cer("b.example.org", "a.example.org", **facts)
    assert admission.result_code == result and not admission.close_own_connection


def test_election_and_end_to_end_identifiers():
    assert wins_election("b.example.org", "a.example.org")
    assert not wins_election("a.example.org", "b.example.org")
    ids = EndToEndIdentifiers(now=0x12345678, rng=random.Random(3))
    first, second = ids(), ids()
    assert first >> 20 == second >> 20 == 0x678
    assert second == first + 1 or (first & 0xFFFFF) == 0xFFFFF


# --- router -------------------------------------------------------------------------------


def open_pair(host: str, realm: str, apps=frozenset({APP})):
    a, b = connect(node("a.example.org"), node(host, realm, apps=apps))
    a.events(), b.events()
    return a, b


def test_router_routes_by_realm_then_relay_and_fails_over_with_t_flag():
    router = Router(request_timeout=10.0)
    direct, direct_far = open_pair("b.example.net", "example.net")
    relay, relay_far = open_pair("relay.example.com", "example.com",
                                 apps={codec.RELAY_APPLICATION_ID})
    router.peer_opened(direct)
    router.peer_opened(relay)
    token = router.submit(request("example.net"), 0.0)
    pump(direct, direct_far)
    [received] = direct_far.events()
    end_to_end = received.request.header.end_to_end_identifier
    assert not received.request.header.is_retransmit
    router.peer_closed(direct, (token,))  # connection lost with the request unanswered
    pump(relay, relay_far)
    [again] = relay_far.events()
    assert again.request.header.is_retransmit
    assert again.request.header.end_to_end_identifier == end_to_end
    other = router.submit(request("example.org"), 0.0)  # no realm peer: the relay takes it
    pump(relay, relay_far)
    assert len(relay_far.events()) == 1
    assert router.answered(token).token == token
    assert router.pending == 1 and router.timer() == 10.0
    assert [p.token for p in router.handle_timer(10.0)] == [other]


def test_router_holds_request_until_a_peer_opens():
    router = Router(request_timeout=5.0)
    router.submit(request("example.net"), 0.0)
    direct, direct_far = open_pair("b.example.net", "example.net")
    router.peer_opened(direct)
    pump(direct, direct_far)
    assert len(direct_far.events()) == 1


def test_a_timed_out_request_is_forgotten_by_its_connection():
    """A peer that answers watchdogs but never some requests must not grow the
    connection's Hop-by-Hop table: the router's timeout withdraws the entry."""
    router = Router(request_timeout=5.0)
    direct, direct_far = open_pair("b.example.net", "example.net")
    router.peer_opened(direct)
    for _ in range(100):
        router.submit(request("example.net"), 0.0)
    pump(direct, direct_far)
    [first, *_] = direct_far.events()
    assert direct.pending_count == 100
    assert len(router.handle_timer(5.0)) == 100
    assert direct.pending_count == 0 and router.pending == 0
    late = codec.new_answer(first.request, codec.SUCCESS, "b.example.net", "example.net")
    direct_far.send_answer(late)
    pump(direct, direct_far)
    assert direct.events() == [] and direct.unknown_answers == 1


def test_reconnect_doubles_with_jitter_and_starts_over_once_open():
    reconnect = Reconnect(Backoff(1.0, 30.0, jitter=(0.5, 1.0)))
    assert [reconnect.wait(0.0) for _ in range(7)] == [0.5, 1, 2, 4, 8, 15, 15]
    assert reconnect.wait(0.999) == pytest.approx(29.985)
    reconnect.opened()
    assert reconnect.wait(0.0) == 0.5


def test_reconnect_backoff_stays_bounded_however_long_the_peer_is_down():
    reconnect = Reconnect(Backoff(1.0, 30.0, jitter=(0.5, 1.0)))
    draws = random.Random(3)
    for _ in range(5000):  # about two days of a peer down, at one try per 30 s
        delay = reconnect.wait(draws.random())
    assert 15.0 <= delay <= 30.0
    assert reconnect.attempts <= 6


def test_reconnect_waits_instead_of_connecting_to_a_peer_that_is_open():
    assert Reconnect.connect_now(already_open=False)
    assert not Reconnect.connect_now(already_open=True)


def test_cancelled_open_waiters_are_forgotten():
    diameter_node = DiameterNode(node("a.example.org"), reactor=task.Clock())
    for _ in range(100):
        waiting = diameter_node.when_open("b.example.net")
        waiting.addErrback(lambda failure: failure.trap(defer.CancelledError))
        waiting.cancel()
    kept = diameter_node.when_open("b.example.net")
    assert diameter_node._open_waiters == {"b.example.net": [kept]}


# --- two nodes over Twisted loopback --------------------------------------------------------

SCENARIO_LIMIT = 15.0  # a safety net against a hung scenario, not a timed assertion


FAST = WatchdogTimers(tw=0.3, jitter=0.05)


def pair(reactor, *, request_timeout=2.0, server_tls=None, client_tls=None):
    server = DiameterNode(node("b.example.net", "example.net"), reactor=reactor, watchdog=FAST,
                          rng=random.Random(4))
    client = DiameterNode(node("a.example.org"), reactor=reactor, watchdog=FAST,
                          request_timeout=request_timeout, reconnect_initial=0.1,
                          rng=random.Random(5))
    if server_tls:
        port = server.listen_tls(server_tls, port=0).getHost().port
    else:
        port = server.listen_tcp(port=0).getHost().port
    client.connect("b.example.net", "127.0.0.1", port, client_tls=client_tls)
    return client, server


def test_loopback_request_answer_unknown_command_failed_handler_and_clean_stop():
    async def scenario(reactor):
        client, server = pair(reactor)
        seen = []

        def handler(incoming):
            seen.append(incoming)
            return server.answer(incoming, codec.SUCCESS)

        def broken(incoming):
            raise RuntimeError("bug")

        server.register_handler(APP, TEST_COMMAND, handler)
        server.register_handler(APP, TEST_COMMAND + 2, broken)
        await client.when_open("b.example.net")
        answer = await client.send_request(request())
        unsupported = await client.send_request(request(command=TEST_COMMAND + 1))
        failed = await client.send_request(request(command=TEST_COMMAND + 2))
        counted = (dict(client.requests), dict(client.answers), dict(server.requests),
                   dict(server.answers))
        await sleep(reactor, 1.0)  # several Tw: watchdogs run, the connection stays up
        still_open = "b.example.net" in client.router.open_peers
        plain_tcp_is_tls = client.is_tls(client.router.open_peers["b.example.net"])
        nodelay = [each.transport.getHandle().getsockopt(socket.IPPROTO_TCP,
                                                         socket.TCP_NODELAY)
                   for each in (*client._connections, *server._connections)]
        await client.stop()
        await sleep(reactor, 0.05)
        after = server.router.open_peers
        await server.stop()
        return (seen, answer, unsupported, failed, still_open, after, plain_tcp_is_tls,
                nodelay, counted)

    seen, answer, unsupported, failed, still_open, after, plain_tcp_is_tls, nodelay, counted = \
        run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    client_requests, client_answers, server_requests, server_answers = counted
    assert client_requests == {("sent", TEST_COMMAND): 1, ("sent", TEST_COMMAND + 1): 1,
                               ("sent", TEST_COMMAND + 2): 1}
    assert client_answers[("received", TEST_COMMAND, str(codec.SUCCESS))] == 1
    assert client_answers[("received", TEST_COMMAND + 1, str(codec.COMMAND_UNSUPPORTED))] == 1
    # the handled request's answer is the node's; 3001 and 5012 are the connection's own
    assert server_answers == {("sent", TEST_COMMAND, str(codec.SUCCESS)): 1}
    # a command without a handler is answered by the connection before the node sees it
    assert server_requests == {("received", TEST_COMMAND): 1, ("received", TEST_COMMAND + 2): 1}
    assert plain_tcp_is_tls is False
    assert len(nodelay) == 2 and all(nodelay)  # both ends: answers are never held (Nagle)
    assert len(seen) == 1
    assert codec.result_code(answer) == codec.SUCCESS
    assert codec.result_code(unsupported) == codec.COMMAND_UNSUPPORTED
    assert codec.result_code(failed) == codec.UNABLE_TO_COMPLY
    assert still_open
    assert after == {}


def test_loopback_unanswered_request_times_out_with_typed_error():
    async def scenario(reactor):
        client, server = pair(reactor, request_timeout=0.5)
        server.register_handler(APP, TEST_COMMAND, lambda incoming: defer.Deferred())
        await client.when_open("b.example.net")
        try:
            await client.send_request(request())
        except RequestTimedOut as error:
            outcome = error
        else:
            outcome = None
        await client.stop()
        await server.stop()
        return outcome

    outcome = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert isinstance(outcome, RequestTimedOut) and "example.net" in str(outcome)


def test_loopback_reconnects_after_the_peer_restarts():
    async def scenario(reactor):
        client, server = pair(reactor)
        await client.when_open("b.example.net")
        port = server._ports[0].getHost().port
        await server.stop(cause=0)
        await sleep(reactor, 0.05)
        gone = "b.example.net" not in client.router.open_peers
        server = DiameterNode(node("b.example.net", "example.net"), reactor=reactor,
                              watchdog=FAST)
        server.listen_tcp(port=port)
        await client.when_open("b.example.net")
        await client.stop()
        await server.stop()
        return gone

    assert run_on_fresh_reactor(scenario, SCENARIO_LIMIT)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    directory = tmp_path_factory.mktemp("diameter-pki")
    ca = pki.make_ca(directory)
    return {
        "ca": ca,
        "server": pki.make_cert(directory, ca, "b", dns_names=("b.example.net",)),
        "client": pki.make_cert(directory, ca, "a", dns_names=("a.example.org",), client=True),
        "impostor": pki.make_cert(directory, ca, "x", dns_names=("x.example.org",), client=True),
    }


@pytest.mark.parametrize("client_name, expect_open", [("client", True), ("impostor", False)])
def test_loopback_tls_checks_both_identities(certificates, client_name, expect_open):
    ca, server_id, client_id = (certificates["ca"], certificates["server"],
                                certificates[client_name])
    server_tls = tls.ServerTLS(server_id.cert_path, server_id.key_path,
                               client_ca_file=ca.cert_path, require_client_cert=True)
    client_tls = tls.ClientTLS("b.example.net", ca.cert_path, cert_file=client_id.cert_path,
                               key_file=client_id.key_path)

    async def scenario(reactor):
        client, server = pair(reactor, server_tls=server_tls, client_tls=client_tls)
        server.register_handler(APP, TEST_COMMAND,
                                lambda incoming: server.answer(incoming, codec.SUCCESS))
        await sleep(reactor, 0.5)
        opened = "b.example.net" in client.router.open_peers
        answer = await client.send_request(request()) if opened else None
        both_tls = opened and (client.is_tls(client.router.open_peers["b.example.net"])
                               and server.is_tls(server.router.open_peers["a.example.org"]))
        await client.stop()
        await server.stop()
        return opened, answer, both_tls

    opened, answer, both_tls = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert opened is expect_open
    if expect_open:
        assert codec.result_code(answer) == codec.SUCCESS
        assert both_tls


def test_loopback_simultaneous_connect_keeps_the_connection_the_election_picks():
    """Two nodes connect to each other in the same reactor turn over real sockets: both
    CERs cross, each side holds the election (RFC 6733 §5.6.4), and exactly one
    connection survives: the one the loser (the smaller Origin-Host) started. No reconnect
    happens in the scenario, so a wrong election (both win, both lose) leaves none."""
    low, high = "a.example.org", "b.example.org"

    async def scenario(reactor):
        nodes = {host: DiameterNode(node(host), reactor=reactor, watchdog=FAST,
                                    reconnect_initial=120.0, rng=random.Random(7))
                 for host in (low, high)}
        ports = {host: each.listen_tcp(port=0).getHost().port for host, each in nodes.items()}
        nodes[low].connect(high, "127.0.0.1", ports[high])
        nodes[high].connect(low, "127.0.0.1", ports[low])
        opened = defer.gatherResults([nodes[low].when_open(high), nodes[high].when_open(low)])
        opened.addTimeout(5.0, reactor)
        await opened
        await sleep(reactor, 3 * FAST.tw)  # the losing connection closes; watchdogs run
        survivors = {host: [(p.link is not None, p.transport.getHost().port,
                             p.transport.getPeer().port) for p in each._connections]
                     for host, each in nodes.items()}
        counters = {host: dict(each.counters) for host, each in nodes.items()}
        still_open = all(other in nodes[host].router.open_peers
                         for host, other in ((low, high), (high, low)))
        for each in nodes.values():
            await each.stop()
        return survivors, counters, still_open

    survivors, counters, still_open = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert counters[high].get("election-won") == 1
    assert counters[low].get("election-lost") == 1
    assert still_open
    [(low_started, low_local, low_remote)] = survivors[low]
    [(high_started, high_local, high_remote)] = survivors[high]
    assert low_started and not high_started  # the loser's own connection
    assert (low_local, low_remote) == (high_remote, high_local)  # one and the same socket


def test_loopback_a_silent_peer_counts_a_watchdog_failover_then_a_close():
    """The node counts RFC 3539 SUSPECT (a failover) and the close after it, for the
    ``*_diameter_events_total`` metrics."""
    async def scenario(reactor):
        client, server = pair(reactor)
        await client.when_open("b.example.net")
        for connection in client._connections:
            connection.transport.pauseProducing()  # reads nothing: no DWA reaches it
        for _ in range(40):  # Tw is 0.3 s: suspect after one, down after two
            await sleep(reactor, 0.1)
            if client.counters["peers-closed"]:
                break
        counters = dict(client.counters)
        await client.stop()
        await server.stop()
        return counters

    counters = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert counters["watchdog-failovers"] == 1 and counters["peers-closed"] == 1
