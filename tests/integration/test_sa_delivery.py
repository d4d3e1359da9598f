"""SA delivery HAC -> HA over Diameter/TLS: direct, through freeDiameterd, faults, tshark.

The HAC side is :class:`hac.sa_delivery.SaDelivery` on a real SQLite store; the HA side
is :class:`ha.diameter_source.DiameterSASource` feeding a real :class:`ha.core.HomeAgentCore`,
so a revocation is checked where it matters: the MN's next Binding Update gets 176.
Each scenario runs on a reactor of its own; waits are bounded polls, not timing checks.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address
from pathlib import Path
from xml.etree import ElementTree

import pytest
from twisted.internet import defer, threads

from aaa_mip6 import pki
from aaa_mip6.diameter.codec import encode_message
from aaa_mip6.diameter.router import RequestFailed
from aaa_mip6.diameter.sa_app import NodeSettings, SaApplication
from aaa_mip6.mobility.messages import BindingAckStatus, BindingUpdate
from aaa_mip6.mobility.payloads import decode_binding_ack_payload, encode_binding_update_payload
from aaa_mip6.sa import HomeAgent, SecurityAssociation
from aaa_mip6.store import UNALLOCATED_SPI, Outbox, open_store
from aaa_mip6.suites import SUITES, new_keys
from aaa_mip6.transform import PType, SaEndpoint
from aaa_mip6.twisted.sa_node import start_node
from ha.actions import SendDatagram
from ha.core import HaPolicy, HomeAgentCore
from ha.diameter_source import DiameterSASource
from hac.config import DeliverySettings
from hac.sa_delivery import SaDelivery
from lab.processes import free_port
from lab import reactors
from lab.reactors import run_on_fresh_reactor, sleep
from lab.servers.freediameter import PeerSpec, run_relay
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, toml_text
from tests.support import Capture
from tests.unit.test_ha_core import HA, HOA, Mn, only

pytestmark = pytest.mark.integration

HAC_HOST, HAC_REALM = "hac.example.org", "example.org"
HA_HOST, HA_REALM = "ha1.example.net", "example.net"
INSTANCE = "hac-1"
LOOPBACK6 = IPv6Address("::1")  # the HA address of the programs test
WAIT_LIMIT = 30.0  # bounded waits for connections and retries (the relay retries every 1 s)
SCENARIO_LIMIT = 120.0


class Credentials:
    """Certificates for both ends, signed by one CA (the relay's, when there is one)."""

    def __init__(self, ca: pki.Identity, hac: pki.Identity, ha: pki.Identity):
        self.ca, self.hac, self.ha = ca, hac, ha

    @classmethod
    def make(cls, directory: Path) -> Credentials:
        """The HAC connects (a client certificate), the HA listens (a server one)."""
        ca = pki.make_ca(directory, "sa-delivery-ca")
        return cls(ca, pki.make_cert(directory, ca, HAC_HOST, dns_names=(HAC_HOST,), client=True),
                   pki.make_cert(directory, ca, HA_HOST, dns_names=(HA_HOST,)))


def hac_settings(credentials, *, peers=(), listen=None, insecure=False) -> DeliverySettings:
    node = NodeSettings(
        HAC_HOST, HAC_REALM, HA_REALM, listen=listen, peers=tuple(peers),
        cert=str(credentials.hac.cert_path), key=str(credentials.hac.key_path),
        ca=str(credentials.ca.cert_path), insecure_tcp=insecure, watchdog=6.0,
        request_timeout=2.0)
    return DeliverySettings(node, {HA: HA_HOST}, retry_initial=0.2, retry_max=1.0,
                            poll_interval=0.2)


def ha_settings(credentials, port: int, *, insecure=False) -> NodeSettings:
    return NodeSettings(
        HA_HOST, HA_REALM, HAC_REALM, listen=("127.0.0.1", port),
        cert=str(credentials.ha.cert_path), key=str(credentials.ha.key_path),
        ca=str(credentials.ca.cert_path), insecure_tcp=insecure, watchdog=6.0,
        request_timeout=2.0)


class HaSide:
    """An HA: Diameter source + core, recording every SA the source reports."""

    def __init__(self, reactor, settings: NodeSettings):
        self.core = HomeAgentCore(HaPolicy(home_agent=HA))
        self.source = DiameterSASource(start_node(settings, reactor, watchdog_jitter=0.5),
                                       settings, home_agents=(HA,))
        self.changes: list[SecurityAssociation] = []
        self.source.on_change = self._changed

    def _changed(self, sa: SecurityAssociation) -> None:
        self.changes.append(sa)
        self.core.sa_changed(sa)

    async def lookup(self, spi: int):
        return await _as_deferred(self.source.lookup(spi))

    def seen(self, spi: int, **fields) -> bool:
        return any(sa.spi == spi and all(getattr(sa, k) == v for k, v in fields.items())
                   for sa in self.changes)


def _as_deferred(value):
    return value if isinstance(value, defer.Deferred) else defer.succeed(value)


def on_this_thread(function, *args) -> defer.Deferred:
    return defer.maybeDeferred(function, *args)


def start_hac(reactor, settings: DeliverySettings, store, node_settings=None) -> SaDelivery:
    """A HAC's SA delivery; ``node_settings`` builds the node (default: ``settings.node``)."""
    node = start_node(node_settings or settings.node, reactor, watchdog_jitter=0.5)
    delivery = SaDelivery(node, settings, store, reactor=reactor,
                          in_store_thread=on_this_thread)
    delivery.start()
    return delivery


def new_sa(store, *, instance: str = INSTANCE, owed: bool = True):
    """An SA as a HAC provisions it: with its push owed in the outbox (unclaimed), unless
    ``owed`` is false (then the HA must query it)."""
    keys = new_keys(SUITES["AES_128_CBC_SHA"])
    template = SecurityAssociation(
        spi=UNALLOCATED_SPI, suite="AES_128_CBC_SHA", mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey,
        validity_end=(datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0),
        scope=1, mn_id="mn@example.org", home_address6=HOA)
    return store.create(template, hac_instance=instance, home_agent=HomeAgent(HA, None, 7872),
                        outbox=Outbox(HA_HOST) if owed else None)


async def until(reactor, condition, what: str, limit: float = WAIT_LIMIT) -> None:
    await reactors.until(reactor, condition, what, limit)


def binding_status(ha: HaSide, sa: SecurityAssociation, mn: Mn | None = None) -> int:
    """The status of the BA the HA core sends for the MN's next BU under ``sa``."""
    now = time.time()
    if sa.spi not in ha.core.spis:
        ha.core.sa_found(sa.spi, sa, None, now)
    mn = mn or Mn(sa)
    reply = only(ha.core.datagram_received(*mn.care_of, mn.bu(), now), SendDatagram)
    return mn.ack(reply.data).status


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/sa.db") as opened:
        yield opened


def test_push_query_revoke_and_faults_direct(tmp_path, store):
    credentials = Credentials.make(tmp_path)
    ha_port = free_port()
    pushed = new_sa(store)
    elsewhere = new_sa(store, instance="hac-2", owed=False)  # nothing owed: the HA queries

    async def scenario(reactor):
        ha = HaSide(reactor, ha_settings(credentials, ha_port))
        settings = hac_settings(credentials, peers=[(HA_HOST, "127.0.0.1", ha_port)])
        hac = start_hac(reactor, settings, store)
        results = {}
        try:
            # Start: the HAC pushes what the outbox owes; the HA holds it without asking.
            await until(reactor, lambda: ha.seen(pushed.sa.spi), "the first push")
            results["cached"] = ha.source.lookup(pushed.sa.spi)
            mn = Mn(pushed.sa)
            results["accepted"] = binding_status(ha, pushed.sa, mn)
            # Unknown SPI: the HA asks, the HAC answers from its store.
            results["queried"] = await ha.lookup(elsewhere.sa.spi)
            results["missing"] = await ha.lookup(12345)
            # Revocation: the MN's next BU is answered with 176.
            results["revoke"] = await hac.revoke(pushed.sa.spi)
            results["revoke-unknown"] = await hac.revoke(54321)
            await until(reactor, lambda: ha.seen(pushed.sa.spi, revoked=True), "the revocation")
            results["after-revoke"] = binding_status(ha, pushed.sa, mn)
            # HA down: the push waits in the outbox until a HAC has a route again.
            await ha.source.close()
            await until(reactor, lambda: not hac.queue.usable_destinations(), "no route")
            late = new_sa(store)
            hac.deliver(late)
            await until(reactor, lambda: hac.counters.get("no-route", 0) >= 1, "no route")
            results["pending-while-down"] = (hac.pending, store.outbox_size())
            ha = HaSide(reactor, ha_settings(credentials, ha_port))
            await until(reactor, lambda: ha.seen(late.sa.spi), "the retried push")
            await until(reactor, lambda: hac.pending == 0, "the acknowledgement")
            results["by-ha"] = dict(hac.queue.by_home_agent)
            # HAC restarted: queries fail while it is down (a failure, not "no such SA":
            # the HA must not cache the SPI as unknown), then succeed from the store.
            await hac.stop()
            try:
                results["hac-down"] = await ha.lookup(elsewhere.sa.spi)
            except Exception as error:  # no route, or no answer in time
                results["hac-down"] = error
            hac = start_hac(reactor, settings, store)
            await until(reactor, lambda: HAC_HOST in ha.source.node.router.open_peers,
                        "the HAC reconnecting")
            results["hac-back"] = await ha.lookup(elsewhere.sa.spi)
        finally:
            await hac.stop()
            await ha.source.close()
        return results

    results = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert results["cached"] == pushed.sa  # a plain value: no round trip
    assert results["accepted"] == BindingAckStatus.ACCEPTED
    assert results["queried"] == elsewhere.sa
    assert results["missing"] is None
    assert results["revoke"] is True and results["revoke-unknown"] is False
    assert store.get(pushed.sa.spi).sa.revoked
    assert results["after-revoke"] == BindingAckStatus.REINIT_SA_WITH_HAC
    assert results["pending-while-down"] == (0, 1)  # owed in the store, not in memory
    by_ha = results["by-ha"]  # what mip6_hac_sa_deliveries_total shows
    assert by_ha[(HA_HOST, "pushed")] >= 2 and by_ha[(HA_HOST, "revoked")] == 1
    assert by_ha[(HA_HOST, "no-route")] >= 1
    assert store.outbox_size() == 0
    assert isinstance(results["hac-down"], RequestFailed), results["hac-down"]
    assert results["hac-back"] == elsewhere.sa


def test_push_refused_over_plain_tcp_without_the_insecure_option(tmp_path, store):
    credentials = Credentials.make(tmp_path)
    ha_port = free_port()
    record = new_sa(store)

    async def scenario(reactor):
        ha = HaSide(reactor, ha_settings(credentials, ha_port, insecure=True))
        tcp = hac_settings(credentials, peers=[(HA_HOST, "127.0.0.1", ha_port)], insecure=True)
        strict = DeliverySettings(NodeSettings(**{**tcp.node.__dict__, "insecure_tcp": False}),
                                  tcp.home_agents, retry_initial=0.2, retry_max=0.5)
        hac = start_hac(reactor, strict, store, node_settings=tcp.node)
        try:
            await until(reactor, lambda: HA_HOST in hac.node.router.open_peers, "the peer")
            assert hac.queue.usable_destinations() == []  # nothing is claimed for it
            hac.deliver(record)
            await until(reactor, lambda: hac.counters.get("refused-insecure", 0) >= 1,
                        "the refusal")
            await sleep(reactor, 0.5)  # polls that must not claim it
            return list(ha.changes), (hac.pending, store.outbox_size())
        finally:
            await hac.stop()
            await ha.source.close()

    changes, pending = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert changes == [] and pending == (0, 1)


def test_an_unacknowledged_revocation_is_sent_after_a_hac_restart(tmp_path, store):
    """Revoked while its HA is down, the HAC restarted: the new HAC sends the SA-Revoke
    from the outbox once the HA is back (and pushes what else was owed)."""
    credentials = Credentials.make(tmp_path)
    ha_port = free_port()
    revoked, owed = new_sa(store), new_sa(store)

    async def scenario(reactor):
        settings = hac_settings(credentials, peers=[(HA_HOST, "127.0.0.1", ha_port)])
        hac = start_hac(reactor, settings, store)
        results = {"revoke": await hac.revoke(revoked.sa.spi)}
        await sleep(reactor, 0.5)  # SA-Revoke tries that find no HA
        await hac.stop()
        results["owed-at-stop"] = store.outbox_size()
        hac = start_hac(reactor, settings, store)  # the restarted HAC
        ha = HaSide(reactor, ha_settings(credentials, ha_port))
        try:
            await until(reactor, lambda: ha.source.counters.get("revoked", 0) == 1,
                        "the SA-Revoke")
            await until(reactor, lambda: ha.seen(owed.sa.spi), "the owed push")
            await until(reactor, lambda: store.outbox_size() == 0, "the outbox emptied")
            results["queried"] = await ha.lookup(revoked.sa.spi)
        finally:
            await hac.stop()
            await ha.source.close()
        return results

    results = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert results["revoke"] is True and results["owed-at-stop"] == 2
    assert results["queried"].revoked


def test_through_freediameter_relay_with_agent_restart(tmp_path, store):
    hac_port, ha_port = free_port(), free_port()
    first = new_sa(store)
    elsewhere = new_sa(store, instance="hac-2", owed=False)
    peers = [PeerSpec(HAC_HOST, hac_port), PeerSpec(HA_HOST, ha_port)]
    with run_relay(tmp_path, peers, start=False) as relay:
        credentials = Credentials(relay.ca, relay.credentials[HAC_HOST],
                                  relay.credentials[HA_HOST])

        async def scenario(reactor):
            ha = HaSide(reactor, ha_settings(credentials, ha_port))
            hac = start_hac(reactor, hac_settings(credentials, listen=("127.0.0.1", hac_port)),
                            store)

            def start_relay():  # it waits for the daemon to listen: not on this reactor
                return threads.deferToThreadPool(reactor, reactor.getThreadPool(), relay.start)
            results = {}
            try:
                # Both nodes listen: the relay's first connections succeed (a refused one
                # is retried only seconds later).
                await start_relay()
                await until(reactor, lambda: ha.seen(first.sa.spi), "the push via the relay")
                results["queried"] = await ha.lookup(elsewhere.sa.spi)
                results["revoke"] = await hac.revoke(first.sa.spi)
                await until(reactor, lambda: ha.seen(first.sa.spi, revoked=True),
                            "the revocation via the relay")
                # The HA's answer is still on its way back through the relay: stopping the
                # relay before it arrives would leave the revocation pending too.
                await until(reactor, lambda: hac.pending == 0 and store.outbox_size() == 0,
                            "the acknowledgement of the revocation")
                # Agent restart: an SA pushed while it is down arrives once it is back.
                # SIGTERM without blocking this reactor, so both nodes answer the relay's
                # DPRs and it exits at once, instead of waiting for a SIGKILL.
                relay.process.terminate()
                await until(reactor, lambda: relay.process.poll() is not None,
                            "freeDiameterd exiting after its DPRs")
                await until(reactor, lambda: relay.identity not in hac.node.router.open_peers,
                            "the HAC noticing the relay is gone")
                late = new_sa(store)
                hac.deliver(late)
                await sleep(reactor, 1.0)
                results["pending-while-down"] = (hac.pending, store.outbox_size())
                await start_relay()
                await until(reactor, lambda: ha.seen(late.sa.spi), "the push after restart")
                await until(reactor, lambda: hac.pending == 0, "the acknowledgement")
            finally:
                await hac.stop()
                await ha.source.close()
            return results

        results = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
        log = relay.log()
    assert results["queried"] == elsewhere.sa, log
    assert results["revoke"] is True
    assert results["pending-while-down"] == (0, 1)


@contextmanager
def wireshark_data_dir():
    """A Wireshark data directory whose diameter/dictionary.xml includes ours.

    Wireshark 4.0 reads Diameter dictionaries only from its data directory, and honours
    WIRESHARK_DATA_DIR only when not run as root: so the directory is world-readable and
    tshark runs as ``nobody`` (see :func:`decoded`).
    """
    top = Path(tempfile.mkdtemp(prefix="aaa-mip6-wireshark-"))
    try:
        target = top / "diameter"
        shutil.copytree("/usr/share/wireshark/diameter", target)
        shutil.copy(Path(__file__).parents[2] / "etc" / "wireshark" / "aaa-mip6.xml", target)
        dictionary = target / "dictionary.xml"
        text = dictionary.read_text()
        text = text.replace('<!ENTITY Custom\t\t\tSYSTEM "Custom.xml">',
                            '<!ENTITY Custom\t\t\tSYSTEM "Custom.xml">\n'
                            '\t<!ENTITY aaamip6 SYSTEM "aaa-mip6.xml">', 1)
        text = text.replace("\t&Custom;", "\t&Custom;\n\t&aaamip6;", 1)
        assert "&aaamip6;" in text and "aaa-mip6.xml" in text
        dictionary.write_text(text)
        for path in (top, *top.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield top
    finally:
        shutil.rmtree(top)


def decoded(capture: Path, data_dir: Path, *options: str) -> str:
    """tshark as nobody over ``capture`` (fed on stdin) with our dictionary loaded."""
    with open(capture, "rb") as packets:
        return subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env",
             f"WIRESHARK_DATA_DIR={data_dir}", "HOME=/tmp", "tshark", "-r", "-", *options],
            stdin=packets, capture_output=True, text=True, check=True).stdout


