"""RADIUS client: server bookkeeping (pure) and the Twisted client against fake loopback servers."""

import ipaddress

import pytest
from pyrad import packet as pyrad_packet
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from aaa_mip6 import eap
from aaa_mip6.aaa import AaaTimeout, AaaUnavailable, Accept, Challenge, Reject
from aaa_mip6.errors import AaaLimitError, ConfigError
from aaa_mip6.radius import codec
from aaa_mip6.radius.servers import (IdentifierSpace, RadiusServer, RetryPolicy, ServerHealth,
                                     retry_after)
from aaa_mip6.twisted.radius_client import RadiusClient
from tests.unit.radius_fakes import (DICTIONARY, EAP_FAILURE, EAP_IDENTITY_RESPONSE,
                                     EAP_MD5_REQUEST, EAP_SUCCESS, NAS, SECRET,
                                     FakeRadiusServer, VirtualUdpNetwork, reply_to, session)

FAST = RetryPolicy(initial_timeout=0.05, max_timeout=0.1, transmissions=2, jitter=0,
                   dead_after=1, hold_down=30)
MSK = bytes(range(64))

# -- pure parts --------------------------------------------------------------


@pytest.mark.parametrize("text, address, port", [
    ("192.0.2.1", "192.0.2.1", 1812), ("192.0.2.1:1645", "192.0.2.1", 1645),
    ("2001:db8::1", "2001:db8::1", 1812), ("[2001:db8::1]:1812", "2001:db8::1", 1812),
    ("[::1]", "::1", 1812),
])
def test_server_parse(text, address, port):
    server = RadiusServer.parse(text, b"s3cret")
    assert (server.address, server.port) == (ipaddress.ip_address(address), port)
    assert "s3cret" not in repr(server)


@pytest.mark.parametrize("text", ["radius.example.org:1812", "192.0.2.1:0", "192.0.2.1:x",
                                  "[2001:db8::1", "[2001:db8::1]1812", ""])
def test_server_parse_refuses_bad_text(text):
    with pytest.raises(ConfigError):
        RadiusServer.parse(text, b"s")


def test_server_needs_a_secret():
    with pytest.raises(ConfigError, match="empty shared secret"):
        RadiusServer.parse("192.0.2.1", b"")


def test_backoff_doubles_up_to_the_maximum_within_the_jitter():
    policy = RetryPolicy(initial_timeout=2, max_timeout=16, jitter=0.1)
    assert [policy.timeout(n, 0.5) for n in range(6)] == [2, 4, 8, 16, 16, 16]
    assert policy.timeout(1, 0.0) == pytest.approx(3.6)
    assert policy.timeout(1, 0.999999) == pytest.approx(4.4, abs=1e-4)


@pytest.mark.parametrize("settings", [dict(initial_timeout=0), dict(max_timeout=0.5),
                                      dict(transmissions=0), dict(jitter=1)])
def test_policy_refuses_unusable_settings(settings):
    with pytest.raises(ConfigError):
        RetryPolicy(**settings)


def test_health_dies_after_n_timeouts_and_an_answer_revives_it():
    health = ServerHealth(RetryPolicy(dead_after=2, hold_down=30))
    assert not health.record_timeout(100)
    health.record_answer()
    assert not health.record_timeout(101)
    assert health.record_timeout(102)
    assert not health.usable(200)  # probing: only a Status-Server answer revives it
    assert retry_after([health], 110) == 22
    health.record_probe_failed(140)
    assert health.dead_until == 170
    health.record_answer()
    assert health.usable(140)


def test_health_without_probing_revives_after_the_hold_down():
    health = ServerHealth(RetryPolicy(dead_after=1, hold_down=30, probe=False))
    assert health.record_timeout(0)
    assert not health.usable(29.9)
    assert health.usable(30)
    assert retry_after([health], 45) == 1


def test_identifier_space_is_256_per_port_and_server_and_round_robin():
    space = IdentifierSpace()
    slots = [space.allocate(1, "a") for _ in range(256)]
    assert sorted(identifier for _, identifier in slots) == list(range(256))
    assert space.allocate(1, "a") is None
    assert space.allocate(1, "b") == (0, 0)  # another server has its own space
    assert space.allocate(2, "a") == (1, 0)
    space.release(0, "a", 5)
    space.release(0, "a", 9)
    assert space.allocate(1, "a") == (0, 5)
    assert space.outstanding() == 257


