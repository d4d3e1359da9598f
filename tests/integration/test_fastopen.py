"""TCP Fast Open and TLS early data between the MN and a real ``mip6-hac``, in a network
namespace of its own (each test a few seconds).

``net.ipv4.tcp_fastopen`` is per network namespace: the test sets it to 3 (client and
server) in a namespace it creates, runs the HAC and the MN there on 127.0.0.1
(``fastopen_scenario.py``) and reads the namespace's TcpExt counters: the first
bootstrap only fetches the cookie, the returning MN's SYN carries its ClientHello and
the HAC accepts it (TCPFastOpenPassive), and with ``tcp_fast_open = 0`` the HAC takes no
data from a SYN and every bootstrap still succeeds. With ``tls.early_data`` the returning
MN's Init rides as early data in that SYN, and the bootstrap succeeds on it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace"),
]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace():
    name = f"mip6tfo{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        inside = ["ip", "netns", "exec", name]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*inside, "sh", "-c", "echo 3 > /proc/sys/net/ipv4/tcp_fastopen"],
                       check=True)  # this namespace's value, client and server
        yield inside
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def run_scenario(inside: list[str], directory: Path, fast_open: int,
                 early_data: bool = False) -> dict:
    done = subprocess.run(
        [*inside, sys.executable, "-m", "tests.integration.fastopen_scenario", str(directory),
         str(fast_open), str(int(early_data))], cwd=REPO, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_returning_mn_sends_its_client_hello_in_the_syn(namespace, tmp_path):
    outcome = run_scenario(namespace, tmp_path, 256)
    first, *returning = outcome["runs"]
    assert first["TCPFastOpenPassive"] == 0  # no cookie yet: the SYN asked for one
    assert [run["TCPFastOpenPassive"] for run in returning] == [1, 1]
    assert [run["TCPFastOpenActive"] for run in returning] == [1, 1]
    assert len({run["spi"] for run in [first, *returning]}) == 3  # three SAs, all bootstraps done
    assert not any(run["early_data"] for run in [first, *returning])  # not asked for
    # A HAC gone while the MN holds its cookie: still a failure to connect.
    assert outcome["after_stop"] == ["connect", "connect"]


def test_a_returning_mn_sends_its_init_as_early_data_in_the_syn(namespace, tmp_path):
    outcome = run_scenario(namespace, tmp_path, 256, early_data=True)
    first, *returning = outcome["runs"]
    assert not first["early_data"]  # no ticket yet
    assert [run["early_data"] for run in returning] == [True, True]
    assert [run["TCPFastOpenPassive"] for run in returning] == [1, 1]
    assert len({run["spi"] for run in [first, *returning]}) == 3
    assert outcome["after_stop"] == ["connect", "connect"]  # cookie and early data both sent


def test_without_fast_open_the_hac_takes_no_syn_data_and_still_bootstraps(namespace, tmp_path):
    outcome = run_scenario(namespace, tmp_path, 0)
    runs = outcome["runs"]
    assert [run["TCPFastOpenPassive"] for run in runs] == [0, 0, 0]
    assert len({run["spi"] for run in runs}) == 3
    assert outcome["after_stop"] == ["connect", "connect"]
