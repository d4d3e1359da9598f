"""``mip6-load`` and MN failover against a real ``mip6-hac`` and real ``mip6-ha`` processes
on loopback (the HAs read their SAs from the HAC's SQLite store).

- PSK load in two processes with registration and keep-alives: every MN bootstraps and
  registers, the report and the event file agree with the HA's bindings.
- EAP-MD5 load through FreeRADIUS.
- An HA killed under an MN: the MN finds it silent, goes back to the HAC and registers
  with the other HA. An HA restarted (kill -9, same state file): the MNs' keep-alives
  draw Binding Errors and they register again (the HA's restored sequence floor answers
  the first BU with 176, so each takes a new SA from the HAC).
- ``mip6-mn`` with a dead HAC listed first, and a DNS name, bootstraps with the live one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aaa_mip6 import pki
from aaa_mip6.store import open_store
from lab.processes import free_port, stop_process
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids
from tests.integration.haproc import running_ha

pytestmark = pytest.mark.integration

LOAD_SCRIPT = Path(sys.executable).with_name("mip6-load")
MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
RUN_LIMIT = 60.0  # seconds any one mip6-load run may take


def load_command(hac: HacProcess, *extra: str) -> list[str]:
    return [str(LOAD_SCRIPT), "--hac", hac.address, "--ca", str(hac.setup.ca.cert_path),
            "--psk-file", str(hac.setup.psk_file), *extra]


def run_load(command: list[str]) -> tuple[dict, str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_LIMIT,
                          stdin=subprocess.DEVNULL)
    return _report(done.returncode, done.stdout, done.stderr), done.stderr


def start_load(hac: HacProcess, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(load_command(hac, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def load_report(load: subprocess.Popen) -> dict:
    """The report of a :func:`start_load` run, once it ends."""
    out, err = load.communicate(timeout=RUN_LIMIT)
    return _report(load.returncode, out, err)


def _report(returncode: int, out: str, err: str) -> dict:
    """mip6-load's JSON report (its last line), after it exited 0 without a traceback."""
    assert returncode == 0, err
    assert "Traceback" not in err
    return json.loads(out.strip().splitlines()[-1])


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for_event(path: Path, ready, limit: float = 20.0) -> dict:
    """The first event of a running mip6-load's --events file for which ``ready`` holds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                event = json.loads(line)
                if ready(event):
                    return event
        time.sleep(0.1)
    pytest.fail(f"no such event within {limit} s in {path}")


def test_psk_load_in_two_processes_registers_every_mn(tmp_path):
    setup = make_setup(tmp_path / "hac", identities=mn_ids(12))
    events_path, csv_path, plot_path = (tmp_path / "events.jsonl", tmp_path / "report.csv",
                                        tmp_path / "run.png")
    with running_ha(tmp_path, setup.store_url, ["[::1]:0"]) as ha, \
            HacProcess(setup, ha=f"[::1]:{ha.ports[0]}") as hac:
        report, stderr = run_load(load_command(
            hac, "--mns", "12", "--rate", "12", "--duration", "2.5", "--register",
            "--keepalive", "0.5", "--processes", "2", "--events", str(events_path),
            "--csv", str(csv_path), "--plot", str(plot_path)))
        counters = ha.counters(lambda c: c.get("not-forwarding", 0) > 0)

    assert report["ok"]["bootstrap"] == report["ok"]["register"] == 12
    assert sum(report["failed"].values()) == 0 and report["failures"]["by_status"] == {}
    assert report["registered_at_end"] == 12 and report["mns_not_registered"] == 0
    assert report["settings"]["processes"] == 2
    assert 0 < report["latency_s"]["bootstrap"]["p50"] <= report["latency_s"]["bootstrap"]["p99"]
    assert report["latency_s"]["register"]["p99"] < 5
    assert report["counters"]["keepalive-sent"] >= 12
    # the keep-alives passed the HA's checks (no TUN device here to forward them to)
    assert counters["not-forwarding"] >= 1 and counters["registered"] == 12
    events = read_events(events_path)
    assert sorted({event["mn"] for event in events}) == sorted(setup.psks)
    registered = [event for event in events if event["step"] == "register"]
    assert len({event["spi"] for event in registered}) == 12
    assert {event["ha"] for event in registered} == {f"[::1]:{ha.ports[0]}"}
    with open_store(setup.store_url) as store:
        assert all(store.get(event["spi"]) is not None for event in registered)
    assert csv_path.read_text().startswith("key,value\n")
    assert "registered_at_end,12" in csv_path.read_text()
    assert plot_path.read_bytes()[:4] == b"\x89PNG"
    assert "Traceback" not in stderr


def test_eap_md5_load_through_freeradius(tmp_path, freeradius):
    setup = make_setup(tmp_path / "hac")
    secret_file, password_file = tmp_path / "radius.secret", tmp_path / "password"
    pki.write_private(secret_file, freeradius.secret + b"\n")
    pki.write_private(password_file, freeradius.password.encode() + b"\n")
    with HacProcess(setup, config=TEST_CONFIG, extra_args=[
            "--radius-server", f"{freeradius.host}:{freeradius.port}",
            "--radius-secret-file", str(secret_file)]) as hac:
        report, _ = run_load([
            str(LOAD_SCRIPT), "--hac", hac.address, "--ca", str(setup.ca.cert_path),
            "--eap", "md5", "--id-pattern", freeradius.user, "--identity", freeradius.user,
            "--password-file", str(password_file), "--mns", "3", "--rate", "20", "--quiet"])
    assert report["ok"]["bootstrap"] == 3 and report["failed"]["bootstrap"] == 0
    assert report["settings"]["method"] == "md5"


def test_an_mn_whose_ha_dies_registers_with_the_other_ha(tmp_path):
    setup = make_setup(tmp_path / "hac", identities=mn_ids(1))
    events_path = tmp_path / "events.jsonl"
    (tmp_path / "ha1").mkdir()
    (tmp_path / "ha2").mkdir()
    with running_ha(tmp_path / "ha1", setup.store_url, ["[::1]:0"]) as first, \
            running_ha(tmp_path / "ha2", setup.store_url, ["[::1]:0"]) as second, \
            HacProcess(setup, ha=f"[::1]:{first.ports[0]}",
                       extra_args=["--ha", f"[::1]:{second.ports[0]}"]) as hac:
        load = start_load(
            hac, "--mns", "1", "--register", "--lifetime", "4", "--bu-attempts", "2",
            "--duration", "9", "--quiet", "--events", str(events_path))
        try:
            registered = wait_for_event(events_path, lambda e: e["step"] == "register")
            assert registered["ha"] == f"[::1]:{first.ports[0]}"
            first.process.kill()
            report = load_report(load)
        finally:
            stop_process(load)
    events = read_events(events_path)
    again = [e for e in events if e["step"] == "reregister" and e["status"] == "ok"]
    assert again, events
    assert again[0]["ha"] == f"[::1]:{second.ports[0]}"
    assert again[0]["spi"] != registered["spi"]
    # the refresh at 3 s, two silent transmissions (1 + 2 s), then the HAC and the new HA
    assert again[0]["latency_s"] < 5
    assert report["registered_at_end"] == 1


def test_mns_register_again_with_a_restarted_ha(tmp_path):
    setup = make_setup(tmp_path / "hac", identities=mn_ids(4))
    events_path = tmp_path / "events.jsonl"
    restarted = tmp_path / "restarted"
    restarted.mkdir()
    with running_ha(tmp_path, setup.store_url, ["[::1]:0"]) as ha:
        port = ha.ports[0]
        with HacProcess(setup, ha=f"[::1]:{port}") as hac:
            load = start_load(
                hac, "--mns", "4", "--rate", "20", "--register", "--keepalive", "0.3",
                "--duration", "10", "--quiet", "--events", str(events_path))
            try:
                wait_for_event(events_path, lambda e: e["step"] == "register"
                               and e["mn"] == "mn3@example.org")
                ha.process.kill()
                ha.process.wait()
                with running_ha(restarted, setup.store_url, [f"[::1]:{port}"],
                                config={"state": str(tmp_path / "ha.state")}):
                    report = load_report(load)
            finally:
                stop_process(load)
    events = read_events(events_path)
    first = {e["mn"] for e in events if e["step"] == "register" and e["status"] == "ok"}
    again = {e["mn"] for e in events if e["step"] == "reregister" and e["status"] == "ok"}
    assert again == first == set(setup.psks)
    assert report["registered_at_end"] == 4
    assert report["latency_s"]["reregister"]["max"] < 2


def test_mn_bootstraps_with_the_live_hac_when_the_first_is_dead(tmp_path):
    setup = make_setup(tmp_path / "hac", hac_name="localhost")
    mn_id = sorted(setup.psks)[0]
    psk_file = tmp_path / "mn.psk"
    pki.write_private(psk_file, setup.psks[mn_id].hex().encode() + b"\n")
    dead = free_port()
    with HacProcess(setup) as hac:
        common = ["--ca", str(setup.ca.cert_path), "--id", mn_id, "--psk-file", str(psk_file),
                  "--json", "--timeout", "10"]
        listed = subprocess.run(
            [str(MN_SCRIPT), "bootstrap", "--hac", f"127.0.0.1:{dead},{hac.address}", *common],
            capture_output=True, text=True, timeout=RUN_LIMIT)
        by_name = subprocess.run(
            [str(MN_SCRIPT), "bootstrap", "--hac", f"127.0.0.1:{dead}", "--hac",
             f"localhost:{hac.port}", *common], capture_output=True, text=True,
            timeout=RUN_LIMIT)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["mn-id"] == mn_id
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout)["mip6-spi"] != json.loads(listed.stdout)["mip6-spi"]


def test_load_stopped_by_sigterm_still_reports(tmp_path):
    setup = make_setup(tmp_path / "hac", identities=mn_ids(2))
    with HacProcess(setup) as hac:
        events = tmp_path / "events.jsonl"
        load = start_load(hac, "--mns", "2", "--rate", "1", "--duration", "60", "--repeat",
                          "--quiet", "--events", str(events))
        try:
            # A first event means the run is under way: its SIGTERM handler is installed.
            deadline = time.monotonic() + RUN_LIMIT
            while not (events.exists() and events.read_text()):
                assert time.monotonic() < deadline and load.poll() is None
                time.sleep(0.05)
            os.kill(load.pid, signal.SIGTERM)
            report = load_report(load)
        finally:
            stop_process(load)
    assert report["ok"]["bootstrap"] >= 1 and report["elapsed_s"] < 30
