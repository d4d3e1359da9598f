"""SA delivery benchmark: SA pushes per second HAC -> HA and SA-Query round trips, each
against a bare Diameter echo over the same connections (docs/performance.md, section
"SA delivery over Diameter").

One process, one reactor: the HAC's :class:`hac.sa_delivery.SaDelivery` (SQLite store)
and the HA's :class:`ha.diameter_source.DiameterSASource`, over TLS, first directly
(the HAC connects to the HA), then through a real freeDiameterd relay
(lab/servers/freediameter.py). The baseline on each path is a request of the same
application answered at once by a handler that reads nothing (the "echo"): what Diameter,
TLS and the reactor cost without the SA application. Pushes and echoes run with
:data:`hac.sa_delivery_core.MAX_IN_FLIGHT` outstanding; queries and their echoes one at a time.
Echo and SA runs alternate for :data:`ROUNDS` rounds and the best round of each is kept.
One JSON line per figure; ``ratio`` is SA figure / echo figure (rates) or echo / SA
(latencies), so 1.0 means the application costs nothing.

Usage: .venv/bin/python bench/diameter.py [--pushes N] [--queries N]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The project root replaces bench/ on the path: this file's name would shadow python-diameter.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from diameter.message import constants  # noqa: E402
from twisted.internet import defer  # noqa: E402

from aaa_mip6 import pki  # noqa: E402
from aaa_mip6.diameter import codec  # noqa: E402
from aaa_mip6.diameter.sa_app import NodeSettings  # noqa: E402
from aaa_mip6.iana import MIPV6TLS_PORT  # noqa: E402
from aaa_mip6.sa import HomeAgent, SecurityAssociation  # noqa: E402
from aaa_mip6.store import UNALLOCATED_SPI, open_store  # noqa: E402
from aaa_mip6.suites import SUITES, new_keys  # noqa: E402
from aaa_mip6.twisted.sa_node import start_node  # noqa: E402
from bench._common import emit, latency_summary  # noqa: E402
from ha.diameter_source import DiameterSASource  # noqa: E402
from hac.config import DeliverySettings  # noqa: E402
from hac.sa_delivery import SaDelivery  # noqa: E402
from hac.sa_delivery_core import MAX_IN_FLIGHT  # noqa: E402
from lab.processes import free_port  # noqa: E402
from lab.reactors import run_on_fresh_reactor, sleep  # noqa: E402
from lab.servers import ServerMissing  # noqa: E402
from lab.servers.freediameter import PeerSpec, run_relay  # noqa: E402

HAC_HOST, HAC_REALM = "hac.example.org", "example.org"
HA_HOST, HA_REALM = "ha1.example.net", "example.net"
HA_ADDRESS = ipaddress.IPv6Address("2001:db8::1")
ECHO_COMMAND = 8_388_620  # an experimental command of the same application, answered bare
ROUNDS = 3
OPEN_LIMIT = 30.0
RUN_LIMIT = 600.0


def make_records(store, count: int):
    """``count`` stored SAs of another HAC instance, so the bench HAC never pushes them
    on its own: each push and query below is the benchmark's."""
    keys = new_keys(SUITES["AES_128_CBC_SHA"])
    end = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    template = SecurityAssociation(
        spi=UNALLOCATED_SPI, suite="AES_128_CBC_SHA", mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey, validity_end=end, scope=1, mn_id="mn@example.org")
    return [store.create(template, hac_instance="elsewhere",
                         home_agent=HomeAgent(HA_ADDRESS, None, MIPV6TLS_PORT)) for _ in range(count)]


def echo_request(node, destination_realm: str, application_id: int, number: int):
    local = node.local
    return codec.new_request(ECHO_COMMAND, application_id, [
        codec.new_avp(constants.AVP_SESSION_ID, f"{local.origin_host};echo;{number}"),
        codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, application_id),
        codec.new_avp(constants.AVP_ORIGIN_HOST, local.origin_host.encode()),
        codec.new_avp(constants.AVP_ORIGIN_REALM, local.origin_realm.encode()),
        codec.new_avp(constants.AVP_DESTINATION_REALM, destination_realm.encode())])


async def echo_rate(node, realm: str, application_id: int, count: int) -> float:
    """Echo requests per second with MAX_IN_FLIGHT outstanding."""
    numbers = iter(range(count))
    started = time.perf_counter()

    async def worker():
        for number in numbers:
            await node.send_request(echo_request(node, realm, application_id, number))

    await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(MAX_IN_FLIGHT)])
    return count / (time.perf_counter() - started)


async def push_rate(reactor, delivery: SaDelivery, records) -> float:
    started = time.perf_counter()
    for record in records:
        delivery.deliver(record)
    while delivery.pending:
        await sleep(reactor, 0.001)
    return len(records) / (time.perf_counter() - started)


async def round_trips(send, count: int) -> list[float]:
    durations = []
    for number in range(count):
        started = time.perf_counter()
        await send(number)
        durations.append(time.perf_counter() - started)
    return durations


