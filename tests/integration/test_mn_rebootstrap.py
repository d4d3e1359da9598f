"""``mip6-mn register --keep`` against a real mip6-hac and mip6-ha: a revoked SA sends the
MN back to the HAC, and it registers again under a new SPI.

The HAC pushes SAs to the HA over Diameter ([sa_delivery] / [diameter], as
test_sa_delivery's programs test sets them up) and revokes with ``mip6-hac revoke``;
the HA then answers the MN's next Binding Update (its refresh) with 176. Every wait is
bounded; every process is stopped in a finally block.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aaa_mip6 import pki
from aaa_mip6.store import open_store
from lab.processes import free_port, stop_process
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, toml_text
from tests.integration.test_sa_delivery import (
    HA_HOST,
    HA_REALM,
    HAC_HOST,
    HAC_REALM,
    WAIT_LIMIT,
    Credentials,
)

pytestmark = pytest.mark.integration

MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
LIFETIME = 8  # seconds asked for: the MN refreshes (and meets the revocation) within 6 s


def start_diameter_ha(directory: Path, credentials: Credentials, diameter_port: int):
    """mip6-ha on [::1] (a free UDP port), taking its SAs over Diameter; (process, UDP port)."""
    config = directory / "ha.toml"
    config.write_text(toml_text({"diameter": {
        "origin_host": HA_HOST, "origin_realm": HA_REALM, "destination_realm": HAC_REALM,
        "listen": f"127.0.0.1:{diameter_port}", "cert": str(credentials.ha.cert_path),
        "key": str(credentials.ha.key_path), "ca": str(credentials.ca.cert_path),
        "watchdog": 6}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "ha.cli", "--listen", "[::1]:0", "--config", str(config),
         "--state", str(directory / "ha.state")],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"listening on \[::1\]:(\d+)", line)
        if match:
            # Keep draining its log, so that a chatty HA never blocks on a full pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, int(match.group(1))
        if not line and process.poll() is not None:
            break
    stop_process(process)
    pytest.fail("mip6-ha did not start")


def hac_config(credentials: Credentials, diameter_port: int, control: Path) -> dict:
    """The HAC's settings: push to the HA at ::1 over Diameter, a control socket to revoke."""
    return {**TEST_CONFIG, "sa_delivery": {
        "origin_host": HAC_HOST, "origin_realm": HAC_REALM, "destination_realm": HA_REALM,
        "peers": [f"{HA_HOST}=127.0.0.1:{diameter_port}"], "retry_initial": 0.2,
        "cert": str(credentials.hac.cert_path), "key": str(credentials.hac.key_path),
        "ca": str(credentials.ca.cert_path), "watchdog": 6, "control_socket": str(control)},
        "sa_delivery.home_agents": {'"::1"': HA_HOST}}


class MnEvents:
    """The JSON lines a ``mip6-mn --json`` process prints, read on a thread of their own."""

    def __init__(self, process: subprocess.Popen):
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process) -> None:
        for line in process.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                continue
        self.lines.put({"event": "exited"})

    def next(self, event: str, limit: float = WAIT_LIMIT) -> dict:
        """The next event named ``event``, skipping others; fails after ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {event!r} event within {limit} s; seen {self.seen}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line["event"] == event:
                return line
            assert line["event"] != "exited", f"mip6-mn exited; seen {self.seen}"


def test_revoked_sa_sends_register_keep_back_to_the_hac(tmp_path):
    setup = make_setup(tmp_path / "hac")
    credentials = Credentials.make(tmp_path)
    mn_id = sorted(setup.psks)[0]
    psk_file = tmp_path / "mn.psk"
    pki.write_private(psk_file, setup.psks[mn_id].hex().encode() + b"\n")
    control = tmp_path / "hac.sock"
    diameter_port = free_port()
    ha, ha_port = start_diameter_ha(tmp_path, credentials, diameter_port)
    mn = None
    try:
        with HacProcess(setup, config=hac_config(credentials, diameter_port, control),
                        ha=f"[::1]:{ha_port}") as hac:
            mn = subprocess.Popen(
                [str(MN_SCRIPT), "register", "--keep", "--json", "--hac", hac.address,
                 "--ca", str(setup.ca.cert_path), "--id", mn_id, "--psk-file", str(psk_file),
                 "--lifetime", str(LIFETIME)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                text=True)
            events = MnEvents(mn)
            first = events.next("registered")
            revoke = subprocess.run(
                [sys.executable, "-m", "hac.cli", "revoke", "--spi", str(first["spi"]),
                 "--control", str(control)], capture_output=True, text=True, timeout=WAIT_LIMIT)
            assert (revoke.returncode, revoke.stdout.strip()) == (0, f"revoked {first['spi']}")

            rebootstrap = events.next("rebootstrap", limit=LIFETIME + WAIT_LIMIT)
            again = events.next("registered")

            assert mn.poll() is None, "mip6-mn --keep stopped after the rebootstrap"
            assert stop_process(mn) == 0
            deregistered = events.next("deregistered")
    finally:
        if mn is not None:
            stop_process(mn)
        stop_process(ha)

    assert rebootstrap["reason"] == "reinit-sa-with-hac"
    assert again["spi"] != first["spi"]
    assert (again["home-address"], again["care-of-address"]) == (
        first["home-address"], first["care-of-address"])
    assert deregistered["mn-id"] == mn_id
    with open_store(setup.store_url) as store:
        assert store.get(first["spi"]).sa.revoked
        assert not store.get(again["spi"]).sa.revoked
