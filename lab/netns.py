"""``mip6-lab up --netns``: MNs, a home agent and a correspondent in network namespaces (root).

Topology (documentation addresses only; ``i`` numbers the MNs from 1)::

    MN i  mna ---- 2001:db8:a:i::/64 ---------- ha-ai   HA   hac ---- 2001:db8:c::/64 ---- cn0  CN
          mnb ---- 198.51.100.4i/30 ----------- ha-bi  (TUN          198.51.100.248/30
          TUN mip6mn0: home address(es)                 mip6ha0: 2001:db8:1::/64, 192.0.2.0/P)

The IPv4 home pool 192.0.2.0/P is sized for the MNs (:func:`lab.loopback.home_pool4`).

The HA's own addresses 2001:db8::1 and 198.51.100.254 sit on its loopback, reached
over either access link; the HAC (same namespace, same SQLite store) listens on
[2001:db8::1]:4433. Each MN runs ``mip6-mn up`` with routes for the CN's prefixes
into its TUN interface, so ``ping`` and TCP from its home address go through the
protected tunnel; the HA runs ``mip6-ha --tun`` and the kernel forwards between its
TUN device and the CN. The run:

1. every MN registers over IPv6 (link a); ping the CN over IPv6 and IPv4 from the
   home addresses; open a TCP connection to the CN and echo data over it;
2. handover: link b (IPv4) comes up and link a goes down; ``mip6-mn`` notices the
   new care-of address and re-registers (IPv4 outer transport, same SA); ping again
   and carry on with the *same* TCP connection;
3. handover back to link a with a new IPv6 address; ping and TCP again;
4. stop everything (MNs de-register), delete the namespaces.

Fixed ports are fine here: every namespace is private to this run.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from aaa_mip6 import pki
from aaa_mip6.addresses import format_host_port
from aaa_mip6.iana import MIPV6TLS_PORT

from .common import CORRESPONDENT4, CORRESPONDENT6, HOA_PREFIX, MN_DOMAIN, MnResult, \
    check_output, directory_note, hac_settings, home_pool4, make_files, print_summary
from .processes import stop_process
from .servers.hac import toml_text

HA_ADDRESS6 = IPv6Address("2001:db8::1")
HA_ADDRESS4 = IPv4Address("198.51.100.254")
HA_PORT = MIPV6TLS_PORT
HAC_PORT = 4433
HAC_ENDPOINT = format_host_port(HA_ADDRESS6, HAC_PORT)  # the HAC listens here, the MNs dial it
CN_NETWORK6 = "2001:db8:c::/64"
CN_NETWORK4 = "198.51.100.248/30"  # the HA's side is .249, the CN .250
CN_GATEWAY4 = "198.51.100.249"
TCP_PORT = 5001
TCP_CHUNK = 256 * 1024  # octets echoed through the tunnel per phase
MAX_MNS = 60  # 198.51.100.0/24 in /30s, below the CN's /30 and the HA's .254
PINGS = 3
EVENT_TIMEOUT = 30.0  # seconds to wait for a registration (BU retransmissions included)
CLONE_NEWNET = 0x40000000


class LabError(Exception):
    """The namespace lab cannot run here, or a step of its set-up failed."""


def _script(name: str) -> str:
    """The console script next to this Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else name


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise LabError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def read_events(process: subprocess.Popen, events: queue.Queue) -> None:
    """Put each JSON line ``mip6-mn --json`` prints into ``events``; ``exited`` at its end."""
    for line in process.stdout:
        try:
            events.put(json.loads(line))
        except ValueError:
            continue
    events.put({"event": "exited"})


def accepts_tcp(host, port: int) -> bool:
    """Whether something listens on ``host``:``port`` (seen from this thread's namespace)."""
    try:
        socket.create_connection((str(host), port), timeout=0.5).close()
        return True
    except OSError:
        return False