def diameter_messages(capture: Path, data_dir: Path, port: int) -> list[dict[str, str]]:
    """Every Diameter message tshark decodes in ``capture`` (TCP ``port``), in order: the
    first value shown for each field, by field name.

    PDML has one ``diameter`` element per message; a frame (one TCP segment) may carry
    several, so a row per frame (``-T fields``) would mix their values.
    """
    pdml = decoded(capture, data_dir, "-d", f"tcp.port=={port},diameter", "-T", "pdml")
    messages = []
    for protocol in ElementTree.fromstring(pdml).iter("proto"):
        if protocol.get("name") == "diameter":
            fields: dict[str, str] = {}
            for field in protocol.iter("field"):
                fields.setdefault(field.get("name"), field.get("show"))
            messages.append(fields)
    return messages


def one_segment_capture(path: Path, port: int, payload: bytes) -> None:
    """A pcap file holding one IPv4 TCP segment to ``port`` that carries ``payload``."""
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 1, 0, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
    packet = ip + tcp + payload
    raw_ip = 101  # LINKTYPE_RAW
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, raw_ip)
                     + struct.pack("<IIII", 0, 0, len(packet), len(packet)) + packet)


def test_two_diameter_messages_in_one_segment_decode_as_two(tmp_path):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    application = SaApplication()
    port = free_port()
    requests = [application.query_request(f"{HA_HOST};{spi}", HA_HOST, HA_REALM, HAC_REALM,
                                          HAC_HOST, spi) for spi in (777, 778)]
    capture = tmp_path / "one-segment.pcap"
    one_segment_capture(capture, port, b"".join(map(encode_message, requests)))
    with wireshark_data_dir() as data_dir:
        messages = diameter_messages(capture, data_dir, port)
    assert [(m["diameter.cmd.code"], m["diameter.MIP-MN-HA-SPI"]) for m in messages] == [
        ("8388801", "777"), ("8388801", "778")]


