"""Diameter through freeDiameterd as a routing agent, and the agent restarted mid-run.

Two HACs (one SQLite store, as HACs share PostgreSQL) and two HAs all connect over
TLS to one freeDiameterd, which accepts them through its ``acl_wl`` whitelist and
routes with ``rt_load_balance`` and ``rt_randomize`` (docs/diameter.md, "Through a
Diameter agent"):

- every SA-Push and SA-Revoke carries Destination-Host, so it reaches the HA the HAC
  assigned and no other (an HA refuses a push naming another HA, ``push-not-ours``);
- SA-Query carries only Destination-Realm, so the agent balances the HAs' queries
  over both HACs, and every one is answered from the shared store;
- the agent is killed while a push and a revocation are owed and started again: both
  are retried until they arrive, and every node reconnects by itself.
- a revocation for an HA that is not on the agent is handed by freeDiameterd to the other
  HA, which refuses it (3002) instead of acknowledging what is not its own.

And EAP: a real ``mip6-hac`` (aaa.backend = diameter) connects to the agent, which
balances its DERs over two ``mip6-aaa-gw`` in front of FreeRADIUS. Every round after the
first carries Destination-Host (the gateway holding the conversation), so multi-round
methods succeed whichever gateway the first DER reached; with the agent killed a
bootstrap gets 503 or 504 at once, never a hang; once it is back, the HAC's own
reconnection makes bootstraps succeed again.
"""

from __future__ import annotations

import random
import re
import time
import urllib.request
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address

import pytest
from twisted.internet import defer

from aaa_mip6.diameter import codec
from aaa_mip6.diameter.sa_app import NodeSettings
from aaa_mip6.sa import HomeAgent, SecurityAssociation
from aaa_mip6.store import UNALLOCATED_SPI, Outbox, open_store
from aaa_mip6.suites import SUITES, new_keys
from aaa_mip6.twisted.sa_node import start_node
from ha.diameter_source import DiameterSASource
from hac.config import DeliverySettings
from hac.sa_delivery import SaDelivery
from lab.processes import free_port
from lab import reactors
from lab.reactors import run_on_fresh_reactor, sleep
from lab.servers.freediameter import PeerSpec, run_relay
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup
from mn.bootstrap import BootstrapFailed
from tests.integration.gateway import GW_REALM, gateway_process
from tests.integration.hac_eap_matrix import bootstrap
from tests.integration.interop_report import Case

pytestmark = pytest.mark.integration

HAC_REALM, HA_REALM = "example.org", "example.net"
HACS = ("hac1.example.org", "hac2.example.org")
HAS = {"ha1.example.net": IPv6Address("2001:db8:ffff::1"),
       "ha2.example.net": IPv6Address("2001:db8:ffff::2")}
ROUTING = ("rt_load_balance", "rt_randomize")
QUERIES = 16  # concurrent SA-Queries: all on one HAC has odds of 2 in 65536
WAIT_LIMIT = 30.0  # connections retry with backoff from 1 s; the agent every 1 s
SCENARIO_LIMIT = 80.0


def node_settings(relay, host: str, realm: str, destination_realm: str) -> NodeSettings:
    """A node that connects to the agent over TLS (and listens nowhere)."""
    own = relay.credentials[host]
    return NodeSettings(host, realm, destination_realm,
                        peers=((relay.identity, "127.0.0.1", relay.tls_port),),
                        cert=str(own.cert_path), key=str(own.key_path),
                        ca=str(relay.ca.cert_path), watchdog=6.0, request_timeout=2.0)


class HaSide:
    """An HA's Diameter SA source, recording every SA it is told about."""

    def __init__(self, reactor, relay, host: str):
        settings = node_settings(relay, host, HA_REALM, HAC_REALM)
        self.source = DiameterSASource(start_node(settings, reactor, watchdog_jitter=0.5),
                                       settings, home_agents=(HAS[host],))
        self.changes: list[SecurityAssociation] = []
        self.source.on_change = self.changes.append

    def seen(self, spi: int, **fields) -> bool:
        return any(sa.spi == spi and all(getattr(sa, k) == v for k, v in fields.items())
                   for sa in self.changes)


def start_hac(reactor, relay, host: str, store) -> SaDelivery:
    settings = DeliverySettings(node_settings(relay, host, HAC_REALM, HA_REALM),
                                {address: name for name, address in HAS.items()},
                                retry_initial=0.2, retry_max=1.0)
    delivery = SaDelivery(start_node(settings.node, reactor, watchdog_jitter=0.5), settings,
                          store, reactor=reactor,
                          in_store_thread=lambda function, *args:
                          defer.maybeDeferred(function, *args))
    delivery.start()
    return delivery


