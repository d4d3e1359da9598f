"""The HAC's RADIUS client against a real FreeRADIUS 3.2, with the MN's EAP peer on the other end."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from aaa_mip6 import eap
from aaa_mip6.aaa import AaaSession, AaaUnavailable, Accept, Challenge, Reject
from aaa_mip6.radius import codec
from aaa_mip6.radius.servers import RadiusServer, RetryPolicy
from lab.servers.freeradius import running_freeradius
from aaa_mip6.twisted.radius_client import RadiusClient
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer

pytestmark = pytest.mark.integration

NAS = codec.Nas("hac.example.org", ipaddress.IPv4Address("127.0.0.1"))
# Short enough that failover tests stay quick; long enough for EAP-pwd on 2 shared cores.
POLICY = RetryPolicy(initial_timeout=1.0, max_timeout=2.0, transmissions=2, dead_after=1,
                     hold_down=60)
KEYED_METHODS = {"mschapv2": 32, "pwd": 64}  # MSK octets; md5 and gtc derive none
MAX_ROUNDS = 50


def mn_session(user: str) -> AaaSession:
    return AaaSession(user, ipaddress.IPv6Address("2001:db8::7"), 40001)


@defer.inlineCallbacks
def run_eap(client: RadiusClient, peer: EapPeer, session: AaaSession):
    """Relay like the HAC does: EAP-Request/Identity made locally, then AAA rounds to the end."""
    response = peer.receive(eap.EapPacket(eap.Code.REQUEST, 0, eap.Type.IDENTITY).encode())
    for _ in range(MAX_ROUNDS):
        answer = yield client.authenticate(session, response)
        if not isinstance(answer, Challenge):
            if answer.eap_payload is not None:
                peer.receive(answer.eap_payload)
            return answer
        response = peer.receive(answer.eap_payload)
    raise AssertionError(f"no end after {MAX_ROUNDS} rounds")


class _Silent(DatagramProtocol):
    """A dead primary: the port exists but nothing answers."""


class FreeRadiusTests(unittest.TestCase):

    @pytest.fixture(autouse=True)
    def _freeradius(self, freeradius):
        self.radius = freeradius

    def server(self) -> RadiusServer:
        return RadiusServer(ipaddress.IPv4Address(self.radius.host), self.radius.port,
                            self.radius.secret)

    def client(self, servers) -> RadiusClient:
        client = RadiusClient(servers, NAS, policy=POLICY)
        self.addCleanup(client.stop)
        return client

    def peer(self, method: str, password: str | None = None) -> EapPeer:
        return EapPeer(method, EapCredentials(self.radius.user, password or self.radius.password))

    @defer.inlineCallbacks
    def test_md5_accept_carries_home_addresses_and_no_msk(self):
        peer = self.peer("md5")
        answer = yield run_eap(self.client([self.server()]), peer, mn_session(self.radius.user))
        self.assertIsInstance(answer, Accept)
        self.assertTrue(peer.success)
        self.assertIsNone(answer.msk)
        self.assertIsNone(peer.msk)
        self.assertEqual(answer.attributes["home_address_ip6"],
                         ipaddress.IPv6Address(self.radius.framed_ipv6_address))
        self.assertEqual(answer.attributes["home_address_ip4"],
                         ipaddress.IPv4Address(self.radius.framed_ip_address))

    @defer.inlineCallbacks
    def test_keyed_methods_give_the_same_msk_on_both_ends(self):
        client = self.client([self.server()])
        for method, length in KEYED_METHODS.items():
            peer = self.peer(method)
            answer = yield run_eap(client, peer, mn_session(self.radius.user))
            self.assertIsInstance(answer, Accept, method)
            self.assertEqual(len(answer.msk), length, method)
            self.assertEqual(answer.msk, peer.msk, method)

    @defer.inlineCallbacks
    def test_wrong_password_is_rejected_with_eap_failure(self):
        peer = self.peer("md5", "wrong-" + self.radius.password)
        answer = yield run_eap(self.client([self.server()]), peer, mn_session(self.radius.user))
        self.assertIsInstance(answer, Reject)
        self.assertEqual(eap.decode(answer.eap_payload).code, eap.Code.FAILURE)
        self.assertTrue(peer.failure)

    @defer.inlineCallbacks
    def test_dead_primary_fails_over_to_freeradius(self):
        silent = reactor.listenUDP(0, _Silent(), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        primary = RadiusServer(ipaddress.IPv4Address("127.0.0.1"), silent.getHost().port,
                               b"nobody-listens")
        client = self.client([primary, self.server()])
        answer = yield run_eap(client, self.peer("md5"), mn_session(self.radius.user))
        self.assertIsInstance(answer, Accept)
        self.assertEqual(client.counters["server-dead"], 1)

    def test_freeradius_answers_status_server(self):
        radius = codec.RadiusCodec(self.radius.secret, NAS, codec.load_dictionary())
        probe = radius.encode_status_server(17)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(probe.datagram, (self.radius.host, self.radius.port))
            radius.check_status_reply(probe, sock.recv(4096))  # raises unless genuine


class StoppedServerTests(unittest.TestCase):

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path):
        self.directory = tmp_path

    @defer.inlineCallbacks
    def test_server_stopped_mid_conversation_gives_unavailable_with_retry_after(self):
        with running_freeradius(self.directory) as radius:
            server = RadiusServer(ipaddress.IPv4Address(radius.host), radius.port, radius.secret)
            client = RadiusClient([server], NAS, policy=POLICY)
            self.addCleanup(client.stop)
            peer = EapPeer("md5", EapCredentials(radius.user, radius.password))
            session = mn_session(radius.user)
            identity = peer.receive(eap.EapPacket(eap.Code.REQUEST, 0, eap.Type.IDENTITY).encode())
            challenge = yield client.authenticate(session, identity)
            self.assertIsInstance(challenge, Challenge)
        with self.assertRaises(AaaUnavailable) as caught:
            yield client.authenticate(session, peer.receive(challenge.eap_payload))
        self.assertEqual(caught.exception.retry_after, 60)
