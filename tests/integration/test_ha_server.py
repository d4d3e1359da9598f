"""mip6-ha over real UDP on loopback: a protected BU/BA round trip, restart on the same store."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address

import pytest

from aaa_mip6.mobility.messages import BindingUpdate
from aaa_mip6.mobility.payloads import decode_binding_ack_payload, encode_binding_update_payload
from aaa_mip6.sa import SCOPE_ALL, HomeAgent, SecurityAssociation
from aaa_mip6.store import UNALLOCATED_SPI, open_store
from aaa_mip6.suites import SUITES, new_keys
from aaa_mip6.transform import PType, SaEndpoint
from mn.actions import Registered, Transmit
from mn.mobility import MobilityMachine

pytestmark = pytest.mark.integration

HA = IPv6Address("::1")
HOA = IPv6Address("2001:db8:1::100")
CN = IPv6Address("2001:db8:1::1")


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path}/sa.db"


def provision(store_url):
    keys = new_keys(SUITES["AES_128_CBC_SHA"])
    template = SecurityAssociation(
        spi=UNALLOCATED_SPI, suite="AES_128_CBC_SHA", mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey,
        validity_end=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1),
        scope=SCOPE_ALL, mn_id="mn@example.net", home_address6=HOA)
    with open_store(store_url) as store:
        return store.create(template, hac_instance="test", home_agent=None).sa


def start_ha_on(store_url, listen, *extra):
    """mip6-ha listening on every address of ``listen``: (process, ports, stderr lines so far)."""
    flags = [flag for address in listen for flag in ("--listen", address)]
    process = subprocess.Popen(
        [sys.executable, "-m", "ha.cli", *flags, "--store", store_url, "--log-level", "info",
         *extra],
        stderr=subprocess.PIPE, text=True)
    ports, lines = [], []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        match = re.search(r"listening on \[[^\]]+\]:(\d+)", line)
        if match:
            ports.append(int(match.group(1)))
            if len(ports) == len(listen):
                return process, ports, lines
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail("mip6-ha did not start")


def start_ha(store_url, *extra, port=0):
    process, [port], _ = start_ha_on(store_url, [f"[::1]:{port}"], *extra)
    return process, port


def stop_ha(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def register(endpoint, port, sequence):
    update = BindingUpdate(sequence, 150)
    next_header, payload = encode_binding_update_payload(HOA, HA, update)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(endpoint.protect(PType.MOBILITY, payload, next_header), ("::1", port))
        data, _ = sock.recvfrom(2048)
    opened = endpoint.unprotect(data)
    return decode_binding_ack_payload(opened.next_header, opened.payload, HA)


def test_bu_ba_round_trip_and_restart_on_the_same_store(store_url, tmp_path):
    sa = provision(store_url)
    mn = SaEndpoint(sa, "mn")
    process, port = start_ha(store_url, "--status-file", str(tmp_path / "status.json"))
    try:
        home_address, ack = register(mn, port, 1)
        assert home_address == HOA and ack.status == 0 and ack.lifetime_seconds == 600
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not (tmp_path / "status.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert '"registered": 1' in (tmp_path / "status.json").read_text()
    finally:
        stop_ha(process)
    assert oct(os.stat(tmp_path / "sa.db.ha-state").st_mode & 0o777) == "0o600"
    process, port = start_ha(store_url)
    try:
        _, ack = register(mn, port, 2)  # the reloaded SA accepts the MN's next BU
        assert ack.status == 0
    finally:
        stop_ha(process)


def ipv6_packet(source, destination, payload=b"ping"):
    header = bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([59, 64])
    return header + source.packed + destination.packed + payload


def test_mn_re_registers_at_once_after_an_ha_restart(store_url):
    sa = provision(store_url)
    process, port = start_ha(store_url)
    machine = MobilityMachine(sa, HomeAgent(HA, None, port))
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::1", 0))
    sock.settimeout(5)

    def send(actions):
        for action in actions:
            assert isinstance(action, Transmit), action
            sock.sendto(action.packet, (str(action.address), action.port))

    def receive():
        return machine.receive(sock.recvfrom(4096)[0], time.time())

    try:
        send(machine.register(HA, time.time()))
        [registered] = receive()
        assert isinstance(registered, Registered)
        stop_ha(process)
        process, _ = start_ha(store_url, port=port)  # same port, no bindings
        started = time.time()
        send([machine.encapsulate(ipv6_packet(HOA, CN), started)])
        send(receive())  # the Binding Error makes the MN send a BU at once
        [again] = receive()
        assert isinstance(again, Registered) and time.time() - started < 5
        assert machine.counters["binding-error"] == 1
        assert again.binding.registered_at > registered.binding.registered_at
    finally:
        sock.close()
        stop_ha(process)


def register_via(sock, endpoint, address, port, home_agent, sequence):
    """A BU to ``address``:``port``; (the BA's status, the address it came from)."""
    next_header, payload = encode_binding_update_payload(
        HOA, home_agent, BindingUpdate(sequence, 150))
    sock.sendto(endpoint.protect(PType.MOBILITY, payload, next_header), (address, port))
    data, (source, _) = sock.recvfrom(2048)
    opened = endpoint.unprotect(data)
    _, ack = decode_binding_ack_payload(opened.next_header, opened.payload, home_agent)
    return ack.status, source


def test_replies_leave_by_the_socket_the_datagram_came_in_on(store_url):
    sa = provision(store_url)
    mn = SaEndpoint(sa, "mn")
    home_agent = IPv4Address("127.0.0.1")
    process, ports, _ = start_ha_on(store_url, ["127.0.0.1:0", "127.0.0.2:0"],
                                    "--home-agent", str(home_agent))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    try:
        # the first BU also waits for the SA lookup: its BA still leaves by 127.0.0.2
        assert register_via(sock, mn, "127.0.0.2", ports[1], home_agent, 1) == (0, "127.0.0.2")
        assert register_via(sock, mn, "127.0.0.1", ports[0], home_agent, 2) == (0, "127.0.0.1")
        assert register_via(sock, mn, "127.0.0.2", ports[1], home_agent, 3) == (0, "127.0.0.2")
    finally:
        sock.close()
        stop_ha(process)


def test_wildcard_listen_warns_about_the_reply_source_address(store_url):
    process, _, lines = start_ha_on(store_url, ["[::]:0"], "--home-agent", "::1")
    process.kill()  # its reactor may not be running yet: no clean stop to wait for
    process.wait(timeout=20)
    warning = [line for line in lines if "wildcard" in line]
    assert warning and "WARNING" in warning[0] and "::1" in warning[0], lines
    process, _, lines = start_ha_on(store_url, ["[::1]:0"])
    process.kill()
    process.wait(timeout=20)
    assert not [line for line in lines if "wildcard" in line], lines


def test_config_errors_name_the_key(store_url):
    done = subprocess.run([sys.executable, "-m", "ha.cli", "--store", store_url],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "home_agent (--home-agent)" in done.stderr
    done = subprocess.run([sys.executable, "-m", "ha.cli", "--listen", "[::1]:1",
                           "--store", store_url, "--max-lifetime", "0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "max_lifetime (--max-lifetime)" in done.stderr


NETNS_SCENARIO = r'''
import json, socket, struct, sys
from ipaddress import IPv6Address
from aaa_mip6.mobility.messages import BindingUpdate
from aaa_mip6.mobility.payloads import decode_binding_ack_payload, encode_binding_update_payload
from aaa_mip6.store import open_store
from aaa_mip6.transform import PType, SaEndpoint

store_url, spi, ha_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HA, HOA, CN = IPv6Address("::1"), IPv6Address("2001:db8:1::100"), IPv6Address("2001:db8:1::1")
with open_store(store_url) as store:
    mn = SaEndpoint(store.get(spi).sa, "mn")

def udp6(source, destination, sport, dport, payload):
    length = 8 + len(payload)
    pseudo = source.packed + destination.packed + struct.pack("!I3xB", length, 17)
    data = pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    checksum = ~total & 0xFFFF or 0xFFFF
    header = struct.pack("!IHBB", 6 << 28, length, 17, 64) + source.packed + destination.packed
    return header + struct.pack("!HHHH", sport, dport, length, checksum) + payload

cn = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
cn.bind((str(CN), 9000))
cn.settimeout(10)
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.settimeout(10)
next_header, payload = encode_binding_update_payload(HOA, HA, BindingUpdate(1, 150))
sock.sendto(mn.protect(PType.MOBILITY, payload, next_header), ("::1", ha_port))
opened = mn.unprotect(sock.recvfrom(4096)[0])
status = decode_binding_ack_payload(opened.next_header, opened.payload, HA)[1].status
sock.sendto(mn.protect(PType.ENCRYPTED_IP, udp6(HOA, CN, 5000, 9000, b"ping"), 41), ("::1", ha_port))
data, (source, sport, *_) = cn.recvfrom(4096)
cn.sendto(b"pong:" + data, (source, sport))
back = mn.unprotect(sock.recvfrom(4096)[0])
print(json.dumps({"status": int(status), "cn_saw": [data.decode(), source, sport],
                  "back_next_header": back.next_header, "back_payload": back.payload[48:].decode(),
                  "back_source": str(IPv6Address(back.payload[8:24]))}))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and TUN")
def test_tun_forwarding_in_a_network_namespace(store_url):
    sa = provision(store_url)
    namespace = f"mip6ha{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        in_ns = ["ip", "netns", "exec", namespace]
        subprocess.run([*in_ns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*in_ns, "ip", "-6", "address", "add", "2001:db8:1::1/128", "dev", "lo"],
                       check=True)
        process = subprocess.Popen(
            [*in_ns, sys.executable, "-m", "ha.cli", "--listen", "[::1]:0", "--store", store_url,
             "--tun", "mip6home", "--tun-route", "2001:db8:1::/64"],
            stderr=subprocess.PIPE, text=True)
        try:
            port = None
            for line in process.stderr:
                match = re.search(r"listening on \[::1\]:(\d+)", line)
                if match:
                    port = int(match.group(1))
                    break
            assert port, "mip6-ha did not start"
            done = subprocess.run(
                [*in_ns, sys.executable, "-c", NETNS_SCENARIO, store_url, str(sa.spi), str(port)],
                capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            result = json.loads(done.stdout)
        finally:
            stop_ha(process)
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False)
    assert result["status"] == 0
    assert result["cn_saw"] == ["ping", str(HOA), 5000]  # decapsulated into the home network
    assert result["back_next_header"] == 41 and result["back_source"] == "2001:db8:1::1"
    assert result["back_payload"] == "pong:ping"  # the CN's reply came back through the tunnel
