"""``mip6-ha`` as an operator meets it: every start-up failure one line with exit status 2
(configuration) or 1 (the world), ``--check-config``, warnings for settings without
effect and exposed key files, why datagrams are dropped at info level, and the signals
(SIGUSR1 status, SIGHUP reload, SIGTERM stop)."""

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from lab.processes import free_port, stop_process
from tests.integration.test_mn_failures import Lines

pytestmark = pytest.mark.integration

OUTER_BOUND = 60  # seconds: the test fails rather than hangs; not a measure of speed


def run_ha(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ha.cli", *args], capture_output=True,
                          text=True, timeout=OUTER_BOUND)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path}/sa.db"


def test_port_in_use_is_a_runtime_failure(store):
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        taken.bind(("::1", 0))
        port = taken.getsockname()[1]
        done = run_ha("--listen", f"[::1]:{port}", "--store", store)
    assert done.returncode == 1
    assert f"mip6-ha: listen [::1]:{port}: Address already in use" in one_line(done.stderr)


def test_store_unreachable_is_a_runtime_failure_without_the_password(tmp_path):
    port = free_port()  # nothing listens there
    done = run_ha("--listen", "[::1]:0", "--state", str(tmp_path / "state"),
                  "--store", f"postgresql://mip6:s3cret-pw@127.0.0.1:{port}/sa")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "cannot connect to PostgreSQL" in line and "s3cret-pw" not in line


@pytest.mark.parametrize(("flags", "expected"), [
    (["--status-file", "/nonexistent-dir/status.json"],
     "status_file /nonexistent-dir/status.json: directory /nonexistent-dir does not exist"),
    (["--tun", "lo"], "tun: cannot create TUN interface lo"),
    (["--tun", "x" * 16], "tun (--tun): the interface name"),
    (["--listen", "::1:7872"], "write"),
])
def test_configuration_failures_exit_2_with_one_line(store, flags, expected):
    listen = [] if "--listen" in flags else ["--listen", "[::1]:0"]
    done = run_ha(*listen, "--store", store, *flags)
    assert done.returncode == 2
    line = one_line(done.stderr)
    if flags[0] == "--listen":
        assert "[::1]:7872" in line and "write [::1]:7872" in line, line
    else:
        assert expected in line, line


def test_check_config_summarises_or_gives_the_one_line_error(store, tmp_path):
    port = free_port("::1", socket.SOCK_DGRAM)
    done = run_ha("--listen", f"[::1]:{port}", "--store", store, "--check-config",
                  "--status-file", str(tmp_path / "status.json"))
    assert done.returncode == 0, done.stderr
    assert f"listen [::1]:{port}: free" in done.stdout and "store: opened" in done.stdout
    assert done.stdout.splitlines()[-1] == "mip6-ha: configuration OK"
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        taken.bind(("::1", port))
        busy = run_ha("--listen", f"[::1]:{port}", "--store", store, "--check-config")
    assert busy.returncode == 1 and "Address already in use" in one_line(busy.stderr)
    with socket.socket() as taken:  # the metrics port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = f"127.0.0.1:{taken.getsockname()[1]}"
        busy = run_ha("--listen", "[::1]:0", "--store", store, "--check-config",
                      "--metrics", metrics)
    assert busy.returncode == 1
    assert one_line(busy.stderr).startswith(
        f"mip6-ha: metrics.listen (--metrics): listen {metrics}")
    tun = run_ha("--listen", "[::1]:0", "--store", store, "--tun", "lo", "--check-config")
    assert tun.returncode == 2 and "tun: cannot create TUN interface lo" in one_line(tun.stderr)


def test_settings_without_effect_and_an_exposed_store_warn(store, tmp_path):
    (tmp_path / "sa.db").touch(mode=0o644)
    (tmp_path / "sa.db").chmod(0o644)
    done = run_ha("--listen", "[::1]:0", "--store", store, "--tun-route", "2001:db8:1::/64",
                  "--check-config")
    assert done.returncode == 0, done.stderr
    assert "tun_route (--tun-route) has no effect without tun (--tun)" in done.stderr
    assert f"store {tmp_path / 'sa.db'} is readable by group or others" in done.stderr


def test_version():
    done = run_ha("--version")
    assert done.returncode == 0 and done.stdout.startswith("mip6-ha ")


def start(*args: str) -> tuple[subprocess.Popen, Lines, int]:
    process = subprocess.Popen([sys.executable, "-m", "ha.cli", *args],
                               stderr=subprocess.PIPE, text=True)
    lines = Lines(process.stderr)
    listening = lines.wait_for(r"listening on \[::1\]:\d+")
    return process, lines, int(listening.rsplit(":", 1)[1])


def test_drops_are_logged_at_info_with_the_reason_and_the_sender(store):
    process, lines, port = start("--listen", "[::1]:0", "--store", store)
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as mn:
            mn.bind(("::1", 0))
            for _ in range(5):
                mn.sendto(b"\x08not a packet", ("::1", port))
            sender = mn.getsockname()[1]
            line = lines.wait_for(r"dropped a packet from")
        assert "INFO" in line and f"[::1]:{sender}" in line and "malformed" in line
        assert "--home-agent" in line  # the hint for the misconfiguration behind it
        time.sleep(0.5)  # the other four arrive within the interval: held back, not logged
        assert len([text for text in lines.lines if "dropped a packet" in text]) == 1
    finally:
        stop_process(process)


def test_sigusr1_status_sighup_reload_sigterm_stop(store, tmp_path):
    config = tmp_path / "ha.toml"
    first, second = tmp_path / "status.json", tmp_path / "status2.json"
    config.write_text(f'status_file = "{first}"\nmax_lifetime = 600\n[log]\nlevel = "info"\n')
    process, lines, _ = start("--config", str(config), "--listen", "[::1]:0",
                              "--store", store)
    try:
        process.send_signal(signal.SIGUSR1)
        lines.wait_for(r"status \{")
        deadline = time.monotonic() + OUTER_BOUND
        while not first.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(first.read_text())["bindings"] == 0
        config.write_text(f'status_file = "{second}"\nmax_lifetime = 900\n'
                          '[log]\nlevel = "debug"\n')
        process.send_signal(signal.SIGHUP)
        assert "max_lifetime" in lines.wait_for(r"reload: .* changed; that takes a restart")
        lines.wait_for(r"reloaded: log.level debug, status_file " + str(second))
        process.send_signal(signal.SIGUSR1)
        while not second.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.exists()
        config.write_text('status_file = "/nonexistent-dir/status.json"\n')
        process.send_signal(signal.SIGHUP)
        lines.wait_for(r"reload: status_file .* does not exist; the running settings stay")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=OUTER_BOUND) == 0
        assert not [line for line in lines.lines if "Traceback" in line]
    finally:
        stop_process(process)