def test_tshark_decodes_the_application(tmp_path, store):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    credentials = Credentials.make(tmp_path)
    ha_port = free_port()
    record = new_sa(store)
    capture = tmp_path / "sa.pcapng"
    tshark = Capture(capture, f"tcp port {ha_port}")

    async def scenario(reactor):
        ha = HaSide(reactor, ha_settings(credentials, ha_port, insecure=True))
        hac = start_hac(reactor, hac_settings(credentials, peers=[
            (HA_HOST, "127.0.0.1", ha_port)], insecure=True), store)
        try:
            await until(reactor, lambda: ha.seen(record.sa.spi), "the push")
            await ha.lookup(777)
            await hac.revoke(record.sa.spi)
            await until(reactor, lambda: ha.seen(record.sa.spi, revoked=True), "the revoke")
        finally:
            await hac.stop()
            await ha.source.close()

    try:
        tshark.mark()  # the capture is live
        run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
        tshark.mark()  # every packet sent before is in the file
    finally:
        tshark.stop()
    with wireshark_data_dir() as data_dir:
        messages = [message for message in diameter_messages(capture, data_dir, ha_port)
                    if int(message["diameter.cmd.code"]) >= 8388800]
        verbose = decoded(capture, data_dir, "-d", f"tcp.port=={ha_port},diameter", "-V",
                          "-Y", "diameter.cmd.code == 8388800")
    requests = {message["diameter.cmd.code"]: message for message in messages
                if message["diameter.flags.request"] in ("1", "True")}
    assert set(requests) == {"8388800", "8388801", "8388802"}, messages
    assert {message["diameter.applicationId"] for message in messages} == {"16809689"}
    push = requests["8388800"]
    assert push["diameter.MIP-MN-HA-SPI"] == str(record.sa.spi)
    assert push["diameter.MIP6-TLS-Ciphersuite"].replace(":", "") == "002f"
    assert push["diameter.MIP6-TLS-SA-Scope"] == "1"
    assert push["diameter.MIP6-TLS-SA-Revoked"] == "0"
    assert push["diameter.User-Name"] == "mn@example.org"
    sa = record.sa
    assert push["diameter.MIP-Session-Key"].replace(":", "") == (
        sa.mn_to_ha_ikey + sa.ha_to_mn_ikey + sa.mn_to_ha_ekey + sa.ha_to_mn_ekey).hex()
    assert requests["8388801"]["diameter.MIP-MN-HA-SPI"] == "777"
    assert "SA-Push" in verbose and "MIP6-TLS-SA-Validity-End" in verbose


