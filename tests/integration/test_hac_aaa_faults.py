"""AAA faults through the real HAC shell (hac.server in this process, on a fresh reactor):
FreeRADIUS stopped mid-run -> 503 with retry-after and nothing left behind; a dead primary
-> the secondary answers; garbage and spoofed RADIUS replies are ignored (fake server),
and the fake's AAA attributes (home address and home link prefix) reach the MN; both ends
of a bootstrap whose first response follows an AAA round set TCP_NODELAY."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pyrad import packet as pyrad_packet
from twisted.internet import tcp
from twisted.internet.task import deferLater

from aaa_mip6 import eap, pki
from aaa_mip6.twisted.tls import ClientTLS
from hac.assemble import assemble_hac
from hac.config import load_config
from hac.server import HacProtocol, HacServer
from lab.processes import free_port
from lab.reactors import run_on_fresh_reactor
from lab.servers.freeradius import running_freeradius
from lab.servers.hac import HA_ADDRESS, HOA_PREFIX, make_setup
from mn import client
from mn.bootstrap import BootstrapFailed, EapBootstrap
from mn.eap import EapCredentials
from mn.eap.md5 import chap_response
from mn.eap.peer import EapPeer
from tests.unit.radius_fakes import SECRET, FakeRadiusServer, reply_to

pytestmark = pytest.mark.integration

FAST_RADIUS = {"radius.timeout": 0.3, "radius.max_timeout": 0.3, "radius.transmissions": 1,
               "radius.dead_after": 1, "radius.hold_down": 30.0}
FAKE_USER = "mn1@example.org"
FAKE_PASSWORD = "fake-password"
FAKE_CHALLENGE = bytes(range(16))
FAKE_HOME = ipaddress.IPv6Address("2001:db8:5::10")
FAKE_PREFIX = ipaddress.IPv6Network("2001:db8:5::/64")


def hac_config(directory: Path, servers: list[str], secret: bytes, **settings):
    setup = make_setup(directory)
    secret_file = directory / "radius.secret"
    pki.write_private(secret_file, secret + b"\n")
    overrides = {"listen": "127.0.0.1:0", "tls.cert": str(setup.server.cert_path),
                 "tls.key": str(setup.server.key_path),
                 "credentials.psk_file": str(setup.psk_file), "store.url": setup.store_url,
                 "home_agents.addresses": [HA_ADDRESS], "bootstrap.hoa_prefix": HOA_PREFIX,
                 "radius.servers": servers, "radius.secret_file": str(secret_file),
                 **FAST_RADIUS, **settings}
    return setup, load_config(None, overrides)


async def eap_bootstrap(reactor, setup, port: int, credentials: EapCredentials):
    machine = EapBootstrap(credentials.identity, EapPeer("md5", credentials))
    tls = ClientTLS("127.0.0.1", setup.ca.cert_path)
    return await client.bootstrap(reactor, tls, port, machine, timeout=20)


async def settle(reactor, server: HacServer) -> None:
    """Let closing connections finish (a few reactor turns), bounded."""
    for _ in range(100):
        if server.connections == 0:
            return
        await deferLater(reactor, 0.02, lambda: None)


def stop_radius(radius) -> None:
    """SIGTERM the FreeRADIUS this test started: the process whose -d is its config dir."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-d" in argv and str(radius.config_dir).encode() in argv:
            os.kill(int(cmdline.parent.name), signal.SIGTERM)
            return
    raise RuntimeError("the test's FreeRADIUS is not running")


def test_freeradius_stopped_mid_run_gives_503_with_retry_after(tmp_path):
    with running_freeradius(tmp_path / "radius") as radius:
        setup, config = hac_config(tmp_path / "hac", [f"{radius.host}:{radius.port}"],
                                   radius.secret)
        credentials = EapCredentials(radius.user, radius.password)

        async def scenario(reactor):
            server = assemble_hac(config, reactor)
            port = server.listen().getHost().port
            try:
                first = await eap_bootstrap(reactor, setup, port, credentials)
                stop_radius(radius)
                try:
                    await eap_bootstrap(reactor, setup, port, credentials)
                except BootstrapFailed as failure:
                    await settle(reactor, server)
                    return first, failure, server.connections, server.aaa
            finally:
                await server.stop()

        first, failure, connections, aaa = run_on_fresh_reactor(scenario)
    assert first.sa.spi
    assert (failure.reason, failure.status, failure.authenticated) == ("status", 503, True)
    now = datetime.now(timezone.utc)
    assert now < failure.retry_after <= now + timedelta(seconds=31)
    assert connections == 0  # no connection left open
    assert aaa._identifiers.outstanding() == 0 and not aaa._pending  # no RADIUS request left
    assert aaa.counters["unavailable"] == 1


