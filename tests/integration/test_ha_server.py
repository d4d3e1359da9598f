"""mip6-ha over real UDP on loopback: a protected BU/BA round trip, restart on the same store."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address

import pytest

from aaa_mip6.mobility import BindingUpdate, build_binding_update_payload, parse_binding_ack_payload
from aaa_mip6.sa import SCOPE_ALL, SecurityAssociation
from aaa_mip6.store import UNALLOCATED_SPI, open_store
from aaa_mip6.suites import SUITES, new_keys
from aaa_mip6.transform import PType, SaEndpoint

pytestmark = pytest.mark.integration

HA = IPv6Address("::1")
HOA = IPv6Address("2001:db8:1::100")


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


def start_ha(store_url, *extra):
    process = subprocess.Popen(
        [sys.executable, "-m", "ha.cli", "--listen", "[::1]:0", "--store", store_url,
         "--log-level", "info", *extra],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"listening on \[::1\]:(\d+)", line)
        if match:
            return process, int(match.group(1))
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail("mip6-ha did not start")


def stop_ha(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def register(endpoint, port, sequence):
    update = BindingUpdate(sequence, 150)
    next_header, payload = build_binding_update_payload(HOA, HA, update)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(endpoint.protect(PType.MOBILITY, payload, next_header), ("::1", port))
        data, _ = sock.recvfrom(2048)
    opened = endpoint.unprotect(data)
    return parse_binding_ack_payload(opened.next_header, opened.payload, HA)


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


def test_config_errors_name_the_key(store_url):
    done = subprocess.run([sys.executable, "-m", "ha.cli", "--store", store_url],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "home-agent" in done.stderr
    done = subprocess.run([sys.executable, "-m", "ha.cli", "--listen", "[::1]:1",
                           "--store", store_url, "--max-lifetime", "0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "max-lifetime" in done.stderr