def in_namespace(namespace: str, function: Callable):
    """``function()`` run by a thread that joined ``namespace``; its sockets stay there."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: queue.Queue = queue.Queue()

    def enter_and_run() -> None:
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {namespace}")
            finally:
                os.close(fd)
            result.put((True, function()))
        except BaseException as error:  # handed to the caller
            result.put((False, error))

    thread = threading.Thread(target=enter_and_run, daemon=True)
    thread.start()
    thread.join()
    ok, value = result.get()
    if not ok:
        raise value
    return value


class _Mn:
    """One MN namespace, its links and its ``mip6-mn up`` process."""

    def __init__(self, lab: NetnsLab, index: int):
        self.lab = lab
        self.index = index
        self.namespace = f"{lab.tag}-mn{index}"
        self.result = MnResult(f"mn{index}@{MN_DOMAIN}")
        self.process: subprocess.Popen | None = None
        self.events: queue.Queue = queue.Queue()
        self.home6: IPv6Address | None = None
        self.home4: IPv4Address | None = None
        self.tcp: socket.socket | None = None

    @property
    def access6(self) -> str:
        return f"2001:db8:a:{self.index:x}::"

    @property
    def access4(self) -> tuple[str, str]:
        """(HA side, MN side) of this MN's IPv4 /30."""
        base = 4 * self.index
        return f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"

    def ip(self, *arguments: str) -> None:
        _run("ip", "-n", self.namespace, *arguments)

    def wire(self) -> None:
        lab, index = self.lab, self.index
        _run("ip", "netns", "add", self.namespace)
        self.ip("link", "set", "lo", "up")
        lab.ha_ip("link", "add", f"ha-a{index}", "type", "veth", "peer", "name", "mna",
                  "netns", self.namespace)
        lab.ha_ip("link", "add", f"ha-b{index}", "type", "veth", "peer", "name", "mnb",
                  "netns", self.namespace)
        lab.ha_ip("address", "add", f"{self.access6}1/64", "dev", f"ha-a{index}", "nodad")
        lab.ha_ip("address", "add", f"{self.access4[0]}/30", "dev", f"ha-b{index}")
        for link in (f"ha-a{index}", f"ha-b{index}"):
            lab.ha_ip("link", "set", link, "up")
        self.use_link_a(f"{self.access6}2")

    def use_link_a(self, address: str) -> None:
        """Care-of address ``address`` on link a (IPv6); link b down."""
        self.ip("link", "set", "mna", "up")
        self.ip("address", "add", f"{address}/64", "dev", "mna", "nodad")
        self.ip("-6", "route", "replace", str(HA_ADDRESS6), "via", f"{self.access6}1")
        self.ip("link", "set", "mnb", "down")

    def use_link_b(self) -> None:
        """Care-of address on link b (IPv4); link a down (its addresses and routes go)."""
        ha_side, mn_side = self.access4
        self.ip("link", "set", "mnb", "up")
        self.ip("address", "replace", f"{mn_side}/30", "dev", "mnb")
        self.ip("-4", "route", "replace", str(HA_ADDRESS4), "via", ha_side)
        self.ip("link", "set", "mna", "down")
        self.ip("-6", "address", "flush", "dev", "mna")

    def start(self, files) -> None:
        psk_file = self.lab.directory / f"mn{self.index}.psk"
        pki.write_private(psk_file, files.psks[self.result.mn_id].hex().encode() + b"\n")
        log = open(self.lab.directory / f"mn{self.index}.log", "wb")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, _script("mip6-mn"), "up",
             "--hac", HAC_ENDPOINT, "--ca", str(files.ca.cert_path),
             "--id", self.result.mn_id, "--psk-file", str(psk_file), "--lifetime", "120",
             "--route", CN_NETWORK6, "--route", CN_NETWORK4, "--watch", "0.5", "--json"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
        log.close()
        threading.Thread(target=read_events, args=(self.process, self.events),
                         daemon=True).start()

    def wait_registered(self, care_of) -> dict:
        """The next "registered" event from ``care_of``; LabError on failure or timeout."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise LabError(f"no registration from {care_of} within {EVENT_TIMEOUT:g} s")
            if event["event"] in ("failed", "exited"):
                raise LabError(f"mip6-mn {event['event']}: {event.get('reason', 'see its log')}")
            if event["event"] == "registered":
                self.result.registrations += 1
                if ip_address(event["care-of-address"]) == ip_address(care_of):
                    return event

    def registered(self, event: dict) -> None:
        self.result.spi, self.result.suite = event["spi"], event["suite"]
        self.home6 = ip_address(event["home-address"])
        self.home4 = ip_address(event["home-address4"]) if event["home-address4"] else None
        self.result.home_address = str(self.home6)
        self.result.home_address4 = str(self.home4 or "")
        self.result.care_of.append(event["care-of-address"])

    def ping(self) -> None:
        """PINGS echo requests from each home address to the CN; count the replies."""
        for source, target in ((self.home6, CORRESPONDENT6), (self.home4, CORRESPONDENT4)):
            if source is None:
                continue
            done = subprocess.run(
                ["ip", "netns", "exec", self.namespace, "ping", "-n", "-q", "-c", str(PINGS),
                 "-i", "0.2", "-W", "3", "-I", str(source), str(target)],
                capture_output=True, text=True, check=False)
            self.result.echoes_sent += PINGS
            received = [line for line in done.stdout.splitlines() if "received" in line]
            if received:
                self.result.echoes_back += int(received[0].split(",")[1].split()[0])

    def tcp_echo(self) -> None:
        """Send TCP_CHUNK octets to the CN's echo server over one TCP connection (opened on
        first use, kept across handovers) and check they all come back."""
        if self.tcp is None:
            def connect():
                client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                client.settimeout(10)
                client.bind((str(self.home6), 0))
                client.connect((str(CORRESPONDENT6), TCP_PORT))
                return client
            self.tcp = in_namespace(self.namespace, connect)
        data = os.urandom(TCP_CHUNK)
        sender = threading.Thread(target=self.tcp.sendall, args=(data,), daemon=True)
        sender.start()
        echoed = bytearray()
        while len(echoed) < len(data):
            chunk = self.tcp.recv(65536)
            if not chunk:
                raise LabError("the CN closed the TCP connection")
            echoed += chunk
        sender.join()
        if bytes(echoed) != data:
            raise LabError("TCP data came back altered")
        self.lab.tcp_octets += 2 * len(data)

    def stop(self) -> None:
        if self.tcp is not None:
            self.tcp.close()
        if self.process is not None:
            stop_process(self.process)
            for event in _drain(self.events):
                if event.get("event") == "deregistered":
                    self.result.deregistered = True


def _drain(events: queue.Queue) -> list[dict]:
    drained = []
    while True:
        try:
            drained.append(events.get_nowait())
        except queue.Empty:
            return drained


class NetnsLab:
    """Namespaces, links, processes; :meth:`close` removes them all."""

    def __init__(self, directory: Path, count: int):
        self.directory = directory
        self.tag = f"m6lab{os.getpid() % 100000}"
        self.ha_namespace = f"{self.tag}-ha"
        self.cn_namespace = f"{self.tag}-cn"
        self.mns = [_Mn(self, index) for index in range(1, count + 1)]
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.tcp_octets = 0
        self._tcp_server: socket.socket | None = None

    def ha_ip(self, *arguments: str) -> None:
        _run("ip", "-n", self.ha_namespace, *arguments)

    def cn_ip(self, *arguments: str) -> None:
        _run("ip", "-n", self.cn_namespace, *arguments)

    def wire(self, pool4) -> None:
        for namespace in (self.ha_namespace, self.cn_namespace):
            _run("ip", "netns", "add", namespace)
            self.namespaces.append(namespace)
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
        self.ha_ip("address", "add", f"{HA_ADDRESS6}/128", "dev", "lo")
        self.ha_ip("address", "add", f"{HA_ADDRESS4}/32", "dev", "lo")
        _run("ip", "netns", "exec", self.ha_namespace, "sysctl", "-q", "-w",
             "net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1")
        self.ha_ip("link", "add", "hac", "type", "veth", "peer", "name", "cn0",
                   "netns", self.cn_namespace)
        self.ha_ip("address", "add", "2001:db8:c::1/64", "dev", "hac", "nodad")
        self.ha_ip("address", "add", f"{CN_GATEWAY4}/30", "dev", "hac")
        self.ha_ip("link", "set", "hac", "up")
        self.cn_ip("address", "add", f"{CORRESPONDENT6}/64", "dev", "cn0", "nodad")
        self.cn_ip("address", "add", f"{CORRESPONDENT4}/30", "dev", "cn0")
        self.cn_ip("link", "set", "cn0", "up")
        self.cn_ip("-6", "route", "add", HOA_PREFIX, "via", "2001:db8:c::1")
        self.cn_ip("-4", "route", "add", str(pool4), "via", CN_GATEWAY4)
        for mn in self.mns:
            self.namespaces.append(mn.namespace)
            mn.wire()

    def start_servers(self, files) -> None:
        settings = hac_settings(files, HAC_ENDPOINT, {
            "ip6": str(HA_ADDRESS6), "ip4": str(HA_ADDRESS4), "port": HA_PORT})
        settings["log.level"] = "info"  # its own log file: keep the bootstrap lines
        config = self.directory / "hac.toml"
        config.write_text(toml_text(settings))
        self.spawn(self.ha_namespace, "ha", [
            _script("mip6-ha"), "--listen", format_host_port(HA_ADDRESS6, HA_PORT),
            "--listen", format_host_port(HA_ADDRESS4, HA_PORT), "--home-agent", str(HA_ADDRESS6),
            "--store", files.store_url, "--tun", "mip6ha0", "--tun-route", HOA_PREFIX,
            "--tun-route", str(home_pool4(len(self.mns))),
            "--status-file", str(self.directory / "ha-status.json")])
        self.spawn(self.ha_namespace, "hac", [_script("mip6-hac"), "--config", str(config)])
        self._wait_listening(self.ha_namespace, HA_ADDRESS6, HAC_PORT, "mip6-hac")
        self._tcp_server = in_namespace(self.cn_namespace, self._listen_tcp)
        threading.Thread(target=self._serve_tcp, daemon=True).start()

    def spawn(self, namespace: str, name: str, command: list[str]) -> subprocess.Popen:
        with open(self.directory / f"{name}.log", "wb") as log:
            process = subprocess.Popen(["ip", "netns", "exec", namespace, *command],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def _wait_listening(self, namespace: str, address, port: int, what: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if in_namespace(namespace, lambda: accepts_tcp(address, port)):
                return
            time.sleep(0.1)
        raise LabError(f"{what} did not start listening; see its log in {self.directory}")

    @staticmethod
    def _listen_tcp() -> socket.socket:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((str(CORRESPONDENT6), TCP_PORT))
        server.listen(16)
        return server

    def _serve_tcp(self) -> None:
        """The CN's TCP echo service: one thread per connection."""
        while True:
            try:
                connection, _ = self._tcp_server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(connection,), daemon=True).start()

    def close(self) -> None:
        """Stop every process (MNs first, so they can de-register), delete the namespaces."""
        for mn in self.mns:
            mn.stop()
        if self._tcp_server is not None:
            self._tcp_server.close()
        for process in reversed(self.processes):
            stop_process(process)
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _echo(connection: socket.socket) -> None:
    with connection:
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            connection.sendall(data)


