"""``mip6-mn register``/``up`` failing the way a user meets it: one line on stderr that
names the peer and the step, exit status 1 (it ran and failed) or 2 (nothing was sent),
never a traceback; progress while it retries; ``--timeout`` bounding the whole command;
and the signals of a kept binding (SIGUSR1 status, SIGHUP reload, SIGTERM de-registers).
"""

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aaa_mip6 import pki
from lab.processes import free_port, stop_process
from lab.servers.hac import HacProcess, make_setup, mn_ids

pytestmark = pytest.mark.integration

MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
OUTER_BOUND = 60  # seconds: the test fails rather than hangs; not a measure of speed


def run_mn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MN_SCRIPT), *args], capture_output=True, text=True,
                          timeout=OUTER_BOUND, stdin=subprocess.DEVNULL)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def dead_ha_port():
    """A UDP port on ::1 nobody listens on (taken and let go again)."""
    return free_port("::1", socket.SOCK_DGRAM)


@pytest.fixture(scope="module")
def hac(tmp_path_factory, dead_ha_port):
    """A HAC that names an HA at [::1]:dead_ha_port (IPv6 only)."""
    setup = make_setup(tmp_path_factory.mktemp("hac"), identities=mn_ids(2))
    with HacProcess(setup, ha=f"[::1]:{dead_ha_port}") as process:
        yield process


def registration(hac: HacProcess, tmp_path: Path, *extra: str, command="register") -> list[str]:
    identity = sorted(hac.setup.psks)[0]
    psk_file = tmp_path / "mn.psk"
    pki.write_private(psk_file, hac.setup.psks[identity].hex().encode() + b"\n")
    return [command, "--hac", hac.address, "--ca", str(hac.setup.ca.cert_path),
            "--id", identity, "--psk-file", str(psk_file), *extra]


def test_a_dead_ha_ends_within_timeout_naming_the_ha_and_the_step(hac, dead_ha_port,
                                                                   tmp_path):
    done = run_mn(*registration(hac, tmp_path, "--timeout", "5"))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith("mip6-mn: registration with the home agent ")
    assert f"[::1]:{dead_ha_port}" in line and "no answer to" in line, line
    progress = [text for text in done.stdout.splitlines() if text.startswith("retrying ")]
    assert progress and "attempt 2 of 7 sent, next try in 3 s" in progress[0], done.stdout
    assert "giving up in" in progress[-1], done.stdout


def test_progress_and_failure_as_json_lines(hac, dead_ha_port, tmp_path):
    done = run_mn(*registration(hac, tmp_path, "--timeout", "3", "--json"))
    assert done.returncode == 1
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["event"] == "retrying" and events[0]["ha"] == f"[::1]:{dead_ha_port}"
    assert events[0]["attempt"] == 2 and events[0]["of"] == 7
    assert "[::1]" in one_line(done.stderr)


def test_a_care_of_address_not_on_this_host_is_a_usage_error(hac, tmp_path):
    # Only bound (which fails), never sent from: nothing leaves this host.
    done = run_mn(*registration(hac, tmp_path, "--care-of", "2001:db8::99"))
    assert done.returncode == 2
    assert "--care-of 2001:db8::99: not an address of this host" in one_line(done.stderr)


def test_an_ipv4_care_of_address_with_an_ipv6_only_ha_says_so(hac, dead_ha_port, tmp_path):
    done = run_mn(*registration(hac, tmp_path, "--care-of", "127.0.0.1", "--timeout", "10"))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "from care-of 127.0.0.1" in line and "no IPv4 address" in line, line
    assert f"[::1]:{dead_ha_port}" in line


def test_an_unreachable_hac_names_the_hac_and_the_step(tmp_path):
    ca = pki.make_ca(tmp_path)
    port = free_port()
    done = run_mn("register", "--hac", f"127.0.0.1:{port}", "--ca", str(ca.cert_path),
                  "--id", "mn@example.org", "--psk", "00112233", "--timeout", "5")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith(f"mip6-mn: bootstrap with the HAC 127.0.0.1:{port} failed at connect")