async def measure(reactor, path: str, hac_node: NodeSettings, ha_node: NodeSettings, store,
                  pushes: int, queries: int) -> None:
    def on_this_thread(function, *args):
        return defer.maybeDeferred(function, *args)

    settings = DeliverySettings(hac_node, {HA_ADDRESS: HA_HOST})
    ha = DiameterSASource(start_node(ha_node, reactor), ha_node)
    hac = SaDelivery(start_node(hac_node, reactor), settings, store, reactor=reactor,
                     in_store_thread=on_this_thread)
    application_id = settings.node.application.application_id
    for node in (ha.node, hac.node):
        node.register_handler(application_id, ECHO_COMMAND,
                              lambda request, node=node: node.answer(request, codec.SUCCESS))
    try:
        hac.start()
        await until_open(reactor, hac.node, ha.node)
        records = make_records(store, pushes + queries * ROUNDS)
        await echo_rate(hac.node, HA_REALM, application_id, min(pushes, 200))  # warm-up

        def echo_once(number):
            return ha.node.send_request(echo_request(ha.node, HAC_REALM, application_id, number))

        echoes, rates, echo_times, query_times = [], [], [], []
        for round_number in range(ROUNDS):  # alternating, best round of each kept
            echoes.append(await echo_rate(hac.node, HA_REALM, application_id, pushes))
            rates.append(await push_rate(reactor, hac, records[:pushes]))
            fresh = records[pushes + round_number * queries:][:queries]  # not yet at the HA
            echo_times.append(await round_trips(echo_once, queries))
            query_times.append(await round_trips(
                lambda number: defer.maybeDeferred(ha.lookup, fresh[number].sa.spi), queries))
        echo, pushed = max(echoes), max(rates)
        emit("sa pushes per second", path=path, pushes_per_s=round(pushed, 1),
             echo_per_s=round(echo, 1), ratio=round(pushed / echo, 3), count=pushes,
             in_flight=MAX_IN_FLIGHT, rounds=ROUNDS)
        echo_summary = min((latency_summary(times) for times in echo_times),
                           key=lambda summary: summary["p50_ms"])
        query_summary = min((latency_summary(times) for times in query_times),
                            key=lambda summary: summary["p50_ms"])
        emit("sa query round trip", path=path, count=queries, rounds=ROUNDS,
             query_p50_ms=query_summary["p50_ms"], query_p99_ms=query_summary["p99_ms"],
             echo_p50_ms=echo_summary["p50_ms"], echo_p99_ms=echo_summary["p99_ms"],
             ratio_p50=round(echo_summary["p50_ms"] / query_summary["p50_ms"], 3),
             ratio_p99=round(echo_summary["p99_ms"] / query_summary["p99_ms"], 3))
    finally:
        await hac.stop()
        await ha.close()


async def until_open(reactor, *nodes) -> None:
    """Until each node has an Open peer (the other end, or the relay)."""
    deadline = time.monotonic() + OPEN_LIMIT
    while not all(node.router.open_peers for node in nodes):
        if time.monotonic() > deadline:
            raise RuntimeError("the Diameter peers did not open")
        await sleep(reactor, 0.05)


def node_settings(host, realm, destination_realm, identity, ca, **where) -> NodeSettings:
    return NodeSettings(host, realm, destination_realm, cert=str(identity.cert_path),
                        key=str(identity.key_path), ca=str(ca.cert_path), watchdog=30.0,
                        request_timeout=30.0, **where)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=1000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        with open_store(f"sqlite:///{directory}/sa.db") as store:
            ca = pki.make_ca(directory, "bench-ca")
            hac_id = pki.make_cert(directory, ca, HAC_HOST, dns_names=(HAC_HOST,), client=True)
            ha_id = pki.make_cert(directory, ca, HA_HOST, dns_names=(HA_HOST,))
            ha_port = free_port()
            direct = (
                node_settings(HAC_HOST, HAC_REALM, HA_REALM, hac_id, ca,
                              peers=((HA_HOST, "127.0.0.1", ha_port),)),
                node_settings(HA_HOST, HA_REALM, HAC_REALM, ha_id, ca,
                              listen=("127.0.0.1", ha_port)))
            run_on_fresh_reactor(lambda reactor: measure(
                reactor, "direct", *direct, store, arguments.pushes, arguments.queries),
                RUN_LIMIT)
            hac_port, ha_port = free_port(), free_port()
            (directory / "relay").mkdir()
            with run_relay(directory / "relay", [PeerSpec(HAC_HOST, hac_port),
                                                 PeerSpec(HA_HOST, ha_port)]) as relay:
                relayed = (
                    node_settings(HAC_HOST, HAC_REALM, HA_REALM, relay.credentials[HAC_HOST],
                                  relay.ca, listen=("127.0.0.1", hac_port)),
                    node_settings(HA_HOST, HA_REALM, HAC_REALM, relay.credentials[HA_HOST],
                                  relay.ca, listen=("127.0.0.1", ha_port)))
                run_on_fresh_reactor(lambda reactor: measure(
                    reactor, "through freeDiameterd", *relayed, store, arguments.pushes,
                    arguments.queries), RUN_LIMIT)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ServerMissing as missing:  # one line, not a traceback
        sys.exit(f"bench/diameter.py: {missing}")