def _phase(mns: list[_Mn], name: str, step: Callable[[_Mn], None], out) -> None:
    """``step`` for each MN still without an error, recording failures; OutputClosed
    (which stops the run) as soon as nobody reads ``out``."""
    for mn in mns:
        check_output(out)
        if mn.result.error:
            continue
        try:
            step(mn)
        except (LabError, OSError) as error:
            mn.result.error = f"{name}: {error}"


def _check_ready() -> None:
    if os.geteuid() != 0:
        raise LabError("--netns needs root (network namespaces, TUN devices)")
    for tool in ("ip", "ping"):
        if shutil.which(tool) is None:
            raise LabError(f"--netns needs the {tool} command")
    if not os.path.exists("/dev/net/tun"):
        raise LabError("--netns needs /dev/net/tun")


def run_netns(directory: Path, count: int, out, keep: bool = False) -> list[MnResult]:
    """The namespace lab with ``count`` MNs; the per-MN results (LabError if it cannot run)."""
    _check_ready()
    if not 1 <= count <= MAX_MNS:
        raise LabError(f"--netns runs 1..{MAX_MNS} MNs")
    lab = NetnsLab(directory, count)
    files = make_files(directory, [mn.result.mn_id for mn in lab.mns], (str(HA_ADDRESS6),))
    try:
        lab.wire(home_pool4(count))
        lab.start_servers(files)
        print(f"mip6-lab: namespaces {lab.tag}-{{ha,cn,mn1..{count}}}; HAC [{HA_ADDRESS6}]:"
              f"{HAC_PORT}, HA [{HA_ADDRESS6}]:{HA_PORT} and {HA_ADDRESS4}:{HA_PORT} with TUN "
              f"mip6ha0, CN {CORRESPONDENT6} / {CORRESPONDENT4}; logs in "
              f"{directory_note(directory, keep)}",
              file=out, flush=True)
        for mn in lab.mns:
            mn.start(files)
        _phase(lab.mns, "register over IPv6",
               lambda mn: mn.registered(mn.wait_registered(f"{mn.access6}2")), out)
        _phase(lab.mns, "ping over IPv6", _Mn.ping, out)
        _phase(lab.mns, "TCP over IPv6", _Mn.tcp_echo, out)
        _phase(lab.mns, "handover to IPv4", _handover_to_ipv4, out)
        _phase(lab.mns, "ping over IPv4", _Mn.ping, out)
        _phase(lab.mns, "TCP over IPv4", _Mn.tcp_echo, out)
        _phase(lab.mns, "handover to a new IPv6 address", _handover_to_new_ipv6, out)
        _phase(lab.mns, "ping over IPv6 again", _Mn.ping, out)
        _phase(lab.mns, "TCP over IPv6 again", _Mn.tcp_echo, out)
    finally:
        lab.close()
    results = [mn.result for mn in lab.mns]
    extra = [f"TCP: {lab.tcp_octets} octets echoed on one connection per MN, kept across "
             f"both handovers"]
    status_file = directory / "ha-status.json"
    if status_file.exists():
        counters = json.loads(status_file.read_text())["counters"]
        extra.append("HA counters: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    print_summary(results, extra, out)
    return results


def _handover_to_ipv4(mn: _Mn) -> None:
    spi = mn.result.spi
    mn.use_link_b()
    mn.registered(mn.wait_registered(mn.access4[1]))
    mn.result.handover = spi is not None and mn.result.spi == spi


def _handover_to_new_ipv6(mn: _Mn) -> None:
    spi = mn.result.spi
    mn.use_link_a(f"{mn.access6}3")
    mn.registered(mn.wait_registered(f"{mn.access6}3"))
    mn.result.handover = mn.result.handover and mn.result.spi == spi
