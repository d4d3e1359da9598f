"""Several HAC processes (not forked from one another) sharing one store: TLS session
tickets resume on any of them, across a key rotation; SPIs stay unique when they
bootstrap MNs at once on one PostgreSQL (one of them with two workers); SA delivery
brings every SA that any worker of any HAC provisioned to its HA, through the outbox."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import time

import pytest
from twisted.internet import defer

from aaa_mip6 import pki
from aaa_mip6.diameter.sa_app import NodeSettings
from aaa_mip6.store import open_store
from aaa_mip6.twisted.sa_node import start_node
from ha.diameter_source import DiameterSASource
from lab.processes import free_port
from lab.reactors import run_on_fresh_reactor, sleep
from lab.servers.hac import HA_ADDRESS, TEST_CONFIG, HacProcess, make_setup, mn_ids
from mn import client
from mn.bootstrap import PskBootstrap
from aaa_mip6.twisted.tls import ClientTLS
from tests.integration.postgres import postgres_server, postgres_url  # noqa: F401

pytestmark = pytest.mark.integration

TICKET_PERIOD = 2  # seconds: tls.ticket_key_lifetime of the ticket test
BOOTSTRAPS_PER_HAC = 60


def two_hacs(directory, config, store_url=None, other_config=None):
    """Two HAC processes with the same certificate, PSKs and store, each its own files."""
    setup = make_setup(directory / "a", identities=mn_ids(8), store_url=store_url)
    other = dataclasses.replace(setup, directory=directory / "b")
    other.directory.mkdir()
    return HacProcess(setup, config=config), HacProcess(other, config=other_config or config)


async def bootstrap_through(reactor, hacs, each: int) -> list:
    """``each`` PSK bootstraps through every HAC at once; their SAs."""
    calls = []
    for hac in hacs:
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)
        identities = sorted(hac.setup.psks)
        for number in range(each):
            identity = identities[number % len(identities)]
            machine = PskBootstrap(identity, hac.setup.psks[identity])
            calls.append(client.bootstrap(reactor, tls, hac.port, machine))
    return [sa for sa, _ in await defer.gatherResults(calls, consumeErrors=True)]


def mn_context(hac: HacProcess) -> ssl.SSLContext:
    """The MN's TLS 1.2 context (the ticket comes inside the handshake)."""
    context = ssl.create_default_context(cafile=str(hac.setup.ca.cert_path))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def handshake(context: ssl.SSLContext, hac: HacProcess, session=None
              ) -> tuple[ssl.SSLSession, bool]:
    """A handshake with ``hac`` offering ``session``: the new session, and whether the
    offered one resumed."""
    with socket.create_connection((hac.host, hac.port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname=hac.host, session=session) as tls:
        return tls.session, tls.session_reused


def within_one_period(handshakes):
    """``handshakes()``'s outcomes, from start to end within one ticket period (both HACs
    switch keys at a period's end: handshakes that straddle it test nothing)."""
    for _ in range(5):
        while time.time() % TICKET_PERIOD > TICKET_PERIOD / 2:  # half a period left
            time.sleep(0.05)
        time.sleep(0.1)  # both HACs have switched to this period's key
        started = time.time()
        outcomes = handshakes()
        if started // TICKET_PERIOD == time.time() // TICKET_PERIOD:
            return outcomes
    raise AssertionError("no period held four handshakes")


def test_a_ticket_from_one_hac_resumes_on_another_also_after_a_rotation(tmp_path):
    config = {**TEST_CONFIG, "tls": {"ticket_key_lifetime": TICKET_PERIOD}}
    one, other = two_hacs(tmp_path, config)
    with one, other:
        mn = mn_context(one)

        def both_ways():
            session, _ = handshake(mn, one)
            assert session.has_ticket
            return [handshake(mn, other, session)[1],
                    handshake(mn, one, handshake(mn, other)[0])[1]]

        outcomes = within_one_period(both_ways)
        time.sleep(TICKET_PERIOD)  # the next period: after a rotation
        outcomes += within_one_period(both_ways)
        old = handshake(mn, one)[0]
        time.sleep(TICKET_PERIOD + 0.1)  # a full period later: a ticket of old keys
        outcomes.append(handshake(mn, other, old)[1])
    assert outcomes == [True, True, True, True, False], (one.log_tail(), other.log_tail())


def test_hacs_bootstrapping_at_once_on_one_postgresql_never_share_an_spi(
        tmp_path, postgres_url):  # noqa: F811
    config = {**TEST_CONFIG, "workers": 2}
    one, other = two_hacs(tmp_path, config, store_url=postgres_url)
    with one, other:
        async def scenario(reactor):
            return [sa.spi for sa in await bootstrap_through(reactor, (one, other),
                                                             BOOTSTRAPS_PER_HAC)]

        spis = run_on_fresh_reactor(scenario, 120)
    assert len(spis) == 2 * BOOTSTRAPS_PER_HAC
    assert len(set(spis)) == len(spis)
    with open_store(postgres_url) as store:
        stored = store._execute("test", "SELECT spi, COUNT(*) FROM mip6_sa GROUP BY spi")
    assert sorted(spi for spi, _ in stored) == sorted(spis)
    assert all(count == 1 for _, count in stored)


HA_HOST, HA_REALM, HAC_REALM = "ha1.example.net", "example.net", "example.org"
DELIVERY_WAIT = 30.0


def test_every_worker_of_every_hac_delivers_through_the_outbox(tmp_path, postgres_url):  # noqa: F811
    """HAC a (two workers) and HAC b, each with its own Origin-Host, push to one HA every
    SA any of their processes provisioned; the outbox ends empty (all acknowledged)."""
    ca = pki.make_ca(tmp_path, "sa-delivery-ca")
    ha_identity = pki.make_cert(tmp_path, ca, HA_HOST, dns_names=(HA_HOST,))
    ha_port = free_port()

    def delivery(origin_host: str) -> dict:
        identity = pki.make_cert(tmp_path, ca, origin_host, dns_names=(origin_host,),
                                 client=True)
        return {**TEST_CONFIG, "workers": 2 if origin_host.startswith("hac-a") else 1,
                "sa_delivery": {
                    "origin_host": origin_host, "origin_realm": HAC_REALM,
                    "destination_realm": HA_REALM, "peers": [f"{HA_HOST}=127.0.0.1:{ha_port}"],
                    "cert": str(identity.cert_path), "key": str(identity.key_path),
                    "ca": str(ca.cert_path), "watchdog": 6, "poll_interval": 0.2},
                "sa_delivery.home_agents": {f'"{HA_ADDRESS}"': HA_HOST}}

    one, other = two_hacs(tmp_path, delivery("hac-a.example.org"), store_url=postgres_url,
                          other_config=delivery("hac-b.example.org"))

    async def scenario(reactor):
        settings = NodeSettings(HA_HOST, HA_REALM, HAC_REALM, listen=("127.0.0.1", ha_port),
                                cert=str(ha_identity.cert_path), key=str(ha_identity.key_path),
                                ca=str(ca.cert_path), watchdog=6.0)
        ha = DiameterSASource(start_node(settings, reactor, watchdog_jitter=0.5), settings)
        pushed = {}
        ha.on_change = lambda sa: pushed.setdefault(sa.spi, sa)
        try:
            deadline = time.monotonic() + DELIVERY_WAIT
            while len(ha.node.router.open_peers) < 2 and time.monotonic() < deadline:
                await sleep(reactor, 0.1)
            peers = sorted(ha.node.router.open_peers)
            sas = await bootstrap_through(reactor, (one, other), BOOTSTRAPS_PER_HAC)
            while ({sa.spi for sa in sas} - set(pushed)) and time.monotonic() < deadline:
                await sleep(reactor, 0.1)
            return peers, sas, pushed
        finally:
            await ha.close()

    with one, other:
        peers, sas, pushed = run_on_fresh_reactor(scenario, 120)
        with open_store(postgres_url) as store:
            deadline = time.monotonic() + DELIVERY_WAIT
            while store.outbox_size() and time.monotonic() < deadline:
                time.sleep(0.1)
            owed = store.outbox_size()
    assert peers == ["hac-a.example.org", "hac-b.example.org"]  # one node per host
    missing = [sa.spi for sa in sas if pushed.get(sa.spi) != sa]
    assert not missing, (len(missing), one.log_tail(), other.log_tail())
    assert owed == 0
