"""``mip6-lab up`` on loopback: HAC + HA + MNs end to end; and the lab's own packet helpers."""

import dataclasses
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import pki
from lab import cli, common, loopback, netns
from lab.common import OutputClosed, check_output, home_pool4
from lab.loopback import Echo, SimulatedHomeNetwork, internet_checksum, udp_drops
from lab.processes import free_port, stop_process
from lab.reactors import run_on_fresh_reactor
from lab.servers.hac import toml_text
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup

BIN_DIR = Path(sys.executable).parent
LAB_SCRIPT = BIN_DIR / "mip6-lab"
MN_ID = "mn1@lab.example"
V6 = (IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:c::2"))
V4 = (IPv4Address("192.0.2.5"), IPv4Address("192.0.2.130"))

addresses = st.sampled_from([V6, V4])
echoes = st.builds(
    lambda pair, identifier, sequence, data, reply: Echo(*pair, identifier, sequence, data, reply),
    addresses, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=64),
    st.booleans())


# --------------------------------------------------------------------------- packet helpers


@given(echoes)
def test_echo_round_trip_with_valid_checksums(echo):
    packet = echo.packet()
    assert Echo.parse(packet) == echo
    if echo.source.version == 4:
        assert internet_checksum(packet[:20]) == 0
        assert internet_checksum(packet[20:]) == 0


@given(st.binary(max_size=120))
def test_arbitrary_bytes_are_no_echo_or_an_exact_one(data):
    echo = Echo.parse(data)
    assert echo is None or data.startswith(echo.packet())


def test_corrupted_echo_is_refused():
    packet = bytearray(Echo(*V6, 1, 2, b"data").packet())
    packet[-1] ^= 1
    assert Echo.parse(bytes(packet)) is None


def test_simulated_home_network_answers_its_hosts_and_routes_the_rest_back():
    network = SimulatedHomeNetwork([V6[1]])
    try:
        request = Echo(*V6, 7, 1, b"x")
        to_elsewhere = Echo(V6[0], IPv6Address("2001:db8:1::6"), 7, 2)
        assert network.write(request.packet())
        assert network.write(to_elsewhere.packet())
        assert network.read_batch() == [request.answer().packet(), to_elsewhere.packet()]
        assert network.read_batch() == []
        assert network.answered == 1
    finally:
        network.close()


@pytest.mark.parametrize("count, pool", [
    (1, "192.0.2.0/30"), (6, "192.0.2.0/29"), (7, "192.0.2.0/28"), (126, "192.0.2.0/25"),
    (127, "192.0.2.0/24"), (cli.MAX_MNS, "192.0.2.0/24")])
def test_the_ipv4_home_pool_has_an_address_for_every_mn(count, pool):
    # A /25 (126 addresses) used to be fixed: the 127th MN got a 500 from the HAC.
    assert home_pool4(count) == ip_network(pool)
    assert common.CORRESPONDENT4 not in home_pool4(count)


def test_netns_addresses_stay_apart_up_to_the_limit():
    lab = netns.NetnsLab(Path("/nonexistent"), netns.MAX_MNS)
    links = [ip_network(f"{mn.access4[1]}/30", strict=False) for mn in lab.mns]
    others = [ip_network(netns.CN_NETWORK4), ip_network(f"{netns.HA_ADDRESS4}/32"),
              home_pool4(netns.MAX_MNS)]
    networks = links + others
    assert not [(a, b) for i, a in enumerate(networks) for b in networks[i + 1:]
                if a.overlaps(b)]
    assert common.CORRESPONDENT4 in ip_network(netns.CN_NETWORK4)


def test_udp_drops_counts_what_a_full_receive_queue_lost():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        assert udp_drops(port) == 0
        for _ in range(64):
            sender.sendto(b"x" * 1000, ("127.0.0.1", port))
        assert udp_drops(port) > 0