def new_sa(store, instance: str, ha_host: str, *, owed: bool = True):
    """An SA on ``ha_host``; ``owed``: with its push owed in the outbox (any HAC sends it)."""
    keys = new_keys(SUITES["AES_128_CBC_SHA"])
    template = SecurityAssociation(
        spi=UNALLOCATED_SPI, suite="AES_128_CBC_SHA", mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey,
        validity_end=(datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0),
        scope=1, mn_id=f"mn{random.getrandbits(32)}@example.org",
        home_address6=IPv6Address("2001:db8:1::100"))
    return store.create(template, hac_instance=instance,
                        home_agent=HomeAgent(HAS[ha_host], None, 7872),
                        outbox=Outbox(ha_host) if owed else None)


async def until(reactor, condition, what: str, limit: float = WAIT_LIMIT) -> None:
    await reactors.until(reactor, condition, what, limit)


def test_sa_delivery_through_agent_balanced_and_agent_restarted(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/sa.db") as store, \
            run_relay(tmp_path, [], extensions=ROUTING, accept=(*HACS, *HAS)) as relay:
        ha1, ha2 = HAS
        # one SA owed to each HA, another to ha2 (the outbox: either HAC pushes them);
        # nobody owes "hac-3"'s: the HA must query them
        first = {ha: new_sa(store, HACS[0], ha) for ha in HAS}
        second = new_sa(store, HACS[1], ha2)
        unpushed = [new_sa(store, "hac-3", ha1, owed=False) for _ in range(QUERIES)]

        async def scenario(reactor):
            has = {host: HaSide(reactor, relay, host) for host in HAS}
            hacs = [start_hac(reactor, relay, host, store) for host in HACS]
            results = {}
            try:
                # Each push reaches the HA named in its Destination-Host, and only it.
                await until(reactor, lambda: all(has[h].seen(r.sa.spi) for h, r in first.items())
                            and has[ha2].seen(second.sa.spi), "the first pushes via the agent")
                await until(reactor, lambda: all(hac.pending == 0 for hac in hacs),
                            "their acknowledgements")
                # SA-Query has no Destination-Host: the agent balances over both HACs.
                answers = await defer.gatherResults([
                    defer.maybeDeferred(has[ha1].source.lookup, record.sa.spi)
                    for record in unpushed])
                results["answers"] = answers
                results["queries"] = [hac.counters.get("queries", 0) for hac in hacs]
                # Agent killed (SIGKILL: no DPR) while a push and a revocation are owed.
                relay.process.kill()
                await until(reactor, lambda: relay.process.poll() is not None, "the agent dying")
                await until(reactor, lambda: relay.identity not in hacs[0].node.router.open_peers,
                            "hac1 noticing the agent is gone")
                late = new_sa(store, HACS[0], ha1)
                results["revoked"] = await hacs[0].revoke(first[ha2].sa.spi)
                await sleep(reactor, 1.0)
                results["owed-while-down"] = store.outbox_size()
                relay.restart()
                await until(reactor, lambda: has[ha1].seen(late.sa.spi), "the push after restart")
                await until(reactor, lambda: has[ha2].seen(first[ha2].sa.spi, revoked=True),
                            "the revocation after restart")
                await until(reactor, lambda: hacs[0].pending == 0, "their acknowledgements")
                # Every node is back on the agent without being told to reconnect.
                await until(reactor, lambda: all(
                    relay.identity in node.router.open_peers
                    for node in [hac.node for hac in hacs] + [ha.source.node
                                                                for ha in has.values()]),
                            "every node reconnected")
                results["late"] = late
                results["changes"] = {host: list(ha.changes) for host, ha in has.items()}
                results["not-ours"] = {host: ha.source.counters["push-not-ours"]
                                       for host, ha in has.items()}
            finally:
                for hac in hacs:
                    await hac.stop()
                for ha in has.values():
                    await ha.source.close()
            return results

        results = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
        log = relay.log()

    assert results["answers"] == [record.sa for record in unpushed], log
    assert sum(results["queries"]) == QUERIES
    assert min(results["queries"]) > 0, f"not balanced: {results['queries']}"
    assert results["revoked"] is True
    assert results["owed-while-down"] == 2  # the late push and the revocation
    assert results["not-ours"] == {ha1: 0, ha2: 0}
    expected = {ha1: {first[ha1].sa.spi, results["late"].sa.spi},
                ha2: {first[ha2].sa.spi, second.sa.spi}}
    assert {host: {sa.spi for sa in changes}
            for host, changes in results["changes"].items()} == expected



def test_a_revocation_for_an_ha_away_from_the_agent_is_not_acknowledged_by_another(tmp_path):
    """freeDiameterd hands a request whose Destination-Host is not connected to another
    peer of the realm; that HA must refuse it (3002), or the HAC would count a
    revocation as delivered that never reached its HA."""
    with open_store(f"sqlite:///{tmp_path}/sa.db") as store, \
            run_relay(tmp_path, [], extensions=ROUTING, accept=(*HACS, *HAS)) as relay:
        ha1, ha2 = HAS
        record = new_sa(store, HACS[0], ha2)

        async def scenario(reactor):
            present = HaSide(reactor, relay, ha1)  # ha2 never connects
            settings = node_settings(relay, HACS[0], HAC_REALM, HA_REALM)
            hac = start_node(settings, reactor, watchdog_jitter=0.5)
            try:
                await until(reactor, lambda: relay.identity in hac.router.open_peers
                            and relay.identity in present.source.node.router.open_peers,
                            "both nodes on the agent")
                answer = await hac.send_request(settings.application.revoke_request(
                    f"{HACS[0]};1;1", HACS[0], HAC_REALM, HA_REALM, ha2, record.sa.spi,
                    record.sa.mn_id))
            finally:
                await hac.stop()
                await present.source.close()
            return answer, present.changes

        answer, changes = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)

    assert codec.result_code(answer) == codec.UNABLE_TO_DELIVER
    assert changes == []

