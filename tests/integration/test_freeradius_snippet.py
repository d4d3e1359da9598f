"""etc/freeradius installed into Debian's stock configuration, asked by the HAC's RADIUS client.

docs/usage.md's walk-through (tests/integration/test_usage_eap_walkthrough.py) runs every
method end to end; these look at what the HAC gets: every bootstrap attribute, the
aaa-mip6 vendor attributes (dictionary.aaa-mip6), the Reply-Message of a reject, and the
timeout of a wrong secret.
"""

from __future__ import annotations

import ipaddress
import secrets

import pytest
from twisted.internet import defer
from twisted.trial import unittest

from aaa_mip6.aaa import AaaTimeout, Accept, Reject
from aaa_mip6.radius import codec
from aaa_mip6.radius.servers import RadiusServer, RetryPolicy
from aaa_mip6.twisted.radius_client import RadiusClient
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration import stock_freeradius as stock
from tests.integration.test_radius_freeradius import mn_session, run_eap

pytestmark = pytest.mark.integration

NAS = codec.Nas("hac.example.org", ipaddress.IPv4Address(stock.NAS_ADDRESS))
# Long enough for a TLS round on 2 shared cores; short enough for the timeout test.
POLICY = RetryPolicy(initial_timeout=2.0, max_timeout=2.0, transmissions=2, dead_after=5)
USER = "mn1@example.org"
ANONYMOUS = "anonymous@example.org"
USERS = """\
"mn1@example.org" Cleartext-Password := "{password}"
\tFramed-IPv6-Address = 2001:db8:1::10,
\tMIP6-Home-Link-Prefix = 0x4020010db8000100000000000000000000,
\tAAA-MIP6-HA-IPv6-Address = 2001:db8::a,
\tAAA-MIP6-HA-IPv4-Address = 192.0.2.1,
\tSession-Timeout = 86400
"""
ATTRIBUTES = {
    "home_address_ip6": ipaddress.IPv6Address("2001:db8:1::10"),
    "home_link_prefix": ipaddress.IPv6Network("2001:db8:1::/64"),
    "home_agent_ip6": ipaddress.IPv6Address("2001:db8::a"),
    "home_agent_ip4": ipaddress.IPv4Address("192.0.2.1"),
    "session_timeout": 86400,
}
PAP_MISMATCH = 'pap: Cleartext password does not match "known good" password'


class SnippetTests(unittest.TestCase):

    @pytest.fixture(autouse=True)
    def _stock_server(self):
        stock.skip_unless_runnable()
        self.password = "pw-" + secrets.token_hex(8)
        with stock.freerad_directory() as directory, \
                stock.running_stock_freeradius(directory, USERS.format(password=self.password)
                                               ) as radius:
            self.radius = radius
            yield

    def client(self, server: RadiusServer | None = None) -> RadiusClient:
        client = RadiusClient([server or self.radius.server], NAS, policy=POLICY)
        self.addCleanup(client.stop)
        return client

    def converse(self, method: str, password: str, **tunnel):
        """One EAP conversation relayed as the HAC does: User-Name is the EAP identity."""
        if method in ("ttls", "peap"):
            tunnel.update(anonymous_identity=ANONYMOUS, ca_cert=self.radius.ca_cert)
        peer = EapPeer(method, EapCredentials(USER, password, **tunnel))
        session = mn_session(tunnel.get("anonymous_identity", USER))
        return run_eap(self.client(), peer, session)

    @defer.inlineCallbacks
    def test_accept_carries_every_bootstrap_attribute_also_from_inside_a_tunnel(self):
        for method, tunnel in [("md5", {}), ("ttls", {"phase2": "pap"}), ("peap", {})]:
            answer = yield self.converse(method, self.password, **tunnel)
            self.assertIsInstance(answer, Accept, method)
            self.assertEqual(answer.attributes, ATTRIBUTES, method)

    @defer.inlineCallbacks
    def test_a_wrong_password_is_a_reject_that_says_why(self):
        cases = [("md5", {}, "EAP authentication failed"),
                 ("gtc", {}, PAP_MISMATCH),
                 ("mschapv2", {}, "mschap: MS-CHAP2-Response is incorrect"),
                 ("ttls", {"phase2": "pap"}, PAP_MISMATCH)]
        for method, tunnel, said in cases:
            answer = yield self.converse(method, "wrong", **tunnel)
            self.assertIsInstance(answer, Reject, method)
            self.assertIsNotNone(answer.eap_payload, method)
            self.assertEqual(answer.reply_message, said, method)
            self.assertEqual(answer.reason, f"the AAA rejected the MN: Reply-Message {said!r}, "
                                            "EAP-Failure")

    @defer.inlineCallbacks
    def test_a_wrong_secret_is_a_timeout_that_names_the_server(self):
        right = self.radius.server
        wrong = RadiusServer(right.address, right.port, b"not-" + right.secret)
        peer = EapPeer("md5", EapCredentials(USER, self.password))
        with self.assertRaises(AaaTimeout) as caught:
            yield run_eap(self.client(wrong), peer, mn_session(USER))
        self.assertEqual(str(caught.exception), f"no answer from RADIUS server {right.address}:"
                                                f"{right.port} (wrong secret or server down)")
        self.assertIn("Shared secret is incorrect", self.radius.log_path.read_text())
