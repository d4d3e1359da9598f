"""Failover benchmark: how long MNs take to be registered again when a HAC or an HA dies or
an HA restarts (docs/performance.md, section "Failover").

Real ``mip6-hac`` and ``mip6-ha`` processes on loopback (the HAs read SAs from the HACs'
SQLite store), MNs simulated by ``mip6-load`` (its ``--events`` file times every
attempt). Each figure is compared with a baseline measured in the same run: the
bootstrap latency, or the bootstrap plus first registration, with nothing failing.

- ``hac_dead_first``: ``--hac DEAD,LIVE`` where DEAD refuses connections (the HAC
  process is gone, its host answers RST): bootstrap p50/p99 against ``--hac LIVE``.
- ``hac_blackholed_first``: DEAD accepts TCP but never answers TLS (the HAC's host hangs):
  the MN waits its share of ``--timeout`` (``mn.hacs``), then the live HAC answers.
- ``ha_dies``: two HAs, MNs spread over them round robin; one HA is killed (SIGKILL).
  Each MN on it notices at its next refresh (0.75 x ``--lifetime``) once ``--bu-attempts``
  Binding Updates go unanswered (1 + 2 + 4 s for 3), goes back to the HAC and registers
  with whatever HA the HAC names. Figures: seconds from the kill to registered again, and
  from the MN's decision to registered again; rebootstraps per recovered MN (the HAC,
  round robin and unaware the HA is down, may name the dead one again).
- ``ha_restarts``: one HA killed and started again on the same port; MNs with keep-alives
  every ``--keepalive`` s draw a Binding Error from the restarted HA (it lost its
  bindings; it reads the SAs from the store) and register again at once: seconds from
  the HA listening again to registered, per MN.

Usage: .venv/bin/python bench/failover.py [--mns N] [--lifetime S] [--bu-attempts K]
       [--keepalive S]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import emit, latency_summary  # noqa: E402
from lab.processes import stop_process  # noqa: E402
from lab.servers.hac import HacProcess, make_setup, mn_ids  # noqa: E402
from tests.integration.haproc import running_ha  # noqa: E402

LOAD = Path(sys.executable).with_name("mip6-load")
WAIT = 180.0  # seconds any one run or wait may take
ROUNDS = 3  # rounds of the HAC figures


def load(hac_addresses: list[str], setup, directory: Path, *extra: str) -> subprocess.Popen:
    events = directory / "events.jsonl"
    return subprocess.Popen(
        [str(LOAD), "--hac", ",".join(hac_addresses), "--ca", str(setup.ca.cert_path),
         "--psk-file", str(setup.psk_file), "--quiet", "--events", str(events), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=WAIT)
    if process.returncode != 0:
        raise RuntimeError(f"mip6-load failed: {err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


def events_of(directory: Path) -> list[dict]:
    path = directory / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_events(directory: Path, ready, limit: float = WAIT) -> list[dict]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        events = events_of(directory)
        if ready(events):
            return events
        time.sleep(0.05)
    raise RuntimeError("the events did not come in time")


def run_dir(base: Path, name: str) -> Path:
    directory = base / name
    directory.mkdir()
    return directory


def ms(latencies) -> dict:
    return latency_summary(latencies)


def bootstrap_latencies(events: list[dict]) -> list[float]:
    return [e["latency_s"] for e in events if e["step"] == "bootstrap" and e["status"] == "ok"]


def hac_figures(base: Path, mns: int) -> None:
    setup = make_setup(base / "hac", identities=mn_ids(mns))
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{refusing.getsockname()[1]}"
    refusing.close()  # bound once, closed: connections to it are refused
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(mns)  # the kernel accepts, nobody answers
    blackholed = f"127.0.0.1:{hanging.getsockname()[1]}"
    with HacProcess(setup) as hac:
        runs: dict[str, list[float]] = {}
        for round_number in range(ROUNDS):  # alternating; each figure's best round is kept
            for name, hacs, extra in (("baseline", [hac.address], ()),
                                      ("dead_first", [dead, hac.address], ()),
                                      ("blackholed_first", [blackholed, hac.address],
                                       ("--timeout", "10"))):
                directory = run_dir(base, f"hac-{name}-{round_number}")
                finish(load(hacs, setup, directory, "--mns", str(mns), "--rate", "20", *extra))
                latencies = bootstrap_latencies(events_of(directory))
                if name not in runs or (ms(latencies)["p50_ms"] or 1e9) < (
                        ms(runs[name])["p50_ms"] or 1e9):
                    runs[name] = latencies
    hanging.close()
    baseline = ms(runs["baseline"])
    emit("failover_hac_baseline", mns=mns, bootstraps=len(runs["baseline"]), **baseline)
    for name in ("dead_first", "blackholed_first"):
        figures = ms(runs[name])
        emit(f"failover_hac_{name}", mns=mns, bootstraps=len(runs[name]), **figures,
             ratio_p50=round(figures["p50_ms"] / baseline["p50_ms"], 2)
             if figures["p50_ms"] and baseline["p50_ms"] else None)


def ha_dies_figures(base: Path, mns: int, lifetime: int, attempts: int) -> None:
    setup = make_setup(base / "hac-ha", identities=mn_ids(mns))
    first_dir, second_dir = run_dir(base, "ha1"), run_dir(base, "ha2")
    directory = run_dir(base, "ha-dies")
    # room for several bounces off the dead HA (each: 1.5 + 3 + 6 ... s of silence)
    duration = lifetime + 6 * sum(1.5 * 2 ** n for n in range(attempts)) + 10
    with running_ha(first_dir, setup.store_url, ["[::1]:0"]) as first, \
            running_ha(second_dir, setup.store_url, ["[::1]:0"]) as second, \
            HacProcess(setup, ha=f"[::1]:{first.ports[0]}",
                       extra_args=["--ha", f"[::1]:{second.ports[0]}"]) as hac:
        victim = f"[::1]:{first.ports[0]}"
        process = load([hac.address], setup, directory, "--mns", str(mns), "--rate", "50",
                       "--register", "--lifetime", str(lifetime), "--bu-attempts",
                       str(attempts), "--duration", str(duration))
        try:
            events = wait_events(directory, lambda es: sum(
                1 for e in es if e["step"] == "register" and e["status"] == "ok") == mns)
            started = time.monotonic()
            first.process.kill()
            killed_at = max(e["t"] for e in events) + (time.monotonic() - started)
            report = finish(process)
        finally:
            stop_process(process)
    events = events_of(directory)
    baseline = [e["latency_s"] for e in events if e["step"] in ("bootstrap", "register")
                and e["status"] == "ok"]
    on_victim = {e["mn"] for e in events if e["step"] == "register" and e["ha"] == victim}
    recovered = {}
    for event in events:
        if (event["step"] == "reregister" and event["status"] == "ok"
                and event["mn"] in on_victim and event["mn"] not in recovered):
            recovered[event["mn"]] = event
    from_kill = [e["t"] - killed_at for e in recovered.values()]
    decided = [e["latency_s"] for e in recovered.values()]
    rebootstraps = sum(1 for e in events if e["step"] == "rebootstrap" and e["mn"] in on_victim)
    registration_ms = ms(baseline)
    emit("failover_ha_dies", mns=mns, lifetime_s=lifetime, bu_attempts=attempts,
         mns_on_dead_ha=len(on_victim), recovered=len(recovered),
         from_kill_s={"p50": _round(from_kill, 0.5), "max": _round(from_kill, 1.0)},
         from_decision=ms(decided), rebootstraps_per_mn=round(
             rebootstraps / max(1, len(recovered)), 2),
         baseline_first_registration=registration_ms,
         ratio_p50_decision_to_first_registration=round(
             ms(decided)["p50_ms"] / registration_ms["p50_ms"], 2)
         if decided and registration_ms["p50_ms"] else None,
         registered_at_end=report.get("registered_at_end"))


def ha_restarts_figures(base: Path, mns: int, keepalive: float) -> None:
    setup = make_setup(base / "hac-restart", identities=mn_ids(mns))
    ha_dir, again_dir = run_dir(base, "ha-before"), run_dir(base, "ha-after")
    directory = run_dir(base, "ha-restarts")
    with running_ha(ha_dir, setup.store_url, ["[::1]:0"]) as ha:
        port = ha.ports[0]
        with HacProcess(setup, ha=f"[::1]:{port}") as hac:
            process = load([hac.address], setup, directory, "--mns", str(mns), "--rate", "50",
                           "--register", "--keepalive", str(keepalive), "--duration",
                           str(mns / 50 + 15))
            try:
                events = wait_events(directory, lambda es: sum(
                    1 for e in es if e["step"] == "register" and e["status"] == "ok") == mns)
                started = time.monotonic()
                ha.process.kill()
                ha.process.wait()
                with running_ha(again_dir, setup.store_url, [f"[::1]:{port}"],
                                config={"state": str(ha_dir / "ha.state")}):
                    listening_at = max(e["t"] for e in events) + (time.monotonic() - started)
                    report = finish(process)
            finally:
                stop_process(process)
    events = events_of(directory)
    baseline = [e["latency_s"] for e in events if e["step"] == "register" and e["status"] == "ok"]
    again = {}
    for event in events:
        if event["step"] == "reregister" and event["status"] == "ok":
            again.setdefault(event["mn"], event)
    from_restart = [e["t"] - listening_at for e in again.values()]
    emit("failover_ha_restarts", mns=mns, keepalive_s=keepalive, recovered=len(again),
         same_sa=sum(1 for e in again.values() if any(
             r["mn"] == e["mn"] and r["spi"] == e["spi"] for r in events
             if r["step"] == "register")),
         from_ha_listening_s={"p50": _round(from_restart, 0.5),
                              "max": _round(from_restart, 1.0)},
         reregister=ms(e["latency_s"] for e in again.values()),
         baseline_register=ms(baseline), registered_at_end=report.get("registered_at_end"))


def _round(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mns", type=int, default=20)
    parser.add_argument("--lifetime", type=int, default=8)
    parser.add_argument("--bu-attempts", type=int, default=3)
    parser.add_argument("--keepalive", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as directory:
        base = Path(directory)
        hac_figures(base, args.mns)
        ha_dies_figures(base, args.mns, args.lifetime, args.bu_attempts)
        ha_restarts_figures(base, args.mns, args.keepalive)


if __name__ == "__main__":
    main()