def test_check_output_raises_once_nobody_reads_the_pipe():
    reading, writing = os.pipe()
    with os.fdopen(writing, "w") as out:
        check_output(out)
        check_output(io.StringIO())  # no descriptor: nothing to watch
        os.close(reading)
        with pytest.raises(OutputClosed):
            check_output(out)


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert re.fullmatch(r"mip6-lab \S+ \(aaa-mip6, RFC 6618\)\n", capsys.readouterr().out)


@pytest.mark.parametrize("settings", [
    {"listen": "[2001:db8::1]:4433", "limits.rate": 5.0, "limits.burst": 10,
     "home_agents.addresses": [{"ip6": "2001:db8::1", "port": 7872}], "log": {"json": True}},
    {"listen": "[2001:db8::1]:4433", "limits": {"rate": 5.0, "burst": 10},
     "home_agents": {"addresses": [{"ip6": "2001:db8::1", "port": 7872}]}, "log.json": True},
], ids=["dotted keys", "tables"])
def test_toml_text_reads_back(settings):
    assert tomllib.loads(toml_text(settings)) == {
        "listen": "[2001:db8::1]:4433", "limits": {"rate": 5.0, "burst": 10},
        "home_agents": {"addresses": [{"ip6": "2001:db8::1", "port": 7872}]},
        "log": {"json": True}}


# --------------------------------------------------------------------------- the lab


