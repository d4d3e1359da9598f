"""``mip6-lab``: a HAC, a home agent and mobile nodes on this machine, end to end.

``mip6-lab up`` (the README's ``make lab``) runs everything in one process on the
loopback interface, on embedded defaults: a generated CA and HAC certificate,
one PSK per MN and a SQLite store in a temporary directory. Each MN bootstraps
over TLS, registers over ``::1`` (protected BU/BA), pings a correspondent on the
home network and the next MN's home address (IPv6, and IPv4 through its RFC 5555
IPv4 home address), moves to ``127.0.0.1`` (a handover that also switches the
outer transport to IPv4, same SA), pings again and de-registers. The HA's home
network is :class:`SimulatedHomeNetwork` in place of a TUN device: a correspondent
host answers echo requests, and packets for other addresses are routed back to
the HA as a kernel would route a home address back into the TUN. The run prints
one line per MN and totals; the exit status is 0 only if every MN succeeded.

Every MN runs at once, but the lab keeps at most :data:`ECHO_WINDOW` echo requests in
flight: the HA's UDP socket queues some 250 small datagrams at Linux's default
receive buffer (net.core.rmem_default), and what does not fit the kernel drops
unseen. Sent all at once, 12 echoes from each of 22 MNs did not fit. A window of 32
puts at most 64 datagrams (requests, and MNs' replies to each other) in that queue.
The summary shows kernel drops at the HA's sockets, so a failure says why.

``mip6-lab up --netns`` (root) uses real namespaces and kernel tunnels instead:
see :mod:`aaa_mip6.labnet`.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import shutil
import socket
import struct
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from pathlib import Path

from . import pki
from .iana import NEXT_HEADER_ICMPV6
from .program import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, add_version_flag, fail, \
    raise_open_file_limit

PROGRAM = "mip6-lab"
MN_DOMAIN = "lab.example"
HAC_NAME = "hac.lab.example"
MAX_MNS = 200
HOA_PREFIX = "2001:db8:1::/64"
HOA_SPACE4 = IPv4Network("192.0.2.0/24")  # the IPv4 home pool is the start of it, sized from N
CORRESPONDENT6 = IPv6Address("2001:db8:c::2")  # a host behind the HA (home network side)
CORRESPONDENT4 = IPv4Address("198.51.100.250")  # outside every home pool
ECHOES = 3  # echo requests per destination and phase
ECHO_WINDOW = 32  # echo requests in flight in the whole loopback lab (module docstring)
REPLY_TIMEOUT = 5.0  # seconds to wait for the reply to one echo request
STEP_TIMEOUT = 15.0  # seconds for one bootstrap or registration
FILES_PER_MN = 4  # open files per loopback MN: its TLS connection (both ends), its UDP
#                   socket, with room to spare (200 MNs peaked at 424 files in all)
FILES_BASE = 64  # the HAC, the HA, the store and the interpreter itself

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
_ICMP_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence


# --------------------------------------------------------------------------- echo packets


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class Echo:
    """An ICMP or ICMPv6 echo request or reply, as the lab sends and checks them."""

    source: IPv4Address | IPv6Address
    destination: IPv4Address | IPv6Address
    identifier: int
    sequence: int
    data: bytes = b""
    reply: bool = False

    def packet(self) -> bytes:
        """The whole IP packet with correct checksums."""
        if self.source.version == 6:
            kind = ICMPV6_ECHO_REPLY if self.reply else ICMPV6_ECHO_REQUEST
            message = _ICMP_HEADER.pack(kind, 0, 0, self.identifier, self.sequence) + self.data
            pseudo = (self.source.packed + self.destination.packed
                      + struct.pack("!I3xB", len(message), NEXT_HEADER_ICMPV6))
            message = _with_checksum(message, internet_checksum(pseudo + message))
            header = struct.pack("!IHBB", 6 << 28, len(message), NEXT_HEADER_ICMPV6, 64)
            return header + self.source.packed + self.destination.packed + message
        kind = ICMP_ECHO_REPLY if self.reply else ICMP_ECHO_REQUEST
        message = _ICMP_HEADER.pack(kind, 0, 0, self.identifier, self.sequence) + self.data
        message = _with_checksum(message, internet_checksum(message))
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(message), 0, 0, 64, 1, 0,
                             self.source.packed, self.destination.packed)
        header = header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:]
        return header + message

    def answer(self) -> Echo:
        return Echo(self.destination, self.source, self.identifier, self.sequence, self.data,
                    reply=True)

    @classmethod
    def parse(cls, packet: bytes) -> Echo | None:
        """The echo in ``packet``, or None for anything else (or a bad checksum)."""
        version = packet[0] >> 4 if packet else 0
        if version == 6 and len(packet) >= 48 and packet[6] == NEXT_HEADER_ICMPV6:
            source, destination = IPv6Address(packet[8:24]), IPv6Address(packet[24:40])
            message = packet[40:]
            requests = {ICMPV6_ECHO_REQUEST: False, ICMPV6_ECHO_REPLY: True}
        elif version == 4 and len(packet) >= 28 and packet[9] == 1:
            length = (packet[0] & 0x0F) * 4
            source, destination = IPv4Address(packet[12:16]), IPv4Address(packet[16:20])
            message = packet[length:]
            requests = {ICMP_ECHO_REQUEST: False, ICMP_ECHO_REPLY: True}
        else:
            return None
        if len(message) < _ICMP_HEADER.size:
            return None
        kind, _, _, identifier, sequence = _ICMP_HEADER.unpack_from(message)
        if kind not in requests:
            return None
        echo = cls(source, destination, identifier, sequence, bytes(message[8:]), requests[kind])
        rebuilt = echo.packet()
        return echo if rebuilt == bytes(packet[:len(rebuilt)]) else None


def _with_checksum(message: bytes, checksum: int) -> bytes:
    return message[:2] + checksum.to_bytes(2, "big") + message[4:]


class SimulatedHomeNetwork:
    """The HA's home network in the loopback lab, with the interface of its TUN device.

    What the HA writes is handled at once: an echo request to one of ``hosts`` is
    answered; a packet to any other address is routed back to the HA, as a kernel
    routes a packet for a home address back into the TUN. Replies reach the HA
    through a socket pair, so the reactor reads them like packets from a TUN.
    """

    def __init__(self, hosts):
        self.hosts = frozenset(hosts)
        self.answered = 0
        self._ha_end, self._network_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._ha_end.setblocking(False)
        self._network_end.setblocking(False)

    def fileno(self) -> int:
        return self._ha_end.fileno()

    def read_batch(self) -> list[bytes]:
        packets = []
        while True:
            try:
                packets.append(self._ha_end.recv(65535))
            except BlockingIOError:
                return packets

    def write(self, packet: bytes) -> bool:
        echo = Echo.parse(packet)
        if echo is not None and echo.destination in self.hosts:
            if echo.reply:
                return True
            self.answered += 1
            packet = echo.answer().packet()
        try:
            self._network_end.send(packet)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        self._ha_end.close()
        self._network_end.close()


# --------------------------------------------------------------------------- set-up


def home_pool4(count: int) -> IPv4Network:
    """The smallest subnet at the start of 192.0.2.0/24 with a host address for each of
    ``count`` MNs (the HAC never assigns a subnet's network and broadcast addresses)."""
    for prefix in range(30, HOA_SPACE4.prefixlen - 1, -1):
        pool = IPv4Network((HOA_SPACE4.network_address, prefix))
        if pool.num_addresses - 2 >= count:
            return pool
    raise ValueError(f"{count} MNs do not fit in {HOA_SPACE4}")


@dataclass
class LabFiles:
    """What the lab generates: a CA, the HAC's certificate, PSKs, the store."""

    directory: Path
    ca: pki.Identity
    hac: pki.Identity
    psk_file: Path
    psks: dict[str, bytes] = field(repr=False)
    store_url: str
    pool4: IPv4Network


def make_files(directory: Path, mn_ids: list[str], hac_addresses: tuple[str, ...]) -> LabFiles:
    """Generate the CA, a HAC certificate naming ``hac_addresses``, one PSK per MN; the
    IPv4 home pool is sized for these MNs."""
    ca = pki.make_ca(directory, common_name="mip6-lab CA")
    hac = pki.make_cert(directory, ca, "hac", dns_names=(HAC_NAME,), ip_addresses=hac_addresses)
    psks = {mn_id: os.urandom(16) for mn_id in mn_ids}
    psk_file = directory / "psk.txt"
    pki.write_private(psk_file, "".join(f"{nai} {key.hex()}\n" for nai, key in psks.items())
                      .encode())
    return LabFiles(directory, ca, hac, psk_file, psks, f"sqlite:///{directory / 'sa.db'}",
                    home_pool4(len(mn_ids)))


def hac_settings(files: LabFiles, listen: str, home_agent: dict) -> dict:
    """The HAC's settings (dotted keys of hac.config) for the lab."""
    return {
        "listen": listen,
        "tls.cert": str(files.hac.cert_path),
        "tls.key": str(files.hac.key_path),
        "credentials.psk_file": str(files.psk_file),
        "store.url": files.store_url,
        "home_agents.addresses": [home_agent],
        "bootstrap.hoa_prefix": HOA_PREFIX,
        "bootstrap.hoa_pool4": str(files.pool4),
        "limits.rate": 1_000_000.0,
        "limits.burst": 1_000_000,
        "log.level": "warning",
    }


# --------------------------------------------------------------------------- results


@dataclass
class MnResult:
    """What one MN achieved; ``error`` is set at the first step that failed."""

    mn_id: str
    spi: int | None = None
    suite: str = ""
    home_address: str = ""
    home_address4: str = ""
    care_of: list[str] = field(default_factory=list)
    registrations: int = 0
    echoes_sent: int = 0
    echoes_back: int = 0
    handover: bool = False
    deregistered: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return (not self.error and self.registrations >= 2 and self.handover
                and self.echoes_sent > 0 and self.echoes_back == self.echoes_sent
                and self.deregistered)


def print_summary(results: list[MnResult], extra: list[str], out=sys.stdout) -> None:
    """One row per MN, then totals."""
    columns = ("MN", "SPI", "suite", "home address", "IPv4 home", "care-of path",
               "BAs", "echo", "result")
    rows = [(r.mn_id, str(r.spi or "-"), r.suite or "-", r.home_address or "-",
             r.home_address4 or "-", " -> ".join(r.care_of) or "-", str(r.registrations),
             f"{r.echoes_back}/{r.echoes_sent}",
             "OK" if r.ok else f"FAILED: {r.error or 'see row'}")
            for r in results]
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    for row in (columns, *rows):
        print("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip(), file=out)
    passed = sum(r.ok for r in results)
    print(f"totals: {passed}/{len(results)} MNs OK, "
          f"{sum(r.echoes_back for r in results)}/{sum(r.echoes_sent for r in results)} "
          f"echo replies, {sum(r.registrations for r in results)} registrations", file=out)
    for line in extra:
        print(line, file=out)


# --------------------------------------------------------------------------- loopback lab


class EchoesMissing(Exception):
    """Some echo requests of one MN got no reply within REPLY_TIMEOUT."""

    def __init__(self, missing: Counter, sent: Counter):
        super().__init__("no reply to " + ", ".join(
            f"{missing[destination]}/{sent[destination]}"
            f"{' echo requests' if number == 0 else ''} to {destination}"
            for number, destination in enumerate(d for d in sent if missing[d])))


class _LabNode:
    """One MN of the loopback lab: bootstrap, register, ping, move, ping, leave."""

    def __init__(self, reactor, index: int, mn_id: str, psk: bytes, tls, hac_port: int,
                 window):
        self.reactor = reactor
        self.index = index
        self.result = MnResult(mn_id)
        self.psk = psk
        self.tls = tls
        self.hac_port = hac_port
        self.window = window  # a DeferredSemaphore shared by every node: ECHO_WINDOW
        self.session = None
        self._sequence = 0
        self._replies: dict[tuple, object] = {}  # (peer, sequence) -> Deferred of the reply

    async def join(self, care_of: str) -> None:
        from mn.bootstrap import PskBootstrap
        from mn.session import bootstrap_session

        result = self.result
        self.session, bootstrapped = await bootstrap_session(
            self.reactor, self.tls, self.hac_port, lambda: PskBootstrap(result.mn_id, self.psk),
            timeout=STEP_TIMEOUT, lifetime=300, on_event=self._event, deliver=self._delivered)
        sa = bootstrapped.sa
        result.spi, result.suite = sa.spi, sa.suite
        result.home_address = str(sa.home_address6 or "")
        result.home_address4 = str(sa.home_address4 or "")
        await self.move(care_of)

    async def move(self, care_of: str) -> None:
        binding = await self.session.move(ip_address(care_of)).addTimeout(
            STEP_TIMEOUT, self.reactor)
        self.result.care_of.append(str(binding.care_of))

    def _event(self, action) -> None:
        from mn.actions import Registered

        if isinstance(action, Registered):
            self.result.registrations += 1

    def home_addresses(self) -> list:
        binding = self.session.machine.binding
        addresses = [binding.home_address]
        if binding.home_address4 is not None:
            addresses.append(binding.home_address4)
        return addresses

    async def exchange(self, peers: list[_LabNode]) -> None:
        """ECHOES echo requests to the correspondent and to each peer's home addresses,
        each sent once the lab's window has room; EchoesMissing if a reply did not come."""
        from twisted.internet import defer

        targets = []
        for source in self.home_addresses():
            correspondent = CORRESPONDENT6 if source.version == 6 else CORRESPONDENT4
            targets.append((source, correspondent))
            for peer in peers:
                targets += [(source, address) for address in peer.home_addresses()
                            if address.version == source.version]
        sent, replies = Counter(), []
        for source, destination in targets:
            for _ in range(ECHOES):
                await self.window.acquire()
                sent[destination] += 1
                replies.append(self._ping(source, destination))
        answered = await defer.gatherResults(replies)
        missing = Counter(destination for destination, ok in answered if not ok)
        if missing:
            raise EchoesMissing(missing, sent)

    def _ping(self, source, destination):
        """Send one echo request; a Deferred firing (destination, replied) that frees its
        place in the window either way."""
        from twisted.internet import defer

        self._sequence += 1
        key = (destination, self._sequence)
        reply = self._replies[key] = defer.Deferred()
        reply.addTimeout(REPLY_TIMEOUT, self.reactor, onTimeoutCancel=lambda *_: False)

        def settled(replied: bool):
            del self._replies[key]
            self.window.release()
            return destination, replied

        reply.addCallback(settled)
        self.result.echoes_sent += 1
        echo = Echo(source, destination, self.index, self._sequence, self.result.mn_id.encode())
        if not self.session.send(echo.packet()) and not reply.called:
            reply.callback(False)  # the MN's machine refused it (counted there)
        return reply

    def _delivered(self, packet: bytes) -> None:
        echo = Echo.parse(packet)
        if echo is None:
            return
        if not echo.reply:  # another MN pinging this one's home address
            self.session.send(echo.answer().packet())
            return
        reply = self._replies.get((echo.source, echo.sequence))
        if echo.identifier == self.index and reply is not None and not reply.called:
            self.result.echoes_back += 1
            reply.callback(True)

    async def leave(self) -> None:
        if self.session is None:
            return
        deregistered = []
        previous = self.session.on_event
        self.session.on_event = lambda action: (previous(action), deregistered.append(action))
        await self.session.stop(deregister=True)
        from mn.actions import Deregistered

        self.result.deregistered = any(isinstance(a, Deregistered) for a in deregistered)


class OutputClosed(Exception):
    """Nobody reads the lab's output any more (``mip6-lab up | head -1``): stop the run."""


def check_output(out) -> None:
    """OutputClosed if ``out`` is a pipe whose reading end is closed.

    The writing end of such a pipe polls as an error at once; a terminal, a file or a
    pipe still read polls without one, so this costs nothing while someone reads.
    """
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not backed by a descriptor (a test's StringIO): nothing to watch
    poller = select.poll()
    poller.register(fd, 0)
    if any(events & select.POLLERR for _, events in poller.poll(0)):
        raise OutputClosed


def udp_drops(port: int) -> int | None:
    """Datagrams the kernel dropped at the UDP sockets bound to ``port`` (receive queue
    full), from /proc/net/udp and udp6; None where the kernel does not say."""
    total, seen = 0, False
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        seen = True
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[-1])
    return total if seen else None


async def _each(nodes, step, describe: str, out=None) -> None:
    """Run ``step(node)`` for every node still without an error, recording failures;
    first, stop the run if nobody reads ``out`` any more."""
    from twisted.internet import defer

    if out is not None:
        check_output(out)

    async def guarded(node):
        try:
            await step(node)
        except Exception as error:  # a failing MN is reported, the others go on
            node.result.error = node.result.error or f"{describe}: {error}"

    live = [node for node in nodes if not node.result.error]
    await defer.gatherResults([defer.ensureDeferred(guarded(node)) for node in live])


async def run_loopback(reactor, directory: Path, count: int, out,
                       keep: bool = False) -> list[MnResult]:
    """The whole loopback lab on ``reactor``; the per-MN results."""
    from ha.assemble import assemble_home_agent
    from ha.cli import HaConfig
    from ha.core import HaPolicy
    from hac.config import load_config
    from hac.server import HacServer

    from .tls import ClientTLS

    from twisted.internet import defer

    mn_ids = [f"mn{number}@{MN_DOMAIN}" for number in range(1, count + 1)]
    files = make_files(directory, mn_ids, ("127.0.0.1", "::1"))
    home_network = SimulatedHomeNetwork((CORRESPONDENT6, CORRESPONDENT4))
    ha_port = _free_udp_port_on_both()
    # every MN comes from ::1 or 127.0.0.1: one source, whose lookups are not limited
    policy = HaPolicy(home_agent=IPv6Address("::1"), lookup_rate=1e6, lookup_burst=1 << 20)
    ha_config = HaConfig(listen=(("::1", ha_port), ("127.0.0.1", ha_port)),
                         store=files.store_url, state=directory / "ha-state.db",
                         policy=policy, stats_interval=3600)
    ha = assemble_home_agent(ha_config, reactor, tun=home_network)
    for host, port in ha_config.listen:
        ha.listen(host, port)
    ha.start()
    hac = HacServer(load_config(None, hac_settings(
        files, "127.0.0.1:0", {"ip6": "::1", "ip4": "127.0.0.1", "port": ha_port})), reactor)
    hac_port = hac.listen().getHost().port
    tls = ClientTLS("127.0.0.1", files.ca.cert_path)
    window = defer.DeferredSemaphore(ECHO_WINDOW)
    nodes = [_LabNode(reactor, index, mn_id, files.psks[mn_id], tls, hac_port, window)
             for index, mn_id in enumerate(mn_ids, 1)]

    def peers_of(node):
        return [other for other in nodes if other is not node and other.session is not None
                and other.session.machine.binding is not None][:1]

    try:
        print(f"mip6-lab: HAC on 127.0.0.1:{hac_port} (TLS, PSK), HA on [::1]:{ha_port} and "
              f"127.0.0.1:{ha_port}, {count} MNs, IPv4 home pool {files.pool4}; CA, PSKs "
              f"and SQLite store in {directory_note(directory, keep)}", file=out, flush=True)
        await _each(nodes, lambda node: node.join("::1"), "bootstrap/register over IPv6", out)
        await _each(nodes, lambda node: node.exchange(peers_of(node)), "echo before handover",
                    out)
        await _each(nodes, lambda node: _handover(node, "127.0.0.1"), "handover to IPv4", out)
        await _each(nodes, lambda node: node.exchange(peers_of(node)), "echo after handover",
                    out)
    finally:
        await _each(nodes, lambda node: node.leave(), "de-registration")
        counters = ha.core.counters
        drops = udp_drops(ha_port)
        await ha.stop()
        await hac.stop()
        ha.source.close()
        ha.ledger.close()
        home_network.close()
    results = [node.result for node in nodes]
    ha_line = ", ".join(f"{name} {value}" for name, value in sorted(counters.items()))
    extra = [f"HA counters: {ha_line}",
             f"home network: {home_network.answered} echo requests answered"]
    if drops:
        extra.append(f"HA sockets: the kernel dropped {drops} datagrams (receive queue full)")
    print_summary(results, extra, out)
    return results


async def _handover(node: _LabNode, care_of: str) -> None:
    spi = node.session.machine.sa.spi
    await node.move(care_of)
    node.result.handover = node.session.machine.binding.spi == spi


def _free_udp_port_on_both() -> int:
    """A UDP port number free on both ::1 and 127.0.0.1 (the HA listens on both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe6:
            probe6.bind(("::1", 0))
            port = probe6.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe4:
                try:
                    probe4.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no UDP port free on both ::1 and 127.0.0.1")


def run_on_reactor(scenario):
    """Run ``scenario(reactor)`` on the global reactor; its result, or raise its error.

    Ctrl-C stops the reactor; the scenario's ``finally`` blocks then still run their
    clean-up before the reactor shuts down.
    """
    from twisted.internet import defer, reactor

    outcome = []

    def start():
        running = defer.ensureDeferred(scenario(reactor))
        running.addBoth(outcome.append)
        running.addBoth(lambda _: reactor.running and reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        raise KeyboardInterrupt
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Run a HAC, a home agent and mobile nodes on this machine.")
    add_version_flag(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up", help="run the lab end to end and report",
        description="Start a HAC, a home agent and N mobile nodes; each MN bootstraps, "
                    "registers, exchanges protected traffic, hands over to a new care-of "
                    "address and de-registers. Exit status 0 only if every MN succeeded.")
    up.add_argument("--mns", type=int, default=3, metavar="N",
                    help=f"number of mobile nodes, 1..{MAX_MNS}; 1..60 with --netns "
                         f"(default: %(default)s)")
    up.add_argument("--netns", action="store_true",
                    help="MN, HA and a correspondent in their own network namespaces, real "
                         "TUN interfaces, ping and TCP through the tunnel (root)")
    up.add_argument("--keep-dir", action="store_true",
                    help="keep the generated files (CA, PSKs, store, logs) afterwards")
    up.add_argument("--verbose", action="store_true", help="log what the servers do")
    return parser


def directory_note(directory: Path, keep: bool) -> str:
    """How the banner names the lab's directory: whether it outlives the run."""
    return f"{directory} ({'kept' if keep else 'deleted at exit; --keep-dir keeps it'})"


def next_steps(args, ok: bool) -> str:
    """What to try after this run."""
    if not ok:
        return (f"mip6-lab: next: mip6-lab up{' --netns' if args.netns else ''} --mns "
                f"{args.mns} --verbose --keep-dir logs what the servers do and keeps their "
                f"files; docs/usage.md (mip6-lab) explains the summary")
    if not args.netns:
        return ("mip6-lab: next: mip6-lab up --netns (root) runs mip6-hac, mip6-ha and mip6-mn "
                "themselves with TUN devices; docs/usage.md runs each program by hand")
    return "mip6-lab: next: docs/usage.md runs each program by hand, with your own AAA server"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.mns <= MAX_MNS:
        return fail(PROGRAM, f"--mns must be 1..{MAX_MNS}", EXIT_CONFIG)
    if not args.netns:
        needed = FILES_BASE + FILES_PER_MN * args.mns
        soft, _ = raise_open_file_limit(needed)
        if soft < needed:
            return fail(PROGRAM, f"--mns {args.mns} needs {needed} open files, the limit is "
                                 f"{soft}: raise it (ulimit -n {needed}) or run fewer MNs",
                        EXIT_CONFIG)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    directory = Path(tempfile.mkdtemp(prefix="mip6-lab-"))
    started = time.monotonic()
    try:
        if args.netns:
            from .labnet import LabError, run_netns

            try:
                results = run_netns(directory, args.mns, sys.stdout, keep=args.keep_dir)
            except LabError as error:
                return fail(PROGRAM, str(error), EXIT_CONFIG)
        else:
            results = run_on_reactor(lambda reactor: run_loopback(
                reactor, directory, args.mns, sys.stdout, keep=args.keep_dir))
        ok = bool(results) and all(result.ok for result in results)
        print(f"mip6-lab: {'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.1f} s")
        print(next_steps(args, ok), flush=True)
    except KeyboardInterrupt:
        print("mip6-lab: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except (OutputClosed, BrokenPipeError):
        # Nobody reads any more: what the lab started is stopped; end without a word, and
        # keep Python's exit-time flush of stdout from failing on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_RUNTIME
    finally:
        if args.keep_dir:
            print(f"mip6-lab: files kept in {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return EXIT_OK if ok else EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
