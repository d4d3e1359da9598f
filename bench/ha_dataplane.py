"""HA data plane benchmark: one JSON line per figure (docs/performance.md, section HA).

1. ``ha_relay_vs_bare_udp_relay`` per suite: protected PType 1 packets (1400-octet inner
   IPv6 packets) through the HA (HomeAgentServer's Twisted UDP socket -> HomeAgentCore
   -> "TUN" = a UDP socket to the receiver) against a bare Twisted UDP relay (receive,
   send on) in the same run, same sockets, same packets; rounds alternate, best round
   of each kept.
   Each round first queues every packet in the relay's socket while its reactor is not
   yet running, then lets it drain the queue: the relay never shares a core with the
   sender, nothing is lost, and both relays are timed under the same conditions.
   The relay times itself from its first packet forwarded to its last, in wall-clock
   and in CPU seconds (user + system of its process); the receiver reads only after
   that and checks nothing was lost. The headline ``ratio`` is the CPU one: on a
   shared machine other jobs preempt the relays at random, which moves the wall-clock
   figure (``wall_clock_ratio``) by +-0.1 from run to run, not the CPU one.
2. ``bu_ba_transactions``: protected BU in -> core -> protected BA out -> MN parses it,
   sans-I/O, one process.
3. ``memory_per_binding``: RSS growth for 100,000 MNs each with its SA state and binding.

Usage: .venv/bin/python bench/ha_dataplane.py [--packets N] [--rounds R] [--bindings B]
       [--transactions T] [--suite NAME ...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import struct
import sys
import time
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aaa_mip6.iana import NEXT_HEADER_IPV6, NEXT_HEADER_NONE  # noqa: E402
from aaa_mip6.mobility.messages import BindingUpdate  # noqa: E402
from aaa_mip6.mobility.payloads import (  # noqa: E402
    decode_binding_ack_payload,
    encode_binding_update_payload,
)
from aaa_mip6.sa import SCOPE_ALL, SecurityAssociation  # noqa: E402
from aaa_mip6.suites import SUITES, new_keys  # noqa: E402
from aaa_mip6.transform import PType, SaEndpoint  # noqa: E402
from ha.core import HaPolicy, HomeAgentCore  # noqa: E402

HA = IPv6Address("2001:db8:ffff::1")
INNER = 1400
NOW = time.time()


def make_sa(suite: str, spi: int, index: int = 1) -> SecurityAssociation:
    keys = new_keys(SUITES[suite])
    return SecurityAssociation(
        spi=spi, suite=suite, mn_to_ha_ikey=keys.mn_to_ha_ikey, ha_to_mn_ikey=keys.ha_to_mn_ikey,
        mn_to_ha_ekey=keys.mn_to_ha_ekey, ha_to_mn_ekey=keys.ha_to_mn_ekey,
        validity_end=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1),
        scope=SCOPE_ALL, mn_id=f"mn{index}@example.net",
        home_address6=IPv6Address(int(IPv6Address("2001:db8:1::")) + index))


def bu_packet(mn: SaEndpoint, home_address, sequence: int) -> bytes:
    next_header, payload = encode_binding_update_payload(
        home_address, HA, BindingUpdate(sequence, 150))
    return mn.protect(PType.MOBILITY, payload, next_header)


def inner_packet(source: IPv6Address) -> bytes:
    payload = bytes(INNER - 40)
    header = struct.pack("!IHBB", 6 << 28, len(payload), NEXT_HEADER_NONE, 64)
    return header + source.packed + HA.packed + payload


# ---------------------------------------------------------------- relays (child processes)


QUEUE_OCTETS = 256 << 20  # room for every packet of a round in the relay's and receiver's sockets
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; Python 3.11 lacks the name


def _roomy(sock: socket.socket) -> socket.socket:
    """Make the socket's receive queue hold a whole round (SO_RCVBUFFORCE needs root)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, QUEUE_OCTETS)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, QUEUE_OCTETS)
    return sock


class _Stopwatch:
    """Wall-clock and CPU seconds of this process from the first packet forwarded to the last."""

    def __init__(self, control):
        self.control = control
        self.left = 0
        self.expected = 0
        self.started = (0.0, 0.0)

    def forwarded(self) -> None:
        self.left -= 1
        if self.left == self.expected - 1:
            self.started = (time.perf_counter(), time.process_time())
        elif not self.left:
            wall, cpu = self.started
            self.control.send((time.perf_counter() - wall, time.process_time() - cpu))


def _run_relay(kind: str, sa_state, receiver: tuple, control) -> None:
    """Set up a relay, report its port, drain its socket when told how many packets are
    queued, and report the seconds (wall clock, CPU) it took to forward them."""
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol

    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    stopwatch = _Stopwatch(control)

    def forward(packet: bytes) -> bool:
        try:
            out.sendto(packet, receiver)
        except BlockingIOError:
            return False
        stopwatch.forwarded()
        return True

    if kind == "bare":
        class Relay(DatagramProtocol):
            def datagramReceived(self, data, addr):
                forward(data)
        port = reactor.listenUDP(0, Relay(), interface="127.0.0.1")
    else:
        from ha.server import HomeAgentServer
        from ha.sasource import SASource

        class Tun:
            write = staticmethod(forward)

        class NoLedger:
            def save(self, *args):
                pass

            def load(self, *args):
                return None

        class Fixed(SASource):
            def lookup(self, spi):
                return sa_state

        core = HomeAgentCore(HaPolicy(home_agent=HA))
        server = HomeAgentServer(core, Fixed(), NoLedger(), reactor=reactor, tun=Tun())
        server._found(sa_state, sa_state.spi)
        mn = SaEndpoint(sa_state, "mn")
        server.datagram_received(bu_packet(mn, sa_state.home_address6, 1), ("127.0.0.1", 1))
        assert len(core.bindings) == 1
        port = server.listen("127.0.0.1", 0)  # the HA's own socket protocol
    _roomy(port.socket)
    control.send(port.getHost().port)
    stopwatch.left = stopwatch.expected = control.recv()  # the round is queued: go
    reactor.run()


