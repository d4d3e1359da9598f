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
see :mod:`lab.netns`.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from aaa_mip6.iana import NEXT_HEADER_ICMPV6

from .common import CORRESPONDENT4, CORRESPONDENT6, MN_DOMAIN, MnResult, check_output, \
    directory_note, hac_settings, home_pool4, make_files, print_summary

ECHOES = 3  # echo requests per destination and phase
ECHO_WINDOW = 32  # echo requests in flight in the whole loopback lab (module docstring)
REPLY_TIMEOUT = 5.0  # seconds to wait for the reply to one echo request
STEP_TIMEOUT = 15.0  # seconds for one bootstrap or registration

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


# --------------------------------------------------------------------------- the lab


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
    from twisted.internet import defer

    from aaa_mip6.twisted.tls import ClientTLS
    from ha.assemble import assemble_home_agent
    from ha.config import HaConfig
    from ha.core import HaPolicy
    from hac.config import load_config
    from hac.assemble import assemble_hac

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
    hac = assemble_hac(load_config(None, hac_settings(
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
              f"127.0.0.1:{ha_port}, {count} MNs, IPv4 home pool {home_pool4(count)}; CA, PSKs "
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
