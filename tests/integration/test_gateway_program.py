"""``mip6-aaa-gw`` as a real process: every start-up failure is one line and exit 2,
``--check-config``, and its signals (SIGUSR1 status, SIGHUP reload, SIGTERM stop)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aaa_mip6 import pki
from lab.processes import POLL_INTERVAL, stop_process

pytestmark = pytest.mark.integration

SECRET = "s3cret-never-shown"
RUN_LIMIT = 20.0  # seconds for a process to start, fail or answer a signal


def command(*options: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *options]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("gw-program")
    ca = pki.make_ca(directory)
    gw = pki.make_cert(directory, ca, "gw", dns_names=("gw.example.net",))
    other = pki.make_cert(directory, ca, "other", dns_names=("other.example.net",))
    secret = directory / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    return {"ca": ca.cert_path, "cert": gw.cert_path, "key": gw.key_path,
            "other-key": other.key_path, "secret": secret, "dir": directory}


def base(files, *, secret=None, key=None) -> list[str]:
    return ["--origin-host", "gw.example.net", "--origin-realm", "example.net",
            "--radius-server", "127.0.0.1:1812",
            "--radius-secret-file", str(secret or files["secret"]),
            "--cert", str(files["cert"]), "--key", str(key or files["key"]),
            "--peer-ca", str(files["ca"])]


def run(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*options), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=RUN_LIMIT)


CASES = {
    "cert/key mismatch": (lambda f: base(f, key=f["other-key"]),
                          "tls.key (--key): key file", "does not match certificate file"),
    "unreadable key": (lambda f: base(f, key=f["dir"]), "tls.key (--key)", "cannot read"),
    "unreadable secret file": (lambda f: base(f, secret=f["dir"]),
                               "radius.secret_file (--radius-secret-file)", "cannot read"),
    "missing secret file": (lambda f: base(f, secret=f["dir"] / "absent"),
                            "radius.secret_file (--radius-secret-file)",
                            "No such file or directory"),
    "bad RADIUS server": (lambda f: [*base(f), "--radius-server", "radius.example.net"],
                          "radius.servers (--radius-server)", "expected an IP address"),
    "NAS address not on this host": (lambda f: [*base(f), "--nas-address", "192.0.2.77"],
                                     "radius.nas_address (--nas-address) 192.0.2.77",
                                     "not an address of this host"),
    "multi-round timeout 0": (lambda f: [*base(f), "--multi-round-timeout", "0"],
                              "eap.multi_round_timeout (--multi-round-timeout)", "1..86400"),
    "watchdog 1": (lambda f: [*base(f), "--watchdog", "1"],
                   "diameter.watchdog (--watchdog)", "6..86400"),
}


@pytest.mark.parametrize("check", [False, True], ids=["start", "check-config"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_start_up_failure_is_one_line_and_exit_2(files, case, check):
    options, where, problem = CASES[case]
    done = run(*options(files), "--listen", "127.0.0.1:0", *(["--check-config"] * check))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mip6-aaa-gw: "), done.stderr
    assert where in lines[0] and problem in lines[0]
    assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout


def test_a_port_in_use_is_one_line_and_exit_1(files):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for check in ([], ["--check-config"]):
            done = run(*base(files), "--listen", f"127.0.0.1:{port}", *check)
            assert done.returncode == 1  # the world must change, not the configuration
            [line] = done.stderr.splitlines()
            assert line.startswith(f"mip6-aaa-gw: diameter.listen (--listen) 127.0.0.1:{port}: "
                                   "cannot ")
            assert "in use" in line


def test_check_config_passes_a_good_configuration_and_version_prints(files, tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text(f'''
[diameter]
origin_host = "gw.example.net"
origin_realm = "example.net"
listen = "127.0.0.1:0"
[tls]
cert = "{files['cert']}"
key = "{files['key']}"
peer_ca = "{files['ca']}"
[radius]
servers = ["127.0.0.1:1812"]
secret_file = "{files['secret']}"
''')
    done = run("--config", str(config), "--check-config")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mip6-aaa-gw: configuration OK: gw.example.net (realm "
                                  "example.net) on 127.0.0.1:0 (TLS); RADIUS 127.0.0.1:1812")
    assert done.stderr == ""
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("mip6-aaa-gw ")


def _wait_for(log_path: Path, pattern: str, process: subprocess.Popen, start: int = 0):
    """The first match of ``pattern`` in the log after offset ``start`` (bounded)."""
    deadline = time.monotonic() + RUN_LIMIT
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")[start:]
        found = re.search(pattern, text)
        if found:
            return found
        assert process.poll() is None, f"mip6-aaa-gw exited: {text}"
        time.sleep(POLL_INTERVAL)
    raise AssertionError(f"no {pattern!r} in {log_path}")


def test_signals_status_reload_and_stop(files, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    log_path = tmp_path / "gw.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command(*base(files, secret=secret), "--listen", "127.0.0.1:0"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        port = int(_wait_for(log_path, r"listening on 127\.0\.0\.1:(\d+)", process).group(1))
        with socket.create_connection(("127.0.0.1", port)):  # a peer not yet in TLS
            # connect() returns once the kernel has the connection; the gateway lists the
            # peer only once its reactor has accepted it: ask until it does (bounded).
            deadline = time.monotonic() + RUN_LIMIT
            while True:
                mark = log_path.stat().st_size
                os.kill(process.pid, signal.SIGUSR1)
                status = _wait_for(log_path, r"status: [^\n]*\n", process, mark).group(0)
                if "peers [none]" not in status or time.monotonic() > deadline:
                    break
                time.sleep(POLL_INTERVAL)
        assert re.search(r"peers \[127\.0\.0\.1:\d+ wait-cer\]", status), status
        assert "requests 0" in status and "conversations 0" in status

        secret.write_text("another-secret\n")
        mark = log_path.stat().st_size
        os.kill(process.pid, signal.SIGHUP)
        _wait_for(log_path, r"reloaded: RADIUS secret from ", process, mark)
        secret.write_text("")
        mark = log_path.stat().st_size
        os.kill(process.pid, signal.SIGHUP)
        _wait_for(log_path, r"reload failed, settings unchanged: .*is empty", process, mark)
        assert process.poll() is None

        process.terminate()
        assert process.wait(RUN_LIMIT) == 0
    finally:
        stop_process(process)
    text = log_path.read_text()
    assert "Traceback" not in text and SECRET not in text and "another-secret" not in text


def test_peers_on_the_control_socket(files, tmp_path):
    import json
    import stat

    control = tmp_path / "gw.sock"
    log_path = tmp_path / "gw.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command(*base(files), "--listen", "127.0.0.1:0", "--control", str(control)),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        port = int(_wait_for(log_path, r"listening on 127\.0\.0\.1:(\d+)", process).group(1))
        assert stat.S_IMODE(os.stat(control).st_mode) == 0o600
        with socket.create_connection(("127.0.0.1", port)):  # a peer not yet in TLS
            deadline = time.monotonic() + RUN_LIMIT
            while True:  # listed once the reactor has accepted it (bounded)
                reply = run("peers", "--control", str(control), "--json")
                assert reply.returncode == 0, reply.stderr
                answer = json.loads(reply.stdout)
                if answer["peers"] or time.monotonic() > deadline:
                    break
                time.sleep(POLL_INTERVAL)
        [peer] = answer["peers"]
        assert peer["state"] == "wait-cer" and peer["peer"].startswith("127.0.0.1:")
        assert answer["counters"]["requests"] == 0 and answer["conversations"] == 0
        text = run("peers", "--control", str(control)).stdout
        assert text.startswith("PEER") and "counters.requests 0" in text
    finally:
        stop_process(process)
    gone = run("peers", "--control", str(control))
    assert gone.returncode == 3 and "no mip6-aaa-gw listening on" in gone.stderr