@pytest.mark.integration
def test_loopback_lab_with_three_mns_exits_zero():
    done = subprocess.run([str(LAB_SCRIPT), "up", "--mns", "3"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    banner, *_ = done.stdout.splitlines()
    assert banner.endswith("(deleted at exit; --keep-dir keeps it)")
    rows = [line for line in done.stdout.splitlines() if line.startswith("mn")]
    assert len(rows) == 3
    assert all(row.rstrip().endswith("OK") and "::1 -> 127.0.0.1" in row for row in rows)
    assert "totals: 3/3 MNs OK, 72/72 echo replies, 6 registrations" in done.stdout
    assert "mip6-lab: PASS" in done.stdout
    assert "mip6-lab: next: mip6-lab up --netns" in done.stdout


@pytest.mark.integration
@pytest.mark.parametrize("count", [22, cli.MAX_MNS])
def test_loopback_lab_runs_the_whole_documented_range(count):
    # 22 MNs overflowed the HA's UDP receive queue (every MN's echoes at once), 127 the
    # IPv4 home pool; the top of the range takes seconds.
    done = subprocess.run([str(LAB_SCRIPT), "up", "--mns", str(count)], capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"totals: {count}/{count} MNs OK, {24 * count}/{24 * count} echo replies, "
            f"{2 * count} registrations") in done.stdout


@pytest.mark.integration
def test_a_failing_echo_names_its_step_and_destination(tmp_path, monkeypatch):
    class SilentCorrespondent6(SimulatedHomeNetwork):
        def __init__(self, hosts):
            super().__init__(set(hosts) - {common.CORRESPONDENT6})

    monkeypatch.setattr(loopback, "SimulatedHomeNetwork", SilentCorrespondent6)
    monkeypatch.setattr(loopback, "REPLY_TIMEOUT", 0.5)
    results = run_on_fresh_reactor(
        lambda reactor: loopback.run_loopback(reactor, tmp_path, 2, io.StringIO()), limit=60)
    for result in results:
        assert not result.ok
        assert result.error == (f"echo before handover: no reply to 3/3 echo requests to "
                                f"{common.CORRESPONDENT6}")


@pytest.mark.integration
def test_sigusr1_reports_status_and_sighup_changes_nothing():
    lab_process = subprocess.Popen([str(LAB_SCRIPT), "up", "--mns", "30"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lab_process.stdout.readline()  # the banner: the lab runs
    lab_process.send_signal(signal.SIGUSR1)
    lab_process.send_signal(signal.SIGHUP)
    stdout, stderr = lab_process.communicate(timeout=120)
    assert lab_process.returncode == 0, stdout + stderr
    assert re.search(r"^mip6-lab: status: 30 MNs, [\d.]+ s in, files in ", stderr, re.M), stderr
    assert "mip6-lab: SIGHUP: nothing to reload" in stderr
    assert "totals: 30/30 MNs OK" in stdout


@pytest.mark.integration
def test_a_closed_stdout_ends_the_lab_quietly():
    lab_process = subprocess.Popen([str(LAB_SCRIPT), "up", "--mns", "3"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = lab_process.stdout.readline()  # as `mip6-lab up | head -1` reads it
    lab_process.stdout.close()
    stderr = lab_process.stderr.read()
    assert lab_process.wait(timeout=60) == 1
    assert stderr == ""
    directory = re.search(r"store in (\S+)", banner).group(1)
    assert not Path(directory).exists()


@pytest.mark.integration
def test_a_failing_mn_fails_the_lab_but_not_the_others(tmp_path, monkeypatch):
    make_files = loopback.make_files

    def one_wrong_psk(*args, **kwargs):
        files = make_files(*args, **kwargs)
        psks = dict(files.psks, **{"mn2@lab.example": b"\x00" * 16})
        return dataclasses.replace(files, psks=psks)

    monkeypatch.setattr(loopback, "make_files", one_wrong_psk)
    output = tmp_path / "out.txt"
    with open(output, "w") as out:
        results = run_on_fresh_reactor(
            lambda reactor: loopback.run_loopback(reactor, tmp_path, 3, out), limit=60)
    by_id = {result.mn_id: result for result in results}
    assert [by_id[f"mn{n}@lab.example"].ok for n in (1, 2, 3)] == [True, False, True]
    assert "bootstrap" in by_id["mn2@lab.example"].error
    assert "auth from the HAC does not verify" in by_id["mn2@lab.example"].error
    assert "totals: 2/3 MNs OK" in output.read_text()


# --------------------------------------------------------------------------- mip6-mn register


@pytest.fixture
def servers(tmp_path):
    """``mip6-mn register`` for one MN against mip6-ha on [::1] and mip6-hac on 127.0.0.1,
    separate programs sharing a store."""
    setup = make_setup(tmp_path, identities=[MN_ID])
    ha_port = free_port("::1", socket.SOCK_DGRAM)
    ha = subprocess.Popen([str(BIN_DIR / "mip6-ha"), "--listen", f"[::1]:{ha_port}",
                           "--store", setup.store_url, "--log-level", "warning"])
    psk_file = tmp_path / "mn1.psk"
    pki.write_private(psk_file, setup.psks[MN_ID].hex().encode())
    config = {**TEST_CONFIG, "bootstrap": {"hoa_pool4": str(home_pool4(1))}}
    try:
        with HacProcess(setup, config=config, ha=f"[::1]:{ha_port}") as hac:
            yield [str(BIN_DIR / "mip6-mn"), "register", "--hac", hac.address,
                   "--ca", str(setup.ca.cert_path), "--id", MN_ID,
                   "--psk-file", str(psk_file), "--json"]
    finally:
        stop_process(ha)


@pytest.mark.integration
def test_mip6_mn_register_prints_the_binding(servers):
    done = subprocess.run(servers, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)
    assert event["event"] == "registered"
    assert event["mn-id"] == MN_ID
    assert event["care-of-address"] == "::1"
    assert IPv6Address(event["home-address"]) in ip_network(common.HOA_PREFIX)
    assert IPv4Address(event["home-address4"]) in home_pool4(1)
    assert event["status"] == 0 and event["lifetime"] == 600


@pytest.mark.integration
def test_mip6_mn_register_keep_deregisters_on_sigterm(servers):
    keeper = subprocess.Popen([*servers, "--keep"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    first = json.loads(keeper.stdout.readline())
    assert first["event"] == "registered"
    keeper.terminate()
    rest, stderr = keeper.communicate(timeout=30)
    assert keeper.returncode == 0, stderr
    assert [json.loads(line)["event"] for line in rest.splitlines()] == ["deregistered"]
