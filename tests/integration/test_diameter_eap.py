"""EAP over Diameter end to end, HAC-less: backend -> freeDiameterd -> mip6-aaa-gw -> FreeRADIUS.

An :class:`mn.eap.peer.EapPeer` answers every EAP request; the backend (what the HAC
runs) relays its responses in DERs over TLS to a real freeDiameterd relay, which
routes them by Destination-Realm to ``mip6-aaa-gw`` (started as a process with its
command line), which relays them over RADIUS to a real FreeRADIUS 3.2. Every EAP
method of the RADIUS tests must succeed with the MSK the peer derived arriving at the
backend as EAP-Master-Session-Key; a wrong password must be rejected.

A second gateway on plain TCP (the only non-TLS leg, so tshark can read it without
keys) is captured with ``tshark -i lo``; its Diameter dissector must see DER and DEA
of application 5 with the AVPs we meant.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import shutil
import subprocess

import pytest

from aaa_mip6 import eap
from aaa_mip6.aaa import AaaSession, Accept, Challenge, Reject
from aaa_mip6.diameter.peer import LocalNode, WatchdogTimers
from aaa_mip6.twisted import tls
from aaa_mip6.twisted.diameter_eap import DiameterEapBackend
from aaa_mip6.twisted.diameter_node import DiameterNode
from lab.processes import free_port
from lab.servers.freediameter import PeerSpec, run_relay
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration.gateway import GW_HOST, GW_REALM, gateway_process
from tests.support import Capture, ReactorThread

pytestmark = pytest.mark.integration

HAC_HOST, HAC_REALM = "hac.example.org", "example.org"
TCP_GW_HOST = "gw-tcp.example.net"
READY_LIMIT = 30.0  # seconds for the Diameter connections to open (a loaded machine)
MAX_ROUNDS = 100
KEYED = {"mschapv2": 32, "pwd": 64, "tls": 64, "ttls": 64, "peap": 64}


def hac_node(runner: ReactorThread) -> DiameterNode:
    """The Diameter node a HAC runs its backend on (application 5)."""
    return DiameterNode(LocalNode(HAC_HOST, HAC_REALM, auth_applications=frozenset({5})),
                        reactor=runner.reactor, watchdog=WatchdogTimers(tw=6.0),
                        request_timeout=15.0)


@dataclasses.dataclass
class HacSide:
    """The backend a HAC would use and the reactor it runs on."""

    runner: ReactorThread
    backend: DiameterEapBackend


def run_eap(path: HacSide, peer: EapPeer, user_name: str):
    """Run ``peer`` through the backend to the end; return the final answer."""
    session = AaaSession(user_name, ipaddress.ip_address("2001:db8::7"), 40001)
    response = peer.receive(eap.EapPacket(eap.Code.REQUEST, 0, eap.Type.IDENTITY).encode())
    for _ in range(MAX_ROUNDS):
        answer = path.runner.call(path.backend.authenticate, session, response)
        if not isinstance(answer, Challenge):
            if answer.eap_payload:
                peer.receive(answer.eap_payload)
            return answer
        response = peer.receive(answer.eap_payload)
    raise AssertionError(f"no end after {MAX_ROUNDS} rounds")


@pytest.fixture(scope="module")
def through_relay(tmp_path_factory, freeradius):
    directory = tmp_path_factory.mktemp("diameter-eap")
    ports = {HAC_HOST: free_port(), GW_HOST: free_port()}
    peers = [PeerSpec(host, port) for host, port in ports.items()]
    with run_relay(directory, peers, start=False) as relay:
        own = relay.credentials[GW_HOST]
        with gateway_process(directory, freeradius, "--origin-host", GW_HOST,
                             "--listen", f"127.0.0.1:{ports[GW_HOST]}",
                             "--cert", str(own.cert_path), "--key", str(own.key_path),
                             "--peer-ca", str(relay.ca.cert_path)):
            runner = ReactorThread()
            node = hac_node(runner)
            backend = DiameterEapBackend(node, GW_REALM)
            hac = relay.credentials[HAC_HOST]
            runner.call(node.listen_tls, tls.ServerTLS(
                hac.cert_path, hac.key_path, client_ca_file=relay.ca.cert_path,
                require_client_cert=True), ports[HAC_HOST])
            try:
                # Both ends listen, so the relay's first connections succeed; it routes
                # once it has exchanged capabilities with both.
                relay.start()
                relay.wait_open(list(ports), READY_LIMIT)
                runner.call(lambda: node.when_open(relay.identity).addTimeout(
                    READY_LIMIT, runner.reactor))
                yield HacSide(runner, backend)
            finally:
                runner.call(backend.stop)
                runner.stop()


def _password(server, **changes) -> EapCredentials:
    return dataclasses.replace(EapCredentials(
        server.user, password=server.password, anonymous_identity=server.anonymous_identity,
        ca_cert=server.ca_cert), **changes)


def _credentials(server, method: str, phase2: str | None) -> tuple[EapCredentials, str]:
    """(credentials, outer identity) for ``method``."""
    if method == "tls":
        return EapCredentials(server.tls_user, client_cert=server.client_cert,
                              client_key=server.client_key, ca_cert=server.ca_cert), \
            server.tls_user
    if method in ("ttls", "peap"):
        return _password(server, phase2=phase2), server.anonymous_identity
    return EapCredentials(server.user, server.password), server.user


@pytest.mark.parametrize("method, phase2", [
    ("md5", None), ("gtc", None), ("mschapv2", None), ("pwd", None), ("tls", None),
    ("ttls", "pap"), ("ttls", "mschapv2"), ("peap", None)])
def test_every_method_succeeds_with_equal_msks(through_relay, freeradius, method,
                                               phase2):
    credentials, outer = _credentials(freeradius, method, phase2)
    peer = EapPeer(method, credentials)
    answer = run_eap(through_relay, peer, outer)
    assert isinstance(answer, Accept) and peer.success
    if method in KEYED:
        assert answer.msk is not None and len(answer.msk) == KEYED[method]
        assert answer.msk == peer.msk
    else:
        assert answer.msk is None and peer.msk is None
    assert answer.attributes["home_address_ip6"] == ipaddress.IPv6Address(
        freeradius.framed_ipv6_address)
    assert answer.attributes["home_address_ip4"] == ipaddress.IPv4Address(
        freeradius.framed_ip_address)


@pytest.mark.parametrize("method, phase2", [("md5", None), ("mschapv2", None),
                                            ("ttls", "pap")])
def test_wrong_password_is_rejected(through_relay, freeradius, method, phase2):
    credentials, outer = _credentials(freeradius, method, phase2)
    peer = EapPeer(method, dataclasses.replace(credentials, password="wrong-password"))
    answer = run_eap(through_relay, peer, outer)
    assert isinstance(answer, Reject) and peer.failure and not peer.success


# --- the captured TCP leg -------------------------------------------------------------

TSHARK_FIELDS = ["diameter.cmd.code", "diameter.applicationId", "diameter.flags.request",
                 "diameter.Result-Code", "diameter.Session-Id", "diameter.Auth-Request-Type",
                 "diameter.State", "diameter.EAP-Payload", "diameter.EAP-Master-Session-Key",
                 "diameter.MIP-Mobile-Node-Address"]


def test_tshark_decodes_der_and_dea(tmp_path, freeradius):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    port = free_port()
    capture = tmp_path / "diameter.pcapng"
    tshark = Capture(capture, f"tcp port {port}")
    try:
        tshark.mark()  # the capture is live
        with gateway_process(tmp_path, freeradius, "--origin-host", TCP_GW_HOST,
                             "--insecure-tcp", "--listen", f"127.0.0.1:{port}"):
            runner = ReactorThread()
            node = hac_node(runner)
            backend = DiameterEapBackend(node, GW_REALM)
            try:
                runner.call(node.connect, TCP_GW_HOST, "127.0.0.1", port)
                runner.call(lambda: node.when_open(TCP_GW_HOST).addTimeout(
                    READY_LIMIT, runner.reactor))
                peer = EapPeer("mschapv2", EapCredentials(freeradius.user, freeradius.password))
                answer = run_eap(HacSide(runner, backend), peer, freeradius.user)
            finally:
                runner.call(backend.stop)
                runner.stop()
        tshark.mark()  # every packet sent before is in the file
    finally:
        tshark.stop()
    assert isinstance(answer, Accept) and answer.msk == peer.msk

    fields = subprocess.run(
        ["tshark", "-r", str(capture), "-d", f"tcp.port=={port},diameter", "-Y",
         "diameter.cmd.code == 268", "-T", "fields", "-E", "separator=|",
         *[option for field in TSHARK_FIELDS for option in ("-e", field)]],
        capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(TSHARK_FIELDS, line.split("|"))) for line in fields.splitlines()]
    requests = [row for row in rows if row["diameter.flags.request"] in ("1", "True")]
    answers = [row for row in rows if row not in requests]
    assert len(requests) == len(answers) >= 3, fields  # identity, challenge/response, success
    assert {row["diameter.applicationId"] for row in rows} == {"5"}
    assert {row["diameter.Auth-Request-Type"] for row in rows} == {"3"}
    assert len({row["diameter.Session-Id"] for row in rows}) == 1
    assert all(row["diameter.EAP-Payload"] for row in requests)
    assert [row["diameter.Result-Code"] for row in answers] == \
        ["1001"] * (len(answers) - 1) + ["2001"]
    for answer_row, next_request in zip(answers, requests[1:]):
        assert answer_row["diameter.State"] and \
            next_request["diameter.State"] == answer_row["diameter.State"]
    final = answers[-1]
    assert final["diameter.EAP-Master-Session-Key"].replace(":", "") == answer.msk.hex()
    assert final["diameter.MIP-Mobile-Node-Address"]