def test_a_dead_primary_fails_over_to_the_secondary(tmp_path, freeradius):
    dead = f"127.0.0.1:{free_port('127.0.0.1', socket.SOCK_DGRAM)}"
    setup, config = hac_config(tmp_path, [dead, f"{freeradius.host}:{freeradius.port}"],
                               freeradius.secret)

    async def scenario(reactor):
        server = assemble_hac(config, reactor)
        port = server.listen().getHost().port
        try:
            credentials = EapCredentials(freeradius.user, freeradius.password)
            results = [await eap_bootstrap(reactor, setup, port, credentials) for _ in range(2)]
            return results, dict(server.aaa.counters)
        finally:
            await server.stop()

    results, counters = run_on_fresh_reactor(scenario)
    assert all(result.sa.spi for result in results)
    assert counters["server-dead"] == 1  # the second bootstrap went straight to the secondary
    assert results[0].bootstrap.home_address6 == ipaddress.IPv6Address(
        freeradius.framed_ipv6_address)


def md5_server(request):
    """An EAP-MD5 server whose every reply is preceded by garbage and a spoofed copy."""
    payload = b"".join(request.get(79, []))
    packet = eap.decode(payload)
    if packet.type == eap.Type.IDENTITY:
        challenge = eap.EapPacket(eap.Code.REQUEST, (packet.identifier + 1) % 256,
                                  eap.Type.MD5_CHALLENGE, bytes([16]) + FAKE_CHALLENGE)
        genuine = reply_to(request, pyrad_packet.AccessChallenge, challenge.encode(),
                           State=b"md5-round")
    elif packet.data[1:17] == chap_response(packet.identifier, FAKE_PASSWORD.encode(),
                                            FAKE_CHALLENGE):
        success = eap.EapPacket(eap.Code.SUCCESS, packet.identifier).encode()
        prefix = bytes([FAKE_PREFIX.prefixlen]) + FAKE_PREFIX.network_address.packed
        genuine = reply_to(request, pyrad_packet.AccessAccept, success,
                           Framed_IPv6_Address=str(FAKE_HOME))
        genuine[genuine.dict["MIP6-Home-Link-Prefix"].code] = [prefix]
    else:
        genuine = reply_to(request, pyrad_packet.AccessReject,
                           eap.EapPacket(eap.Code.FAILURE, packet.identifier).encode())
    spoofed = reply_to(request, pyrad_packet.AccessAccept,
                       eap.EapPacket(eap.Code.SUCCESS, packet.identifier).encode())
    spoofed.secret = b"not the shared secret"
    return [b"\x02\x00garbage", spoofed, genuine]


def bootstrap_via_fake_md5_server(tmp_path, **settings):
    """One EAP-MD5 bootstrap through an in-process HAC relaying to :func:`md5_server`:
    (result, the HAC's RADIUS counters, the requests the fake received, the HAC's port)."""
    async def scenario(reactor):
        fake = FakeRadiusServer(md5_server)
        listening = reactor.listenUDP(0, fake, interface="127.0.0.1")
        setup, config = hac_config(tmp_path, [f"127.0.0.1:{listening.getHost().port}"], SECRET,
                                   **settings)
        server = assemble_hac(config, reactor)
        port = server.listen().getHost().port
        try:
            result = await eap_bootstrap(reactor, setup, port,
                                         EapCredentials(FAKE_USER, FAKE_PASSWORD))
            return result, dict(server.aaa.counters), fake.received, port
        finally:
            await server.stop()
            await listening.stopListening()

    return run_on_fresh_reactor(scenario)


def test_garbage_and_spoofed_replies_are_ignored_and_aaa_attributes_reach_the_mn(tmp_path):
    result, counters, received, hac_port = bootstrap_via_fake_md5_server(
        tmp_path, **{"radius.timeout": 2.0, "radius.max_timeout": 2.0})
    assert result.bootstrap.home_address6 == FAKE_HOME
    assert result.bootstrap.home_prefix6 == FAKE_PREFIX
    assert counters["ignored-bad-authenticator"] == 2  # one spoofed copy per round
    assert counters["ignored-malformed"] == 2
    request = received[0]
    assert request["User-Name"] == [FAKE_USER]
    # the MN's TLS source, host:port: an ephemeral port of the MN, not the HAC's own
    host, _, source_port = request["Calling-Station-Id"][0].rpartition(":")
    assert host == "127.0.0.1" and 1024 <= int(source_port) <= 65535
    assert int(source_port) != hac_port


def test_both_ends_set_tcp_nodelay_so_a_response_after_an_aaa_round_is_not_held(
        tmp_path, monkeypatch):
    # With eap.identity_from_mn_id the HAC's first response follows a RADIUS round trip,
    # behind its unacknowledged TLS session tickets: with Nagle on it waited for the MN's
    # delayed ACK (~40 ms a bootstrap). The real sockets of a real bootstrap must say so.
    nodelay = {}

    def recording(cls, end):
        made = getattr(cls, "connectionMade")

        def connection_made(self):
            made(self)
            transport = self.transport
            while not isinstance(transport, tcp.Connection):  # below TLS and any wrapper
                transport = transport.transport
            nodelay[end] = transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

        monkeypatch.setattr(cls, "connectionMade", connection_made)

    recording(HacProtocol, "hac")
    recording(client._BootstrapProtocol, "mn")

    result, _, _, _ = bootstrap_via_fake_md5_server(tmp_path,
                                                    **{"eap.identity_from_mn_id": True})
    assert result.sa.mn_id == FAKE_USER
    assert nodelay["hac"] and nodelay["mn"]
