"""``mip6-lab lke --netns``: the previous access router forwards what is sent to the MN's
previous care-of address after the move (Local Key Exchange, docs/lke.md), the control MN
without LKE loses it, and AR1 refuses and counts the three attacks (root, namespaces).
AR1 is restarted between the key exchange and the move (its LBSAs are durable).
About 30 s."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and raw sockets need root"),
    pytest.mark.skipif(not shutil.which("ip"), reason="needs iproute2 (ip)"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
]

LAB_SCRIPT = Path(sys.executable).with_name("mip6-lab")


def lab_namespaces(tag: str) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(f"{tag}-")]


@pytest.mark.timeout(90)
def test_the_previous_router_forwards_after_the_move_and_refuses_every_attack():
    lab = subprocess.run([str(LAB_SCRIPT), "lke", "--netns"], capture_output=True, text=True,
                         timeout=85)
    assert lab.returncode == 0, lab.stdout + lab.stderr
    lines = lab.stdout.splitlines()
    verdict = json.loads(lines[-1])
    assert verdict["home_registered"] is True
    assert verdict["ar1_lbsas_after_restart"] == 1  # the LBSA file outlived mip6-ar
    # Through AR1's tunnel after the move: what was sent while the MN changed links is
    # lost either way, but once the MN saw AR1's binding, all but a few in flight arrive
    # (a ratio of what was sent then, so a slow machine changes nothing) ...
    assert 0 < verdict["forwarded_after_move"] <= verdict["sent_after_move"]
    assert verdict["sent_after_bound"] > 0
    assert verdict["forwarded_after_bound"] >= 0.9 * verdict["sent_after_bound"]
    # ... the MN's answers from the previous address go back through the reverse tunnel
    # (the core router refuses link 1's addresses from link 2) ...
    assert verdict["reverse_tunneled_after_move"] > 0
    # ... and without LKE the same flow is gone.
    assert verdict["lost_without_lke"] > verdict["control_sent_after_move"] // 2
    for case in ("forged_ke_request", "impostor_dad", "replayed_bu"):
        assert verdict["refused"][case] >= 1, case
    assert verdict["ar1_counters"]["bound"] >= 1
    assert verdict["ar1_counters"]["finished"] >= 1  # the MN proved its new address
    assert verdict["mn_forwarded_by"] == {"2001:db8:a1::100": "2001:db8:a1::1"}
    tag = lines[0].split()[2].split("-")[0]
    assert tag.startswith("lke") and lab_namespaces(tag) == []


def test_without_netns_the_lab_says_what_it_needs():
    lab = subprocess.run([str(LAB_SCRIPT), "lke"], capture_output=True, text=True, timeout=30)
    assert lab.returncode == 2
    assert "--netns" in lab.stderr and "Traceback" not in lab.stderr


def test_sigterm_stops_everything_and_removes_the_namespaces():
    lab = subprocess.Popen([str(LAB_SCRIPT), "lke", "--netns"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    first = lab.stdout.readline()  # printed once the namespaces and servers are up
    assert first.startswith("mip6-lab: namespaces lke"), first
    tag = first.split()[2].split("-")[0]
    assert lab_namespaces(tag)
    lab.terminate()
    _, stderr = lab.communicate(timeout=60)
    assert lab.returncode == 130, stderr
    assert "interrupted" in stderr
    assert lab_namespaces(tag) == []
    directory = first.rsplit("files in ", 1)[1].split()[0]
    assert subprocess.run(["pgrep", "-f", directory], capture_output=True).stdout == b""
    assert not Path(directory).exists()
