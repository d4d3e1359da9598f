"""Two of our Diameter nodes through a real freeDiameterd relay, over TLS.

A (realm example.org) sends a request of the test application 16777255 with
Destination-Realm example.net; the relay routes it to B (realm example.net); B's
answer comes back to A through the relay. Then the relay is frozen (SIGSTOP) and
A's watchdog must declare it down within RFC 3539's bound, while a request
pending to it fails with RequestTimedOut.
"""

from __future__ import annotations

import random

import pytest
from diameter.message import constants
from twisted.internet import defer

from aaa_mip6.diameter import codec
from aaa_mip6.diameter.peer import LocalNode, WatchdogTimers
from aaa_mip6.diameter.router import RequestTimedOut
from aaa_mip6.twisted import tls
from aaa_mip6.twisted.diameter_node import DiameterNode
from lab.processes import free_port
from lab.reactors import run_on_fresh_reactor, sleep
from lab.servers.freediameter import PeerSpec, run_relay

pytestmark = pytest.mark.integration

APP = codec.TEST_APPLICATION_ID
TEST_COMMAND = 8388620
A_HOST, A_REALM = "a.example.org", "example.org"
B_HOST, B_REALM = "b.example.net", "example.net"
WATCHDOG = WatchdogTimers(tw=1.0, jitter=0.1)
OPEN_LIMIT = 20.0  # the relay retries its connections every TcTimer = 1 s
SCENARIO_LIMIT = 60.0  # a safety net against a hung scenario
ROUTE_RETRIES = 50  # 0.1 s apart: the relay reads B's CEA well within that


async def within(reactor, d: defer.Deferred, seconds: float):
    d.addTimeout(seconds, reactor)
    return await d


def test_request_through_relay_then_watchdog_failure(tmp_path):
    ports = {A_HOST: free_port(), B_HOST: free_port()}
    peers = [PeerSpec(host, port) for host, port in ports.items()]
    with run_relay(tmp_path, peers) as relay:

        def start_node(reactor, host, realm, request_timeout=5.0):
            node = DiameterNode(LocalNode(host, realm, auth_applications=frozenset({APP})),
                                reactor=reactor, watchdog=WATCHDOG,
                                request_timeout=request_timeout, rng=random.Random())
            own = relay.credentials[host]
            node.listen_tls(tls.ServerTLS(own.cert_path, own.key_path,
                                          client_ca_file=relay.ca.cert_path,
                                          require_client_cert=True), port=ports[host])
            return node

        async def scenario(reactor):
            a = start_node(reactor, A_HOST, A_REALM, request_timeout=2 * WATCHDOG.tw)
            b = start_node(reactor, B_HOST, B_REALM)
            seen = []

            def handler(incoming):
                seen.append(incoming)
                return b.answer(incoming, codec.SUCCESS)

            b.register_handler(APP, TEST_COMMAND, handler)
            try:
                relay_peer = await within(reactor, a.when_open(relay.identity), OPEN_LIMIT)
                await within(reactor, b.when_open(relay.identity), OPEN_LIMIT)
                answer = await a.send_request(_request())
                # B is Open once it sent its CEA; the relay can route to B only once it
                # read it, and until then answers itself (e.g. UNABLE_TO_DELIVER): retry,
                # bounded, until an answer comes from B.
                for _ in range(ROUTE_RETRIES):
                    origin = codec.as_text(codec.avp_value(answer, constants.AVP_ORIGIN_HOST))
                    if seen or origin == B_HOST:
                        break
                    await sleep(reactor, 0.1)
                    answer = await a.send_request(_request())

                forwarded_before_pause = list(seen)
                relay.pause()
                pending = a.send_request(_request())
                bound = 3 * (WATCHDOG.tw + WATCHDOG.jitter) + 1.0
                await sleep(reactor, bound)
                relay_still_open = relay.identity in a.router.open_peers
                try:
                    await pending
                    timed_out = None
                except RequestTimedOut as error:
                    timed_out = error
            finally:
                relay.resume()
                await a.stop()
                await b.stop()
            return relay_peer, forwarded_before_pause, answer, relay_still_open, timed_out

        relay_peer, seen, answer, relay_still_open, timed_out = run_on_fresh_reactor(
            scenario, SCENARIO_LIMIT)
        log = relay.log()

    assert relay_peer.is_relay, log
    # Only what B saw before the pause: the request pending at the frozen relay may
    # still reach B once the relay resumes, while the nodes stop.
    assert len(seen) == 1
    forwarded = seen[0]
    assert forwarded.header.application_id == APP
    assert codec.as_text(codec.avp_value(forwarded, constants.AVP_ORIGIN_HOST)) == A_HOST
    route = [codec.as_text(v) for v in codec.avp_values(forwarded, constants.AVP_ROUTE_RECORD)]
    assert route == [A_HOST]  # the relay records the hop it received the request from
    assert codec.result_code(answer) == codec.SUCCESS
    assert codec.as_text(codec.avp_value(answer, constants.AVP_ORIGIN_HOST)) == B_HOST
    assert not relay_still_open, "watchdog did not take the frozen relay down"
    assert isinstance(timed_out, RequestTimedOut)


def _request():
    return codec.new_request(TEST_COMMAND, APP, [
        codec.new_avp(constants.AVP_SESSION_ID, f"{A_HOST};1;{random.getrandbits(32)}"),
        codec.new_avp(constants.AVP_ORIGIN_HOST, A_HOST.encode()),
        codec.new_avp(constants.AVP_ORIGIN_REALM, A_REALM.encode()),
        codec.new_avp(constants.AVP_DESTINATION_REALM, B_REALM.encode()),
        codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, APP),
    ])
