"""The HA at scale: 100,000 bindings against 100 (docs/scaling.md, "Measurements").

Two :class:`ha.core.HomeAgentCore` in this process, sans-I/O (no sockets, no shell):
one with ``--small`` MNs, one with ``--bindings``, each MN with its AES_128_CBC_SHA SA
and a binding made by a real protected Binding Update through the core. Figures:

- ``ha_memory_per_binding``: what the core holds per MN (SA state with its keyed
  endpoint and replay window, the binding, the indexes), measured with ``tracemalloc``
  while the large core is built (Python objects only: the OpenSSL cipher and HMAC
  contexts inside ``cryptography`` are not Python allocations) and as the growth of the
  process's resident set (everything, including those contexts and allocator slack);
- in alternating rounds (``--rounds``) on both cores, per operation, median over rounds,
  ``ratio`` = large core / small core:
  ``ha_binding_lookup`` (``BindingCache.get_by_key`` of a random held home address: the
  per-packet lookup), ``ha_packet_in`` (a protected PType 1 packet from a random MN
  through ``datagram_received``: SA and binding look-ups, ICV, decryption, replay window),
  ``ha_packet_out`` (a packet for a random MN's home address through ``tun_packet``:
  binding look-up, encryption, ICV) and ``ha_bu_refresh`` (a Binding Update refreshing a
  random MN's binding, answered with a protected BA);
- ``ha_timer``: one ``handle_timer(now)`` (the shell calls it once a second) on each core.

Times are CPU seconds of this process (``time.process_time``), so other jobs on the
machine slow the figures less than they would wall-clock ones; cache misses still count.
Packets are protected before the clock starts. Every operation is checked (a packet
forwarded, a BA sent), so a lookup that misses cannot look fast.

Usage: .venv/bin/python bench/scale_ha.py [--bindings 100000] [--small 100] [--ops 20000]
       [--rounds 5]
Takes 1-2 minutes and about 1.5 GB of memory on the 2-core development VM.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import struct
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aaa_mip6.iana import NEXT_HEADER_IPV6, NEXT_HEADER_NONE  # noqa: E402
from aaa_mip6.mobility.messages import BindingUpdate  # noqa: E402
from aaa_mip6.mobility.payloads import encode_binding_update_payload  # noqa: E402
from aaa_mip6.sa import SCOPE_ALL, SecurityAssociation  # noqa: E402
from aaa_mip6.suites import SUITES, new_keys  # noqa: E402
from aaa_mip6.transform import PType, SaEndpoint  # noqa: E402
from bench._common import emit  # noqa: E402
from ha.actions import SendDatagram, WriteTun  # noqa: E402
from ha.bindings import address_key  # noqa: E402
from ha.core import HaPolicy, HomeAgentCore  # noqa: E402

HA = IPv6Address("2001:db8:ffff::1")
CORRESPONDENT = IPv6Address("2001:db8:cccc::1")
HOME = int(IPv6Address("2001:db8:1::"))
SUITE = "AES_128_CBC_SHA"
INNER = 1400  # octets of a tunneled packet, as in bench/ha_dataplane.py
LIFETIME = 150  # BU lifetime, in units of 4 s: 600 s


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ipv6_packet(source: IPv6Address, destination: IPv6Address) -> bytes:
    payload = bytes(INNER - 40)
    header = struct.pack("!IHBB", 6 << 28, len(payload), NEXT_HEADER_NONE, 64)
    return header + source.packed + destination.packed + payload


class Mn:
    """One simulated MN: its SA, its endpoint (the MN side), its care-of address."""

    __slots__ = ("sa", "endpoint", "care_of", "sequence", "next_packet")

    def __init__(self, index: int, validity_end: datetime):
        keys = new_keys(SUITES[SUITE])
        self.sa = SecurityAssociation(
            spi=1000 + index, suite=SUITE, mn_to_ha_ikey=keys.mn_to_ha_ikey,
            ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
            ha_to_mn_ekey=keys.ha_to_mn_ekey, validity_end=validity_end, scope=SCOPE_ALL,
            mn_id=f"mn{index}@example.net", home_address6=IPv6Address(HOME + index + 1))
        self.endpoint = None
        self.care_of = (f"198.51.{index >> 8 & 255}.{index & 255}", 1024 + index % 60000)
        self.sequence = 0  # of Binding Updates
        self.next_packet = 0  # the MN side's next packet sequence number

    def mn_side(self) -> SaEndpoint:
        if self.endpoint is None:
            self.endpoint = SaEndpoint(self.sa, "mn", next_sequence=self.next_packet)
        return self.endpoint

    def drop_mn_side(self) -> None:
        """Forget the MN-side endpoint (100k of them cost memory), keeping its sequence."""
        if self.endpoint is not None:
            self.next_packet = self.endpoint.next_sequence
            self.endpoint = None

    def bu(self) -> bytes:
        self.sequence += 1
        next_header, payload = encode_binding_update_payload(
            self.sa.home_address6, HA, BindingUpdate(self.sequence, LIFETIME))
        return self.mn_side().protect(PType.MOBILITY, payload, next_header)

    def data(self) -> bytes:
        return self.mn_side().protect(PType.ENCRYPTED_IP,
                                      ipv6_packet(self.sa.home_address6, CORRESPONDENT),
                                      NEXT_HEADER_IPV6)


class Side:
    """A core with ``count`` MNs registered, and per-round samples of each figure."""

    def __init__(self, count: int, now: float, *, trace: bool = False):
        validity_end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)
        self.mns = [Mn(i, validity_end) for i in range(count)]
        bus = [mn.bu() for mn in self.mns]
        for mn in self.mns:
            mn.drop_mn_side()
        self.now = now
        self.core = HomeAgentCore(HaPolicy(home_agent=HA))
        gc.collect()
        resident = rss()
        if trace:
            tracemalloc.start()
            traced_before = tracemalloc.get_traced_memory()[0]
        for mn, bu in zip(self.mns, bus):
            self.core.sa_found(mn.sa.spi, mn.sa, None, now)
            actions = self.core.datagram_received(*mn.care_of, bu, now)
            assert any(isinstance(action, SendDatagram) for action in actions), actions
        del bus
        gc.collect()
        self.traced = (tracemalloc.get_traced_memory()[0] - traced_before) if trace else None
        if trace:
            tracemalloc.stop()
        self.resident = rss() - resident
        assert len(self.core.bindings) == count
        self.samples: dict[str, list[float]] = {}

    def _record(self, figure: str, seconds: float, operations: int) -> None:
        self.samples.setdefault(figure, []).append(seconds / operations)

    def run_round(self, ops: int, rng: random.Random) -> None:
        core, now = self.core, self.now
        chosen = [rng.choice(self.mns) for _ in range(ops)]

        keys = [address_key(mn.sa.home_address6) for mn in chosen]
        lookup = core.bindings.get_by_key
        started = time.process_time()
        for key in keys:
            lookup(key)
        self._record("ha_binding_lookup", time.process_time() - started, ops)
        assert all(lookup(key) is not None for key in keys)

        packets = [(mn.care_of, mn.data()) for mn in chosen]
        forwarded = 0
        started = time.process_time()
        for (host, port), packet in packets:
            for action in core.datagram_received(host, port, packet, now):
                forwarded += type(action) is WriteTun
        self._record("ha_packet_in", time.process_time() - started, ops)
        assert forwarded == ops, (forwarded, ops)

        outbound = [ipv6_packet(CORRESPONDENT, mn.sa.home_address6) for mn in chosen]
        sent = 0
        started = time.process_time()
        for packet in outbound:
            for action in core.tun_packet(packet, now):
                sent += isinstance(action, SendDatagram)
        self._record("ha_packet_out", time.process_time() - started, ops)
        assert sent == ops, (sent, ops)

        refreshing = chosen[: max(1, ops // 10)]
        updates = [(mn.care_of, mn.bu()) for mn in refreshing]
        acked = 0
        started = time.process_time()
        for (host, port), packet in updates:
            for action in core.datagram_received(host, port, packet, now):
                acked += isinstance(action, SendDatagram)
        self._record("ha_bu_refresh", time.process_time() - started, len(updates))
        assert acked == len(updates), (acked, len(updates))

        started = time.process_time()
        core.handle_timer(now)
        self._record("ha_timer", time.process_time() - started, 1)

        for mn in chosen:
            mn.drop_mn_side()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bindings", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--ops", type=int, default=20_000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    emit("machine", cpus=os.cpu_count(), load_average=[round(x, 2) for x in os.getloadavg()])
    now = time.time()
    rng = random.Random()
    small = Side(args.small, now)
    started = time.monotonic()
    large = Side(args.bindings, now, trace=True)
    emit("ha_memory_per_binding", bindings=args.bindings, suite=SUITE,
         python_bytes_each=round(large.traced / args.bindings),
         rss_bytes_each=round(large.resident / args.bindings),
         build_seconds=round(time.monotonic() - started, 1),
         what="tracemalloc: Python objects the core holds per MN; rss: the process's growth")
    for _ in range(args.rounds):
        for side in (small, large):
            side.run_round(args.ops, rng)
    for figure in ("ha_binding_lookup", "ha_packet_in", "ha_packet_out", "ha_bu_refresh",
                   "ha_timer"):
        measured = statistics.median(large.samples[figure])
        baseline = statistics.median(small.samples[figure])
        unit = 1e3 if figure == "ha_timer" else 1e6
        name = "ms" if figure == "ha_timer" else "us"
        emit(figure, bindings=args.bindings, baseline_bindings=args.small,
             **{f"{name}_each": round(measured * unit, 3),
                f"baseline_{name}_each": round(baseline * unit, 3),
                f"round_{name}_each": [round(s * unit, 3) for s in large.samples[figure]]},
             ratio=round(measured / baseline, 2), rounds=args.rounds)
    emit("machine_after", load_average=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    main()
