"""mip6-ha under a flood of random SPIs: a new MN still registers on its first BU (issue 11).

The flood comes from two sources, as lookups are limited per source: protected-data
headers (PType 1) from ::1, where the MN also is, and BU-shaped ones (PType 8) from
127.0.0.2; half its SPIs come back again and again (a stale MN, a replay). Before the
HA's lookup admission (ha/admission.py) a slow store's lookup backlog filled and new
MNs' BUs were dropped with the flood. Run on SQLite (lookups on the reactor thread) and
on PostgreSQL (lookups in the thread pool: the store the flood was seen with).
"""

import random
import socket
import struct
import time

import pytest

from aaa_mip6.mobility.messages import BindingUpdate
from aaa_mip6.mobility.payloads import decode_binding_ack_payload, encode_binding_update_payload
from aaa_mip6.transform import PType, SaEndpoint
from tests.integration.haproc import running_ha
from tests.integration.test_ha_server import HA, HOA, provision

pytestmark = pytest.mark.integration

FLOOD = 20_000  # datagrams
BU_AFTER = 8_000  # flood datagrams sent before the MN's BU
BATCH = 200  # datagrams between pauses: at most BATCH / PAUSE per second (~14k/s here)
PAUSE = 0.01
FLOOD_TIME_LIMIT = 30.0  # seconds
BA_WAIT = 6.0  # seconds the MN waits for its one BU's BA
REPEATED_SPIS = 16


def random_spi_datagram(ptype: PType, spi: int, rng: random.Random) -> bytes:
    return struct.pack("!II", ptype << 28 | spi, rng.getrandbits(32)) + rng.randbytes(60)


def sockets(family, host, count):
    made = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        made.append(sock)
    return made


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sa.db"
    return request.getfixturevalue("postgres_url")


def test_a_new_mn_registers_on_its_first_bu_under_a_random_spi_flood(store_url, tmp_path):
    sa = provision(store_url)
    rng = random.Random(11)
    repeated = [rng.randrange(1, 1 << 28) for _ in range(REPEATED_SPIS)]
    data_flooders = sockets(socket.AF_INET6, "::1", 4)
    bu_flooders = sockets(socket.AF_INET, "127.0.0.2", 4)
    mn = SaEndpoint(sa, "mn")
    next_header, payload = encode_binding_update_payload(HOA, HA, BindingUpdate(1, 150))
    with running_ha(tmp_path, store_url, ["[::1]:0", "127.0.0.1:0"],
                    {"home_agent": "::1"}) as ha, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as mn_socket:
        port6, port4 = ha.ports
        mn_socket.bind(("::1", 0))
        mn_socket.setblocking(False)
        sent, answer, bu_sent_at = 0, None, None
        started = time.monotonic()
        while sent < FLOOD and time.monotonic() - started < FLOOD_TIME_LIMIT:
            for _ in range(BATCH):
                spi = repeated[sent % REPEATED_SPIS] if sent % 2 else rng.randrange(1, 1 << 28)
                if sent % 4 < 2:
                    data_flooders[sent % 4].sendto(
                        random_spi_datagram(PType.ENCRYPTED_IP, spi, rng), ("::1", port6))
                else:
                    bu_flooders[sent % 4].sendto(
                        random_spi_datagram(PType.MOBILITY, spi, rng), ("127.0.0.1", port4))
                sent += 1
            if sent == BU_AFTER:  # the new MN's one and only BU, in the thick of it
                mn_socket.sendto(mn.protect(PType.MOBILITY, payload, next_header), ("::1", port6))
                bu_sent_at = time.monotonic()
            if bu_sent_at is not None and answer is None:
                try:
                    answer = mn_socket.recv(2048)
                except BlockingIOError:
                    pass
            time.sleep(PAUSE)
        assert bu_sent_at is not None, f"the flood sent only {sent} datagrams"
        if answer is None:
            mn_socket.settimeout(max(0.1, BA_WAIT - (time.monotonic() - bu_sent_at)))
            try:
                answer = mn_socket.recv(2048)
            except TimeoutError:
                pass
        seen = ha.counters(lambda counters: sum(counters.values()) >= sent + 1)
        assert answer is not None, f"no BA within {BA_WAIT} s; counters {seen}"
        opened = mn.unprotect(answer)
        _, ack = decode_binding_ack_payload(opened.next_header, opened.payload, HA)
        assert ack.status == 0
        assert seen["registered"] == 1
        # the counters say what was dropped and why
        assert seen["lookup-rate-limited"] > 0 and seen["negative-cached"] > 0, seen
        assert ha.process.poll() is None and ha.stop() == 0
    assert "Traceback" not in ha.log()
