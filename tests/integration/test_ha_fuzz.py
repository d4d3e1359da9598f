"""The HA's UDP port, fuzzed over the wire: every datagram is one counted drop, nothing crashes.

A few thousand datagrams (random bytes, random headers, truncated, bit-flipped and
replayed Binding Updates, garbage under the registered MN's SPI, PType 0 from strangers)
go to a real mip6-ha from three source ports. After every ``PROBE_EVERY`` of them the
registered MN sends a fresh BU and waits for its BA: the HA reads one socket in order,
so by then it has handled every datagram before it — the socket never overflows, and
the counters can be checked to the datagram. Then a second MN registers.
"""

import random
import socket
import struct
import time

import pytest

from aaa_mip6.mobility.messages import BindingUpdate
from aaa_mip6.mobility.payloads import decode_binding_ack_payload, encode_binding_update_payload
from aaa_mip6.transform import HEADER_LENGTH, PType, SaEndpoint
from tests.integration.haproc import running_ha
from tests.integration.test_ha_server import HA, HOA, provision

pytestmark = pytest.mark.integration

DATAGRAMS = 3000
PROBE_EVERY = 32
TIME_LIMIT = 30.0  # seconds of fuzzing at most
SEED = 9  # a failure names the seed it ran with
# Counters that are not drops of a received datagram.
NOT_DROPS = {"registered", "deregistered", "ba-sent", "binding-error-sent", "tunneled-in",
             "tunneled-out", "ledger-purged", "sa-refresh-skipped", "send-failed", "no-socket",
             "tun-refused"}


class Mn:
    """One MN's SA, socket and BU sequence numbers; every BU it sent is kept for mutating."""

    def __init__(self, sa, port):
        self.sa = sa
        self.endpoint = SaEndpoint(sa, "mn")
        self.port = port
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.bind(("::1", 0))
        self.sock.settimeout(10)
        self.sequence = 0
        self.sent: list[bytes] = []

    def register(self) -> int:
        """Send a fresh BU; the BA's status."""
        self.sequence += 1
        next_header, payload = encode_binding_update_payload(
            HOA, HA, BindingUpdate(self.sequence, 150))
        packet = self.endpoint.protect(PType.MOBILITY, payload, next_header)
        self.sock.sendto(packet, ("::1", self.port))
        self.sent.append(packet)
        opened = self.endpoint.unprotect(self.sock.recv(4096))
        return decode_binding_ack_payload(opened.next_header, opened.payload, HA)[1].status


def fuzz_datagram(rng: random.Random, mn: Mn) -> bytes:
    """One datagram a parser or the SA table must refuse."""
    spi = mn.sa.spi
    kind = rng.randrange(8)
    if kind == 0:  # noise of any length, the empty datagram included
        return rng.randbytes(rng.choice([0, 1, 7, 8, rng.randrange(1500)]))
    if kind == 1:  # any PType, any SPI, noise after
        return struct.pack("!II", rng.getrandbits(32), rng.getrandbits(32)) + rng.randbytes(
            rng.randrange(200))
    if kind == 2:  # a BU the HA took, cut short
        bu = rng.choice(mn.sent)
        return bu[:rng.randrange(len(bu))]
    if kind == 3:  # a BU the HA took, with bits flipped
        bu = bytearray(rng.choice(mn.sent))
        for _ in range(rng.randrange(1, 4)):
            bu[rng.randrange(len(bu))] ^= 1 << rng.randrange(8)
        return bytes(bu)
    if kind == 4:  # a BU the HA took, again
        return rng.choice(mn.sent)
    if kind == 5:  # the registered MN's SPI and a fresh sequence number, garbage inside
        ptype = rng.choice([PType.MOBILITY, PType.ENCRYPTED_IP])
        return struct.pack("!II", ptype << 28 | spi, mn.sequence + rng.randrange(1, 1 << 20)) \
            + rng.randbytes(rng.randrange(16, 300))
    if kind == 6:  # PType 0 from a source with no binding
        return bytes(HEADER_LENGTH) + rng.randbytes(rng.randrange(60))
    # a BU-shaped datagram under a random SPI: the lookup path
    return struct.pack("!II", PType.MOBILITY << 28 | rng.randrange(1, 1 << 28),
                       rng.getrandbits(32)) + rng.randbytes(rng.randrange(100))


def drops(counters: dict) -> int:
    return sum(count for name, count in counters.items()
               if name not in NOT_DROPS and not name.startswith(("ba-status-", "bu-status-")))


def test_fuzzed_datagrams_are_each_dropped_once_and_the_ha_still_registers(tmp_path):
    store_url = f"sqlite:///{tmp_path}/sa.db"
    first, second = provision(store_url), provision(store_url)
    rng = random.Random(SEED)
    with running_ha(tmp_path, store_url, ["[::1]:0"]) as ha:
        [port] = ha.ports
        mn = Mn(first, port)
        fuzzers = [socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(3)]
        try:
            assert mn.register() == 0
            sent, started = 0, time.monotonic()
            while sent < DATAGRAMS and time.monotonic() - started < TIME_LIMIT:
                for _ in range(PROBE_EVERY):
                    fuzzers[sent % 3].sendto(fuzz_datagram(rng, mn), ("::1", port))
                    sent += 1
                assert mn.register() == 0, f"seed {SEED}, after {sent} datagrams"
            assert ha.process.poll() is None, f"seed {SEED}: mip6-ha exited; log:\n{ha.log()}"
            probes = len(mn.sent)
            counters = ha.counters(lambda c: c.get("registered") == probes)
            assert counters.get("registered") == probes, counters
            assert drops(counters) == sent, f"seed {SEED}: {sent} sent, counters {counters}"
            newcomer = Mn(second, port)
            # a new MN, as an MN does: a BU, and another if no BA came (its source's
            # lookup bucket may be empty after the fuzzers on the same address)
            for _ in range(5):
                newcomer.sock.settimeout(1.5)
                try:
                    status = newcomer.register()
                    break
                except TimeoutError:
                    status = None
            assert status == 0, ha.counters(lambda c: False, timeout=1)
        finally:
            for sock in [*fuzzers, mn.sock]:
                sock.close()
        assert ha.stop() == 0
    log = ha.log()
    assert "Traceback" not in log and "Unhandled" not in log, log[-4000:]