GATEWAYS = ("gw1.example.net", "gw2.example.net")
EAP_HAC = "hac.example.org"
NOT_ROUTED = (503, 504)  # no open Diameter peer / the agent has no route yet
BOOTSTRAPS = 16  # mschapv2: several rounds each; all on one gateway: odds of 2 in 65536
BOOTSTRAP_LIMIT = 15.0  # a bootstrap while the agent is down must end within this


def accepted_by(metrics_port: int) -> int:
    """The gateway's count of DEAs with EAP-Success (mip6_gw_relay_events{event=accept})."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(r'^mip6_gw_relay_events_total\{event="accept"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def bootstrap_until_routed(hac: HacProcess, case: Case, server, limit: float = WAIT_LIMIT):
    """Bootstrap until the chain is up end to end (503/504 before); the result."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return bootstrap(hac, case.method, case.credentials(server))
        except BootstrapFailed as failure:
            if failure.status not in NOT_ROUTED or time.monotonic() > deadline:
                raise AssertionError(f"{failure}; HAC log:\n{hac.log_tail()}") from None
            time.sleep(0.3)


def test_eap_through_agent_balanced_over_two_gateways_and_agent_restarted(tmp_path, freeradius):
    case = Case("mschapv2")
    gateway_ports = {host: free_port() for host in GATEWAYS}
    metrics_ports = {host: free_port() for host in GATEWAYS}
    with ExitStack() as stack:
        relay = stack.enter_context(run_relay(
            tmp_path, [PeerSpec(host, port) for host, port in gateway_ports.items()],
            extensions=ROUTING, accept=(EAP_HAC,)))
        for host in GATEWAYS:
            own = relay.credentials[host]
            stack.enter_context(gateway_process(
                tmp_path, freeradius, "--origin-host", host,
                "--listen", f"127.0.0.1:{gateway_ports[host]}",
                "--metrics", f"127.0.0.1:{metrics_ports[host]}",
                "--cert", str(own.cert_path), "--key", str(own.key_path),
                "--peer-ca", str(relay.ca.cert_path)))
        own = relay.credentials[EAP_HAC]
        config = {**TEST_CONFIG, "aaa": {"backend": "diameter"},
                  "diameter": {"origin_host": EAP_HAC, "origin_realm": HAC_REALM,
                               "destination_realm": GW_REALM, "ca": str(relay.ca.cert_path),
                               "cert": str(own.cert_path), "key": str(own.key_path),
                               "watchdog": 6.0, "request_timeout": 3.0,
                               "peers": [f"{relay.identity}=127.0.0.1:{relay.tls_port}"]}}
        hac = stack.enter_context(HacProcess(make_setup(tmp_path / "hac"), config=config))
        bootstrap_until_routed(hac, case, freeradius)
        # Both gateways must be connected before counting: the agent then has two candidates.
        for host in GATEWAYS:
            deadline = time.monotonic() + WAIT_LIMIT
            while (not re.search(rf"-> 'STATE_OPEN'\s+'{re.escape(host)}'", relay.log())
                   and time.monotonic() < deadline):
                time.sleep(0.2)
        before = sum(accepted_by(port) for port in metrics_ports.values())
        balanced = [bootstrap(hac, case.method, case.credentials(freeradius))
                    for _ in range(BOOTSTRAPS)]
        by_gateway = {host: accepted_by(port) for host, port in metrics_ports.items()}

        relay.process.kill()
        relay.process.wait(10)
        asked = time.monotonic()
        with pytest.raises(BootstrapFailed) as while_down:
            bootstrap(hac, case.method, case.credentials(freeradius))
        took = time.monotonic() - asked
        relay.restart()  # the HAC is not told: its Diameter peer reconnects by itself
        (sa, _), peer = bootstrap_until_routed(hac, case, freeradius)
        after = [bootstrap(hac, case.method, case.credentials(freeradius)) for _ in range(3)]

    assert all(peer.success for _, peer in balanced)
    assert sum(by_gateway.values()) - before == BOOTSTRAPS
    assert min(by_gateway.values()) > 0, f"not balanced: {by_gateway}"
    assert while_down.value.status in NOT_ROUTED and took < BOOTSTRAP_LIMIT
    assert peer.success and sa.spi
    assert all(peer.success for _, peer in after)