# -- the Twisted client against fake servers on loopback -------------------------


def challenge_then_accept(request):
    if 24 not in request:
        return reply_to(request, pyrad_packet.AccessChallenge, EAP_MD5_REQUEST, State=b"round-1")
    return reply_to(request, pyrad_packet.AccessAccept, EAP_SUCCESS,
                    MS_MPPE_Recv_Key=MSK[:32], MS_MPPE_Send_Key=MSK[32:],
                    Framed_IPv6_Address="2001:db8:1::10")


def silent(request):
    return None


class ClientTests(unittest.TestCase):
    """The client and its fake servers share a VirtualUdpNetwork: time moves only in
    ``self.done`` and ``self.network.advance``, so no timer races a reply."""

    def setUp(self):
        self.network = VirtualUdpNetwork()

    def server(self, handler, secret=SECRET):
        fake = FakeRadiusServer(handler, secret)
        port = self.network.listenUDP(0, fake, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return fake, RadiusServer(ipaddress.IPv4Address("127.0.0.1"), port.getHost().port, secret)

    def client(self, servers, policy=FAST, **options):
        client = RadiusClient(servers, NAS, policy=policy, dictionary=DICTIONARY,
                              reactor=self.network, **options)
        self.addCleanup(client.stop)
        return client

    def done(self, call):
        """``call`` once its answer is in, with virtual time run as far as it takes."""
        return self.network.run_until(call)

    @defer.inlineCallbacks
    def test_challenge_then_accept_echoes_state_and_yields_msk(self):
        fake, server = self.server(challenge_then_accept)
        client = self.client([server])
        mn = session()
        first = yield self.done(client.authenticate(mn, EAP_IDENTITY_RESPONSE))
        self.assertEqual(first, Challenge(EAP_MD5_REQUEST))
        self.assertIsNotNone(mn.state)
        second = yield self.done(client.authenticate(mn, EAP_IDENTITY_RESPONSE))
        self.assertIsInstance(second, Accept)
        self.assertEqual(second.msk, MSK)
        self.assertEqual(second.attributes["home_address_ip6"],
                         ipaddress.IPv6Address("2001:db8:1::10"))
        self.assertEqual(fake.received[1]["State"], [b"round-1"])
        self.assertIsNone(mn.state)
        self.assertEqual(fake.received[0].raw_packet[20], 80)  # Message-Authenticator first

    @defer.inlineCallbacks
    def test_access_reject_gives_reject(self):
        _, server = self.server(lambda r: reply_to(r, pyrad_packet.AccessReject, EAP_FAILURE))
        answer = yield self.done(
            self.client([server]).authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Reject(EAP_FAILURE))

    @defer.inlineCallbacks
    def test_retransmits_unchanged_then_succeeds(self):
        def second_copy_only(request):
            if len(fake.received) == 1:
                return None
            return reply_to(request, pyrad_packet.AccessReject)
        fake, server = self.server(second_copy_only)
        client = self.client([server])
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Reject(None))
        self.assertEqual(len(fake.received), 2)
        self.assertEqual(fake.received[0].raw_packet, fake.received[1].raw_packet)
        self.assertEqual(client.counters["retransmitted"], 1)

    @defer.inlineCallbacks
    def test_primary_dead_secondary_answers_and_later_calls_skip_the_primary(self):
        primary_fake, primary = self.server(silent)
        secondary_fake, secondary = self.server(challenge_then_accept, secret=b"other")
        client = self.client([primary, secondary])
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Challenge(EAP_MD5_REQUEST))
        self.assertEqual(len(primary_fake.received), FAST.transmissions)
        self.assertEqual(client.counters["server-dead"], 1)
        yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(len(primary_fake.received), FAST.transmissions)
        self.assertEqual(len(secondary_fake.received), 2)
        # what mip6_hac_radius_requests_total shows: one timeout at the primary, two
        # requests and two answers at the secondary
        first, second = (f"{each.address}:{each.port}" for each in (primary, secondary))
        self.assertEqual(client.by_server, {
            (first, "sent"): 1, (first, "timeout"): 1,
            (second, "sent"): 2, (second, "challenge"): 2})

    @defer.inlineCallbacks
    def test_all_servers_dead_fails_fast_with_retry_after(self):
        fakes, servers = zip(*(self.server(silent) for _ in range(2)))
        client = self.client(list(servers))
        with self.assertRaises(AaaUnavailable) as first:
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(first.exception.retry_after, 30)
        names = ", ".join(f"127.0.0.1:{server.port}" for server in servers)
        self.assertEqual(str(first.exception), "every RADIUS server is marked dead after no "
                         f"answer from RADIUS servers {names} (wrong secret or server down)")
        sent = sum(len(fake.received) for fake in fakes)
        self.assertEqual(sent, 2 * FAST.transmissions)
        with self.assertRaises(AaaUnavailable):
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(sum(len(fake.received) for fake in fakes), sent)

    @defer.inlineCallbacks
    def test_no_answer_is_a_timeout_while_servers_are_not_yet_dead(self):
        fake, server = self.server(silent)
        client = self.client([server], RetryPolicy(initial_timeout=0.05, max_timeout=0.1,
                                                   transmissions=3, jitter=0, dead_after=5))
        with self.assertRaises(AaaTimeout) as caught:
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(len(fake.received), 3)
        self.assertEqual(str(caught.exception), f"no answer from RADIUS server 127.0.0.1:"
                         f"{server.port} (wrong secret or server down)")

    @defer.inlineCallbacks
    def test_a_timeout_after_ignored_replies_names_why_they_were_ignored(self):
        fake, server = self.server(lambda r: reply_to(r, pyrad_packet.AccessAccept, EAP_SUCCESS),
                                   secret=b"the server's secret")
        wrong = RadiusServer(server.address, server.port, b"not the server's secret")
        client = self.client([wrong], RetryPolicy(initial_timeout=0.05, max_timeout=0.1,
                                                  transmissions=2, jitter=0, dead_after=5))
        with self.assertRaises(AaaTimeout) as caught:
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(str(caught.exception), f"no usable answer from RADIUS server 127.0.0.1:"
                         f"{server.port}: replies ignored (bad-authenticator)")
        self.assertEqual(client.counters["ignored-bad-authenticator"], 2)

    @defer.inlineCallbacks
    def test_more_than_256_outstanding_requests_use_several_source_ports(self):
        fake, server = self.server(
            lambda r: reply_to(r, pyrad_packet.AccessChallenge, EAP_MD5_REQUEST, State=b"s"))
        client = self.client([server])
        calls = [client.authenticate(session(f"mn{i}@example.org"), EAP_IDENTITY_RESPONSE)
                 for i in range(300)]
        answers = yield self.done(defer.gatherResults(calls))
        self.assertEqual(answers, [Challenge(EAP_MD5_REQUEST)] * 300)
        self.assertEqual(len(set(fake.sources)), 2)
        self.assertEqual({r["User-Name"][0] for r in fake.received},
                         {f"mn{i}@example.org" for i in range(300)})

    @defer.inlineCallbacks
    def test_calls_beyond_every_identifier_wait_for_a_free_one(self):
        fake, server = self.server(lambda r: reply_to(r, pyrad_packet.AccessReject))
        client = self.client([server], max_ports=1)
        answers = yield self.done(defer.gatherResults(
            [client.authenticate(session(), EAP_IDENTITY_RESPONSE) for _ in range(260)]))
        self.assertEqual(answers, [Reject(None)] * 260)
        self.assertEqual(len(set(fake.sources)), 1)
        self.assertEqual(client.counters["retransmitted"], 0)  # waited, not lost

    @defer.inlineCallbacks
    def test_garbage_and_spoofed_replies_are_ignored_and_counted(self):
        def noisy(request):
            spoofed = reply_to(request, pyrad_packet.AccessAccept, EAP_SUCCESS)
            spoofed.secret = b"attacker"
            unsigned = reply_to(request, pyrad_packet.AccessAccept, EAP_SUCCESS)
            unsigned.message_authenticator = False
            return [b"\x02garbage", spoofed, unsigned,
                    reply_to(request, pyrad_packet.AccessReject)]
        _, server = self.server(noisy)
        client = self.client([server])
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Reject(None))
        self.assertEqual(client.counters["ignored-malformed"], 1)
        self.assertEqual(client.counters["ignored-bad-authenticator"], 1)
        self.assertEqual(client.counters["ignored-no-message-authenticator"], 1)

    @defer.inlineCallbacks
    def test_status_server_probe_revives_a_dead_server(self):
        answering = []

        def flaky(request):
            if request.code == pyrad_packet.StatusServer:
                answering.append(True)
                return reply_to(request, pyrad_packet.AccessAccept)
            return reply_to(request, pyrad_packet.AccessReject) if answering else None
        fake, server = self.server(flaky)
        client = self.client([server], RetryPolicy(initial_timeout=0.05, max_timeout=0.05,
                                                   transmissions=1, jitter=0, dead_after=1,
                                                   hold_down=0.1))
        with self.assertRaises(AaaUnavailable):
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.network.advance(0.3)
        self.assertEqual(client.counters["server-alive"], 1)
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Reject(None))
        self.assertEqual([r.code for r in fake.received][-2:],
                         [pyrad_packet.StatusServer, pyrad_packet.AccessRequest])

    @defer.inlineCallbacks
    def test_later_rounds_stay_on_the_server_holding_the_state(self):
        first_fake, first = self.server(
            lambda r: reply_to(r, pyrad_packet.AccessChallenge, EAP_MD5_REQUEST, State=b"s"))
        second_fake, second = self.server(challenge_then_accept)
        client = self.client([first, second])
        mn = session()
        yield self.done(client.authenticate(mn, EAP_IDENTITY_RESPONSE))
        first_fake.handler = silent
        with self.assertRaises(AaaTimeout):
            yield self.done(client.authenticate(mn, EAP_IDENTITY_RESPONSE))
        self.assertEqual(second_fake.received, [])

    @defer.inlineCallbacks
    def test_set_servers_sends_new_calls_to_the_new_list_and_lets_a_conversation_finish(self):
        old_fake, old = self.server(challenge_then_accept)
        new_fake, new = self.server(challenge_then_accept, secret=b"new secret")
        client = self.client([old])
        under_way = session("alice@example.org")
        yield self.done(client.authenticate(under_way, EAP_IDENTITY_RESPONSE))
        client.set_servers([new])  # a SIGHUP while alice is between two rounds
        self.assertEqual(repr(client), f"RadiusClient(127.0.0.1:{new.port})")
        finished = yield self.done(client.authenticate(under_way, EAP_IDENTITY_RESPONSE))
        self.assertIsInstance(finished, Accept)  # on the retired server holding its State
        answer = yield self.done(
            client.authenticate(session("bob@example.org"), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Challenge(EAP_MD5_REQUEST))
        self.assertEqual([r["User-Name"][0] for r in old_fake.received],
                         ["alice@example.org"] * 2)
        self.assertEqual([r["User-Name"][0] for r in new_fake.received], ["bob@example.org"])

    @defer.inlineCallbacks
    def test_set_servers_keeps_a_dead_server_dead_and_takes_a_new_secret(self):
        dead_fake, dead = self.server(silent)
        live_fake, live = self.server(lambda r: reply_to(r, pyrad_packet.AccessReject))
        client = self.client([dead, live])
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual((answer, client.counters["server-dead"]), (Reject(None), 1))
        sent_to_dead = len(dead_fake.received)
        live_fake.secret = b"rotated"
        client.set_servers([RadiusServer(dead.address, dead.port, b"rotated"),
                            RadiusServer(live.address, live.port, b"rotated")])
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Reject(None))  # the reply verified under the new secret
        self.assertEqual(len(dead_fake.received), sent_to_dead)  # still dead: skipped
        self.assertEqual(client.counters["ignored-bad-authenticator"], 0)

    def test_set_servers_refuses_an_empty_list_and_keeps_the_old_one(self):
        _, server = self.server(silent)
        client = self.client([server])
        with self.assertRaises(ConfigError):
            client.set_servers([])
        self.assertEqual(repr(client), f"RadiusClient(127.0.0.1:{server.port})")

    @defer.inlineCallbacks
    def test_input_no_access_request_can_carry_fails_at_once_and_sends_nothing(self):
        # The State of the last challenge counts: this payload fits the first round only.
        state = b"s" * 253
        fake, server = self.server(
            lambda r: reply_to(r, pyrad_packet.AccessChallenge, EAP_MD5_REQUEST, State=state))
        client = self.client([server])
        mn = session()
        fits_alone = 4096 - codec.access_request_length(NAS, mn, b"") - 2 * 17 - 100
        payload = eap.EapPacket(eap.Code.RESPONSE, 2, eap.Type.TLS,
                                bytes(fits_alone - 5)).encode()
        codec.check_access_request(NAS, mn, payload)  # alone it fits
        yield self.done(client.authenticate(mn, EAP_IDENTITY_RESPONSE))
        calls = [client.authenticate(mn, payload),
                 client.authenticate(session("u" * 254), EAP_IDENTITY_RESPONSE)]
        for call in calls:
            self.assertIsInstance(self.failureResultOf(call, AaaLimitError).value,
                                  AaaLimitError)
        self.assertEqual(len(fake.received), 1)
        self.assertEqual(client.counters["refused-too-long"], 2)

    def test_cancel_stops_retransmission(self):
        fake, server = self.server(silent)
        client = self.client([server])
        call = client.authenticate(session(), EAP_IDENTITY_RESPONSE)
        call.addErrback(lambda failure: failure.trap(defer.CancelledError))
        call.cancel()
        self.network.advance(0.15)
        self.assertEqual(len(fake.received), 1)

    @defer.inlineCallbacks
    def test_stop_fails_outstanding_calls_and_refuses_new_ones(self):
        _, server = self.server(silent)
        client = self.client([server])
        call = client.authenticate(session(), EAP_IDENTITY_RESPONSE)
        yield client.stop()
        with self.assertRaises(AaaUnavailable):
            yield self.done(call)
        with self.assertRaises(AaaUnavailable):
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))

    @defer.inlineCallbacks
    def test_stop_also_fails_calls_waiting_for_an_identifier(self):
        _, server = self.server(silent)
        client = self.client([server], max_ports=1)
        calls = [client.authenticate(session(), EAP_IDENTITY_RESPONSE) for _ in range(257)]
        yield client.stop()
        results = yield defer.DeferredList(calls, consumeErrors=True)
        self.assertTrue(all(not ok and failure.check(AaaUnavailable) for ok, failure in results))

    @defer.inlineCallbacks
    def test_calls_waiting_for_an_identifier_are_bounded(self):
        _, server = self.server(silent)
        client = self.client([server], max_ports=1, max_waiting=3)
        calls = [client.authenticate(session(), EAP_IDENTITY_RESPONSE) for _ in range(256 + 3)]
        refused = client.authenticate(session(), EAP_IDENTITY_RESPONSE)
        with self.assertRaises(AaaUnavailable):
            yield self.done(refused)
        self.assertEqual(client.counters["overloaded"], 1)
        self.assertFalse(any(call.called for call in calls))  # the ones waiting still wait
        yield client.stop()
        yield defer.DeferredList(calls, consumeErrors=True)

    @defer.inlineCallbacks
    def test_genuine_reply_from_another_source_is_ignored(self):
        fake, server = self.server(silent)
        client = self.client([server], RetryPolicy(initial_timeout=0.2, max_timeout=0.2,
                                                   transmissions=1, jitter=0, dead_after=5))
        call = client.authenticate(session(), EAP_IDENTITY_RESPONSE)
        self.network.advance(0.05)
        impostor = self.network.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(impostor.stopListening)
        reply = reply_to(fake.received[0], pyrad_packet.AccessReject)
        impostor.write(reply.ReplyPacket(), fake.sources[0])
        with self.assertRaises(AaaTimeout):
            yield self.done(call)
        self.assertEqual(client.counters["ignored-unknown-source"], 1)


class RealUdpTests(unittest.TestCase):
    """One conversation over real loopback sockets and the real reactor. Retransmission
    timers are long and a retransmission would not change what is asserted, so a loaded
    machine cannot make it fail."""

    @defer.inlineCallbacks
    def test_challenge_then_accept_over_loopback_sockets(self):
        fake = FakeRadiusServer(challenge_then_accept)
        port = reactor.listenUDP(0, fake, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        server = RadiusServer(ipaddress.IPv4Address("127.0.0.1"), port.getHost().port, SECRET)
        client = RadiusClient([server], NAS, dictionary=DICTIONARY,
                              policy=RetryPolicy(initial_timeout=5, max_timeout=10))
        self.addCleanup(client.stop)
        mn = session()
        first = yield client.authenticate(mn, EAP_IDENTITY_RESPONSE)
        self.assertEqual(first, Challenge(EAP_MD5_REQUEST))
        second = yield client.authenticate(mn, EAP_IDENTITY_RESPONSE)
        self.assertEqual(second.msk, MSK)
        self.assertEqual(fake.received[-1]["State"], [b"round-1"])
