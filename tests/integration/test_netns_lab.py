"""``mip6-lab up --netns``: ping and TCP through real kernel tunnels, across handovers (root)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and TUN devices need root"),
    pytest.mark.skipif(not (shutil.which("ip") and shutil.which("ping")),
                       reason="needs iproute2 (ip) and iputils-ping"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
]

LAB_SCRIPT = Path(sys.executable).with_name("mip6-lab")


def namespaces_of(pid: int) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines()
            if line.startswith(f"m6lab{pid % 100000}-")]


def test_ping_and_one_tcp_connection_survive_two_handovers():
    lab = subprocess.Popen([str(LAB_SCRIPT), "up", "--netns", "--mns", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = lab.communicate(timeout=240)
    assert lab.returncode == 0, stdout + stderr
    rows = [line for line in stdout.splitlines() if line.startswith("mn")]
    assert len(rows) == 2
    for number, row in enumerate(rows, 1):
        assert (f"2001:db8:a:{number}::2 -> 198.51.100.{4 * number + 2} -> "
                f"2001:db8:a:{number}::3") in row
        assert row.rstrip().endswith("OK")
    assert "totals: 2/2 MNs OK, 36/36 echo replies" in stdout
    assert "TCP: 3145728 octets echoed on one connection per MN" in stdout
    assert namespaces_of(lab.pid) == []


def test_ctrl_c_stops_everything_and_removes_the_namespaces():
    lab = subprocess.Popen([str(LAB_SCRIPT), "up", "--netns", "--mns", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = lab.stdout.readline()  # printed once the namespaces and servers are up
    assert first.startswith("mip6-lab: namespaces"), first
    assert namespaces_of(lab.pid)
    time.sleep(0.5)  # somewhere inside the run
    lab.send_signal(signal.SIGINT)
    _, stderr = lab.communicate(timeout=60)
    assert lab.returncode == 130, stderr
    assert "interrupted" in stderr
    assert namespaces_of(lab.pid) == []
    # Every server and MN the lab started was given a file in its directory.
    directory = first.rsplit("logs in ", 1)[1].split()[0]
    leftovers = subprocess.run(["pgrep", "-f", directory], capture_output=True, text=True)
    assert leftovers.stdout == ""
    assert not Path(directory).exists()
