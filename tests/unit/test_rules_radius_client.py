"""aaa_mip6.twisted.radius_client, rule by rule: each test states one rule of how the HAC's
RADIUS client treats replies and kills the mutants of ``make mutation``
(docs/mutation.md) that would break it. ``make mutation`` runs only the client's reply
path (``_received``, ``_exchange_replied``, ``_probe_replied``, ``_ignore``); the
retransmission and failover timers are covered by test_radius_client.py.

A reply that does not verify is ignored, never answered; every one is counted under
``ignored-<reason>`` and logged with the server's name and the reason (never the reply).

Equivalent mutants (survive by design, nothing observable changes):

- ``_exchange_replied``: ``exchange.transaction = ""`` instead of None. The exchange is
  over (its Deferred fired); nothing reads its transaction again but ``_cancel``, which
  is only reached while the HAC still waits for the answer.
"""

from __future__ import annotations

from pyrad import packet as pyrad_packet
from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from aaa_mip6.aaa import AaaUnavailable, Challenge, Reject
from aaa_mip6.radius.servers import RetryPolicy
from tests.unit.radius_fakes import (EAP_IDENTITY_RESPONSE, EAP_MD5_REQUEST, EAP_SUCCESS,
                                     reply_to, session)
from tests.unit import test_radius_client  # not its ClientTests: pytest would run them twice


class ReplyRules(unittest.TestCase):

    setUp = test_radius_client.ClientTests.setUp  # a VirtualUdpNetwork: no timer races
    server = test_radius_client.ClientTests.server
    client = test_radius_client.ClientTests.client
    done = test_radius_client.ClientTests.done

    def logged(self) -> list[str]:
        texts: list[str] = []

        def observe(event):
            if event.get("log_namespace", "").startswith("aaa_mip6.twisted.radius_client"):
                texts.append(formatEvent(event))
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return texts

    @defer.inlineCallbacks
    def test_every_spoofed_reply_is_counted_and_logged_with_server_and_reason(self):
        def spoofing(request):
            spoofed = reply_to(request, pyrad_packet.AccessAccept, EAP_SUCCESS)
            spoofed.secret = b"attacker"
            return [spoofed, spoofed, reply_to(request, pyrad_packet.AccessReject)]
        _, server = self.server(spoofing)
        client = self.client([server])
        logs = self.logged()
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Reject(None))
        self.assertEqual(client.counters["ignored-bad-authenticator"], 2)
        ignored = [text for text in logs if text.startswith("ignored reply")]
        self.assertEqual(ignored, [f"ignored reply from RADIUS server 127.0.0.1:{server.port}: "
                                   "bad-authenticator"] * 2)

    @defer.inlineCallbacks
    def test_answers_are_counted_by_kind(self):
        _, server = self.server(
            lambda request: reply_to(request, pyrad_packet.AccessChallenge, EAP_MD5_REQUEST))
        client = self.client([server])
        for _ in range(2):
            answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
            self.assertEqual(answer, Challenge(EAP_MD5_REQUEST))
        self.assertEqual(client.counters["challenge"], 2)

    @defer.inlineCallbacks
    def test_a_server_revived_by_status_server_is_counted_and_logged(self):
        def revives(request):
            if request.code == pyrad_packet.StatusServer:
                return reply_to(request, pyrad_packet.AccessAccept)
            return None
        _, server = self.server(revives)
        client = self.client([server], RetryPolicy(initial_timeout=0.05, max_timeout=0.05,
                                                   transmissions=1, jitter=0, dead_after=1,
                                                   hold_down=0.1))
        logs = self.logged()
        client.counters["server-alive"] = 5
        with self.assertRaises(AaaUnavailable):
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.until(lambda: client.counters["server-alive"] == 6, "the probe's answer")
        self.assertEqual(client.counters["server-alive"], 6)
        self.assertIn(f"RADIUS server 127.0.0.1:{server.port} answered Status-Server: "
                      "alive again", logs)

    def until(self, condition, what: str):
        """Run virtual time (bounded: 100 x 20 ms) until ``condition`` holds."""
        for _ in range(100):
            if condition():
                return
            self.network.advance(0.02)
        self.fail(f"still waiting for {what}")

    @defer.inlineCallbacks
    def test_garbage_other_identifiers_and_strangers_are_each_counted_and_logged(self):
        impostor = self.network.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(impostor.stopListening)
        fake = None

        def noisy(request):
            genuine = reply_to(request, pyrad_packet.AccessReject)
            other_id = reply_to(request, pyrad_packet.AccessReject)
            other_id.id = (request.id + 1) % 256
            for _ in range(2):
                impostor.write(genuine.ReplyPacket(), fake.sources[-1])
            return [b"\x02", b"\x02", other_id, other_id, genuine]
        fake, server = self.server(noisy)
        client = self.client([server])
        logs = self.logged()
        answer = yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.assertEqual(answer, Reject(None))
        self.until(lambda: client.counters["ignored-unknown-source"] == 2, "the impostor")
        counted = [client.counters[f"ignored-{reason}"]
                   for reason in ("malformed", "unknown-id", "unknown-source")]
        self.assertEqual(counted, [2, 2, 2])
        self.assertEqual(logs.count("ignored RADIUS datagram from 127.0.0.1: RADIUS datagram of "
                                    "1 octets is shorter than a header"), 2)
        self.assertEqual(logs.count("ignored RADIUS datagram from 127.0.0.1: no request with "
                                    "that Identifier"), 2)
        self.assertEqual(logs.count("ignored RADIUS datagram from unknown source 127.0.0.1"), 2)

    @defer.inlineCallbacks
    def test_a_spoofed_status_server_reply_does_not_revive_a_server(self):
        def revives_after_a_spoof(request):
            if request.code != pyrad_packet.StatusServer:
                return None
            spoofed = reply_to(request, pyrad_packet.AccessAccept)
            spoofed.secret = b"attacker"
            return [spoofed, reply_to(request, pyrad_packet.AccessAccept)]
        _, server = self.server(revives_after_a_spoof)
        client = self.client([server], RetryPolicy(initial_timeout=0.05, max_timeout=0.05,
                                                   transmissions=1, jitter=0, dead_after=1,
                                                   hold_down=0.1))
        logs = self.logged()
        with self.assertRaises(AaaUnavailable):
            yield self.done(client.authenticate(session(), EAP_IDENTITY_RESPONSE))
        self.until(lambda: client.counters["server-alive"] == 1, "the probe's answer")
        self.assertEqual(client.counters["ignored-bad-authenticator"], 1)
        self.assertIn(f"ignored reply from RADIUS server 127.0.0.1:{server.port}: "
                      "bad-authenticator", logs)