def relay_round(kind: str, sa: SecurityAssociation,
                packets: list[bytes]) -> tuple[float, float, int]:
    """(packets per second, packets per CPU second, packets lost) of one round through
    one relay. The receiver reads only once the relay is done: a reader blocked on the
    socket would make every send also wake it up, which costs the sender more the
    slower it sends (the slower relay would pay for the idle receiver)."""
    receiver = _roomy(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    control, child = multiprocessing.Pipe()
    relay = multiprocessing.Process(
        target=_run_relay, args=(kind, sa, receiver.getsockname(), child), daemon=True)
    relay.start()
    target = ("127.0.0.1", control.recv())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for packet in packets:
            sender.sendto(packet, target)
    control.send(len(packets))
    seconds = control.recv() if control.poll(60) else None
    relay.terminate()
    relay.join()
    delivered = 0
    try:
        while receiver.recv(65535):
            delivered += 1
    except BlockingIOError:
        pass
    receiver.close()
    if seconds is None:
        return 0.0, 0.0, len(packets) - delivered
    wall, cpu = seconds
    intervals = len(packets) - 1
    return intervals / wall, intervals / cpu, len(packets) - delivered


def relay_figures(suites: list[str], packets_per_round: int, rounds: int) -> None:
    for suite in suites:
        sa = make_sa(suite, 1000)
        mn = SaEndpoint(sa, "mn")
        # sequence 0 went to the BU sent inside the relay
        mn.protect(PType.MOBILITY, b"", NEXT_HEADER_NONE)
        inner = inner_packet(sa.home_address6)
        wall = {"ha": 0.0, "bare": 0.0}
        cpu = {"ha": 0.0, "bare": 0.0}
        lost = 0
        for _ in range(rounds):
            packets = [mn.protect(PType.ENCRYPTED_IP, inner, NEXT_HEADER_IPV6)
                       for _ in range(packets_per_round)]
            for kind in ("ha", "bare"):
                rate, cpu_rate, missing = relay_round(kind, sa, packets)
                wall[kind] = max(wall[kind], rate)
                cpu[kind] = max(cpu[kind], cpu_rate)
                lost += missing
        print(json.dumps({
            "figure": "ha_relay_vs_bare_udp_relay", "suite": suite,
            "ratio": _ratio(cpu), "wall_clock_ratio": _ratio(wall),
            "ha_packets_per_cpu_s": round(cpu["ha"]), "bare_packets_per_cpu_s": round(cpu["bare"]),
            "ha_packets_per_s": round(wall["ha"]), "bare_packets_per_s": round(wall["bare"]),
            "ha_inner_mbit_per_s": round(wall["ha"] * INNER * 8 / 1e6, 1),
            "bare_mbit_per_s": round(wall["bare"] * len(packets[0]) * 8 / 1e6, 1),
            "packets_lost": lost,
        }), flush=True)


def _ratio(rates: dict) -> float | None:
    return round(rates["ha"] / rates["bare"], 3) if rates["bare"] else None


# ---------------------------------------------------------------- in-process figures


def bu_ba_figure(transactions: int) -> None:
    sa = make_sa("AES_128_CBC_SHA", 2000)
    core = HomeAgentCore(HaPolicy(home_agent=HA))
    core.sa_found(sa.spi, sa, None, NOW)
    mn = SaEndpoint(sa, "mn")
    start = time.perf_counter()
    for sequence in range(1, transactions + 1):
        actions = core.datagram_received("198.51.100.1", 4000, bu_packet(mn, sa.home_address6,
                                                                          sequence), NOW)
        opened = mn.unprotect(actions[-1].data)
        decode_binding_ack_payload(opened.next_header, opened.payload, HA)
    elapsed = time.perf_counter() - start
    print(json.dumps({"figure": "bu_ba_transactions", "suite": "AES_128_CBC_SHA",
                      "per_s": round(transactions / elapsed),
                      "us_each": round(elapsed / transactions * 1e6, 1)}), flush=True)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_figure(count: int) -> None:
    suite = "AES_128_CBC_SHA"
    sas = [make_sa(suite, 10_000 + i, i + 1) for i in range(count)]
    bus = [bu_packet(SaEndpoint(sa, "mn"), sa.home_address6, 1) for sa in sas]
    core = HomeAgentCore(HaPolicy(home_agent=HA))
    before = _rss()
    for index, (sa, bu) in enumerate(zip(sas, bus)):
        core.sa_found(sa.spi, sa, None, NOW)
        core.datagram_received(f"198.51.{index >> 8 & 255}.{index & 255}", 4000 + index % 1000,
                               bu, NOW)
    grown = _rss() - before
    assert len(core.bindings) == count
    print(json.dumps({"figure": "memory_per_binding", "bindings": count, "suite": suite,
                      "bytes_each": round(grown / count),
                      "what": "SA state (keyed SaEndpoint, replay window) + binding, RSS delta"}),
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bindings", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=5000)
    parser.add_argument("--suite", action="append", choices=list(SUITES),
                        help="relay figures for this suite only (repeatable; default: all)")
    args = parser.parse_args()
    relay_figures(args.suite or list(SUITES), args.packets, args.rounds)
    bu_ba_figure(args.transactions)
    memory_figure(args.bindings)


if __name__ == "__main__":
    main()