def test_programs_push_and_revoke(tmp_path):
    """mip6-hac ([sa_delivery]) and mip6-ha ([diameter]) as programs; mip6-hac revoke."""
    setup = make_setup(tmp_path / "hac")
    credentials = Credentials.make(tmp_path)
    diameter_port = free_port()
    with open_store(setup.store_url) as store:
        keys = new_keys(SUITES["AES_128_CBC_SHA"])
        record = store.create(SecurityAssociation(
            spi=UNALLOCATED_SPI, suite="AES_128_CBC_SHA", mn_to_ha_ikey=keys.mn_to_ha_ikey,
            ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
            ha_to_mn_ekey=keys.ha_to_mn_ekey,
            validity_end=(datetime.now(timezone.utc) + timedelta(hours=1)).replace(
                microsecond=0),
            scope=1, mn_id="mn@example.org", home_address6=HOA),
            hac_instance="hac-programs", home_agent=HomeAgent(LOOPBACK6, None, 7872))
    tls = {"ca": str(credentials.ca.cert_path), "watchdog": 6}
    (tmp_path / "ha.toml").write_text(toml_text({"diameter": {
        "origin_host": HA_HOST, "origin_realm": HA_REALM, "destination_realm": HAC_REALM,
        "listen": f"127.0.0.1:{diameter_port}", "cert": str(credentials.ha.cert_path),
        "key": str(credentials.ha.key_path), **tls}}))
    control = tmp_path / "hac.sock"
    config = {**TEST_CONFIG, "sa_delivery": {
        "origin_host": HAC_HOST, "origin_realm": HAC_REALM, "destination_realm": HA_REALM,
        "peers": [f"{HA_HOST}=127.0.0.1:{diameter_port}"], "retry_initial": 0.2,
        "cert": str(credentials.hac.cert_path), "key": str(credentials.hac.key_path),
        "control_socket": str(control), **tls},
        "sa_delivery.home_agents": {'"::1"': HA_HOST}}
    ha = subprocess.Popen(
        [sys.executable, "-m", "ha.cli", "--listen", "[::1]:0", "--config",
         str(tmp_path / "ha.toml"), "--state", str(tmp_path / "ha.state")],
        stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + WAIT_LIMIT
        while port is None and time.monotonic() < deadline:
            match = re.search(r"listening on \[::1\]:(\d+)", ha.stderr.readline())
            port = int(match.group(1)) if match else None
        assert port, "mip6-ha did not start"
        with HacProcess(setup, config=config, ha="[::1]") as hac:
            # The listening socket is bound before the worker starts SA delivery, which
            # creates the control socket: wait for it, bounded.
            deadline = time.monotonic() + WAIT_LIMIT
            while not control.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert control.stat().st_mode & 0o777 == 0o600
            mn = SaEndpoint(record.sa, "mn")
            statuses = [bu_status(mn, port, 1)]
            revoke = subprocess.run(
                [sys.executable, "-m", "hac.cli", "revoke", "--spi", str(record.sa.spi),
                 "--config", str(hac.config_path)], capture_output=True, text=True, timeout=30)
            sequence = 2
            deadline = time.monotonic() + WAIT_LIMIT
            while statuses[-1] != BindingAckStatus.REINIT_SA_WITH_HAC:
                assert time.monotonic() < deadline, (statuses, hac.log_tail())
                statuses.append(bu_status(mn, port, sequence))
                sequence += 1
                time.sleep(0.1)
            unknown = subprocess.run(
                [sys.executable, "-m", "hac.cli", "revoke", "--spi", "7", "--control",
                 str(control)], capture_output=True, text=True, timeout=30)
    finally:
        ha.send_signal(signal.SIGTERM)
        ha.wait(timeout=20)
    assert statuses[0] == BindingAckStatus.ACCEPTED
    assert (revoke.returncode, revoke.stdout.strip()) == (0, f"revoked {record.sa.spi}")
    assert (unknown.returncode, unknown.stdout.strip()) == (1, "unknown 7")


def bu_status(endpoint: SaEndpoint, port: int, sequence: int) -> int:
    """Send one protected BU for HOA to the HA at [::1]:port; the BA's status."""
    next_header, payload = encode_binding_update_payload(
        HOA, LOOPBACK6, BindingUpdate(sequence, 150))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(endpoint.protect(PType.MOBILITY, payload, next_header), ("::1", port))
        data, _ = sock.recvfrom(2048)
    opened = endpoint.unprotect(data)
    return decode_binding_ack_payload(opened.next_header, opened.payload, LOOPBACK6)[1].status