def test_start_up_failures_are_one_line_and_exit_2(hac, tmp_path):
    missing = run_mn(*registration(hac, tmp_path)[:-2], "--psk-file", str(tmp_path / "none"))
    assert missing.returncode == 2 and "--psk-file" in one_line(missing.stderr)
    long_name = run_mn(*registration(hac, tmp_path, "--tun", "x" * 20, command="up"))
    assert long_name.returncode == 2 and "--tun" in one_line(long_name.stderr)
    taken = run_mn(*registration(hac, tmp_path, "--tun", "lo", command="up"))
    assert taken.returncode == 2 and "--tun lo" in one_line(taken.stderr)


def test_options_without_effect_and_exposed_secret_files_warn(hac, tmp_path):
    arguments = registration(hac, tmp_path, "--password", "x", "--timeout", "2")
    psk_file = Path(arguments[arguments.index("--psk-file") + 1])
    psk_file.chmod(0o644)
    done = run_mn(*arguments)
    assert "mip6-mn: --password has no effect without --eap" in done.stderr
    assert f"--psk-file {psk_file} is readable by group or others" in done.stderr
    assert "chmod 600" in done.stderr and "Traceback" not in done.stderr


def test_version():
    done = run_mn("--version")
    assert done.returncode == 0 and done.stdout.startswith("mip6-mn ")


# --------------------------------------------------------------------------- signals


def start_ha(store_url: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "ha.cli", "--listen", f"[::1]:{port}", "--store", store_url,
         "--log-level", "info"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + OUTER_BOUND
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if "listening on" in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail("mip6-ha did not start")


class Lines:
    """A process's stdout lines, read in a thread; next() waits (bounded) for a match."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._ready:
                self.lines.append(line)
                self._ready.notify_all()

    def wait_for(self, pattern: str) -> str:
        deadline = time.monotonic() + OUTER_BOUND
        with self._ready:
            while time.monotonic() < deadline:
                found = [line for line in self.lines if re.search(pattern, line)]
                if found:
                    return found[0]
                self._ready.wait(0.5)
        pytest.fail(f"no line matching {pattern!r} in {self.lines}")


def test_kept_binding_answers_sigusr1_sighup_and_sigterm(tmp_path):
    ha_port = free_port("::1", socket.SOCK_DGRAM)
    setup = make_setup(tmp_path / "hac", identities=mn_ids(1))
    with HacProcess(setup, ha=f"[::1]:{ha_port}") as hac:
        ha = start_ha(setup.store_url, ha_port)
        try:
            mn = subprocess.Popen(
                [str(MN_SCRIPT), *registration(hac, tmp_path, "--keep", "--care-of", "::1")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                stdin=subprocess.DEVNULL)
            try:
                out, err = Lines(mn.stdout), Lines(mn.stderr)
                out.wait_for(r"^registered ")
                mn.send_signal(signal.SIGUSR1)
                status = out.wait_for(r"^status ")
                assert "registered True" in status and f"[::1]:{ha_port}" in status
                mn.send_signal(signal.SIGHUP)
                err.wait_for(r"reload: credentials read again")
                mn.send_signal(signal.SIGTERM)
                assert mn.wait(timeout=OUTER_BOUND) == 0
                out.wait_for(r"^deregistered ")
                assert not [line for line in err.lines if "Traceback" in line]
            finally:
                stop_process(mn)
        finally:
            stop_process(ha)


def test_sigterm_while_retrying_says_what_it_stopped(hac, dead_ha_port, tmp_path):
    mn = subprocess.Popen([str(MN_SCRIPT), *registration(hac, tmp_path, "--timeout", "50")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL)
    try:
        Lines(mn.stdout).wait_for(r"^retrying ")
        mn.send_signal(signal.SIGTERM)
        mn.wait(timeout=OUTER_BOUND)
        stderr = mn.stderr.read()  # stdout is drained by Lines' thread
    finally:
        stop_process(mn)
    assert mn.returncode == 1
    assert one_line(stderr) == ("mip6-mn: stopped by a signal during the registration with "
                                f"the home agent [::1]:{dead_ha_port}")
