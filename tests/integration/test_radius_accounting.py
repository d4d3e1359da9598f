"""RADIUS accounting end to end: a real ``mip6-hac`` with ``radius.accounting = true``
bootstraps an MN (PSK) and FreeRADIUS's detail file records the SA's Start; ``mip6-hac
revoke`` gets its Stop, and an SA that expired gets its Stop when the HAC purges it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aaa_mip6 import pki
from aaa_mip6.sa import SecurityAssociation
from aaa_mip6.store import open_store
from aaa_mip6.store.base import UNALLOCATED_SPI
from aaa_mip6.twisted.tls import ClientTLS
from lab.processes import free_port
from lab.reactors import run_on_fresh_reactor
from lab.servers.hac import HA_ADDRESS, TEST_CONFIG, HacProcess, make_setup
from mn import client
from mn.bootstrap import PskBootstrap

pytestmark = pytest.mark.integration

HAC_SCRIPT = Path(sys.executable).with_name("mip6-hac")
DETAIL_WAIT = 15.0  # seconds for an Accounting-Request to reach the detail file
POLL = 0.05


def detail_records(path: Path) -> list[dict[str, str]]:
    """The detail file's records: attribute name -> value (quotes removed)."""
    try:
        text = path.read_text("utf-8", "replace")
    except FileNotFoundError:
        return []
    records = []
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.splitlines()[1:] if " = " in line]
        if lines:
            records.append({name: value.strip('"') for name, _, value in
                            (line.partition(" = ") for line in lines)})
    return records


def wait_for_record(path: Path, **wanted: str) -> dict[str, str]:
    """The first detail record with the ``wanted`` attribute values (names with _ for -)."""
    wanted = {name.replace("_", "-"): value for name, value in wanted.items()}
    deadline = time.monotonic() + DETAIL_WAIT
    for _ in range(int(DETAIL_WAIT / POLL) + 1):
        for record in detail_records(path):
            if all(record.get(name) == value for name, value in wanted.items()):
                return record
        if time.monotonic() > deadline:
            break
        time.sleep(POLL)
    raise AssertionError(f"no accounting record {wanted} in {path}: {detail_records(path)}")


def wait_for_status(hac: HacProcess, text: str) -> str:
    """The first SIGUSR1 status line of ``hac`` with ``text``, asking until one has it
    (the Accounting-Response may follow the detail record by a moment)."""
    deadline = time.monotonic() + DETAIL_WAIT
    for _ in range(int(DETAIL_WAIT / POLL) + 1):
        hac.process.send_signal(signal.SIGUSR1)
        time.sleep(POLL)
        lines = [line for line in hac.log_path.read_text("utf-8", "replace").splitlines()
                 if "status {" in line]
        if lines and text in lines[-1]:
            return lines[-1]
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no status with {text}; last log lines:\n{hac.log_tail()}")


def psk_bootstrap(hac: HacProcess, identity: str):
    """The SA of one PSK bootstrap of ``identity`` through ``hac``."""
    async def scenario(reactor):
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)
        return await client.bootstrap(reactor, tls, hac.port,
                                      PskBootstrap(identity, hac.setup.psks[identity]))

    return run_on_fresh_reactor(scenario).sa


def accounting_hac(tmp_path: Path, secret: bytes, server: str, **radius) -> HacProcess:
    """A PSK-only HAC with RADIUS accounting to ``server`` (not yet started)."""
    setup = make_setup(tmp_path)
    secret_file = tmp_path / "radius.secret"
    pki.write_private(secret_file, secret + b"\n")
    config = {**TEST_CONFIG, "auth": {"methods": ["psk"]}, "instance": "hac-acct",
              "radius": {"accounting": True, "secret_file": str(secret_file),
                         "accounting_servers": [server], **radius}}
    return HacProcess(setup, config=config)


def test_start_on_bootstrap_stop_on_revoke_and_expiry_reach_freeradius(tmp_path, freeradius):
    hac = accounting_hac(tmp_path, freeradius.secret, f"{freeradius.host}:{freeradius.acct_port}",
                         timeout=0.5, max_timeout=1.0)
    setup = hac.setup
    control = tmp_path / "hac.sock"
    # SA delivery only for its control socket (mip6-hac revoke); no HA listens, so pushes
    # wait and retry, which is no concern of accounting.
    with open(hac.config_path, "a") as toml:
        toml.write(f'[sa_delivery]\norigin_host = "hac-acct.example.org"\n'
                   f'origin_realm = "example.org"\ndestination_realm = "ha.example.org"\n'
                   f'listen = "127.0.0.1:{free_port()}"\ninsecure_tcp = true\n'
                   f'control_socket = "{control}"\n'
                   f'[sa_delivery.home_agents]\n"{HA_ADDRESS}" = "ha1.example.org"\n')
    identity = sorted(setup.psks)[0]
    # An SA that expired an hour ago: the HAC purges it as it starts.
    ended = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    with open_store(setup.store_url) as store:
        expired = store.create(SecurityAssociation(
            UNALLOCATED_SPI, "AES_128_CBC_SHA", bytes(20), bytes(20), bytes(16), bytes(16),
            ended, 1, "gone@example.org"), hac_instance="hac-acct", home_agent=None)
    with hac:
        expiry = wait_for_record(freeradius.detail_path,
                                 Acct_Session_Id=f"{expired.sa.spi:08x}")
        sa = psk_bootstrap(hac, identity)
        session = f"{sa.spi:08x}"
        start = wait_for_record(freeradius.detail_path, Acct_Session_Id=session,
                                Acct_Status_Type="Start")
        revoked = subprocess.run([str(HAC_SCRIPT), "revoke", "--control", str(control),
                                  "--spi", str(sa.spi)], capture_output=True, text=True,
                                 timeout=30)
        assert revoked.returncode == 0, revoked.stdout + revoked.stderr
        stop = wait_for_record(freeradius.detail_path, Acct_Session_Id=session,
                               Acct_Status_Type="Stop")
        wait_for_status(hac, '"accounting":{"start-answered":1,"stop-answered":2}')
    assert freeradius.secret.decode() not in hac.log_path.read_text("utf-8", "replace")
    assert start["User-Name"] == identity
    assert start["Framed-IPv6-Address"] == str(sa.home_address6)
    assert start["NAS-Identifier"] == "hac-acct"
    assert start["NAS-IP-Address"] == "127.0.0.1"
    assert "Acct-Session-Time" not in start and "Event-Timestamp" in start
    assert stop["User-Name"] == identity
    assert stop["Acct-Terminate-Cause"] == "Admin-Reset"
    assert int(stop["Acct-Session-Time"]) >= 0
    assert (expiry["Acct-Status-Type"], expiry["User-Name"], expiry["Acct-Terminate-Cause"]) \
        == ("Stop", "gone@example.org", "Session-Timeout")
    assert expired.created > ended and expiry["Acct-Session-Time"] == "0"  # never negative


def test_unanswered_accounting_never_holds_up_a_bootstrap(tmp_path):
    silent = f"127.0.0.1:{free_port(kind=socket.SOCK_DGRAM)}"  # nothing listens there
    hac = accounting_hac(tmp_path, b"s3cret", silent, timeout=0.2, max_timeout=0.2,
                         transmissions=2)
    identity = sorted(hac.setup.psks)[0]
    with hac:
        sa = psk_bootstrap(hac, identity)
        wait_for_status(hac, '"accounting":{"start-failed":1}')
    assert sa.mn_id == identity
    assert f"RADIUS accounting Start of SA {sa.spi:08x} (mn-id={identity}) not answered" in \
        hac.log_path.read_text("utf-8", "replace")
