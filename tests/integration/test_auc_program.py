"""``mip6-auc`` as a program: its socket, its files, its signals, and an SQN that survives
kill -9."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from aaa_mip6.milenage import Milenage
from lab.servers import auc

pytestmark = pytest.mark.integration


def ask(socket_path: Path, request: str, directory: Path) -> str:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    local = directory / f"client-{time.monotonic_ns()}"
    client.bind(str(local))
    client.settimeout(5)
    try:
        client.sendto(request.encode(), str(socket_path))
        return client.recv(1000).decode()
    finally:
        client.close()
        local.unlink()


def sqn_of(reply: str) -> int:
    _, _, rand, autn, *_ = reply.split()
    sqn, _ = Milenage(bytes.fromhex(auc.K), bytes.fromhex(auc.OPC)).check_autn(
        bytes.fromhex(rand), bytes.fromhex(autn))
    return int.from_bytes(sqn, "big")


def test_sqn_is_never_issued_twice_across_a_kill(tmp_path):
    with auc.running_auc(tmp_path) as (socket_path, _, process):
        first = sqn_of(ask(socket_path, f"AKA-REQ-AUTH 0{auc.IMSI}", tmp_path))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    with auc.running_auc(tmp_path) as (socket_path, _, _):
        second = sqn_of(ask(socket_path, f"AKA-REQ-AUTH 0{auc.IMSI}", tmp_path))
    assert second > first > int(auc.SQN, 16)


def test_bad_requests_get_failure_and_a_log_line_and_it_keeps_serving(tmp_path):
    with auc.running_auc(tmp_path) as (socket_path, log_path, process):
        assert ask(socket_path, "AKA-REQ-AUTH 999999999999999", tmp_path) \
            == "AKA-RESP-AUTH 999999999999999 FAILURE"
        assert ask(socket_path, "SIM-REQ-AUTH 999999999999999 3", tmp_path).endswith("FAILURE")
        assert ask(socket_path, f"AKA-REQ-AUTH {auc.IMSI}", tmp_path).startswith("AKA-RESP-AUTH")
        assert process.poll() is None
    log = log_path.read_text()
    assert "unknown subscriber" in log and "Traceback" not in log
    assert auc.K not in log and auc.OPC not in log


def test_signals_status_reload_and_stop(tmp_path):
    with auc.running_auc(tmp_path) as (socket_path, log_path, process):
        process.send_signal(signal.SIGUSR1)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while ("reloaded" not in log_path.read_text() or "status" not in log_path.read_text()) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    assert "reloaded: 1 Milenage subscribers" in log_path.read_text()


@pytest.mark.parametrize("arguments, words", [
    ([], "auc.socket (--socket) is required"),
    (["--socket", "{dir}/s"], "give --milenage FILE, --triplets FILE or both"),
    (["--socket", "{dir}/s", "--milenage", "{dir}/missing.db"], "--milenage {dir}/missing.db: "
                                                                 "cannot read"),
    (["--socket", "{dir}/no/such/dir/s", "--triplets", "{dir}/t"], "cannot serve --socket"),
    (["--config", "{dir}/bad.toml"], "unknown key auc.sockets"),
])
def test_start_up_failures_are_one_line(tmp_path, arguments, words):
    (tmp_path / "bad.toml").write_text('[auc]\nsockets = "x"\n')
    auc.triplets_file(tmp_path / "t")
    arguments = [argument.format(dir=tmp_path) for argument in arguments]
    run = subprocess.run([str(auc.AUC), *arguments], capture_output=True, text=True, timeout=30)
    assert run.returncode in (1, 2)
    assert run.stderr.count("\n") == 1 and words.format(dir=tmp_path) in run.stderr, run.stderr


def test_config_file_keys_serve_like_flags(tmp_path):
    config = tmp_path / "auc.toml"
    triplets = auc.triplets_file(tmp_path / "t")
    config.write_text(f'[auc]\nsocket = "{tmp_path}/auc.sock"\ntriplets = "{triplets}"\n')
    process = subprocess.Popen([str(auc.AUC), "--config", str(config)],
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "auc.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        reply = ask(tmp_path / "auc.sock", f"SIM-REQ-AUTH 1{auc.TRIPLET_IMSI} 2", tmp_path)
        assert reply.startswith(f"SIM-RESP-AUTH 1{auc.TRIPLET_IMSI} a0a1a2a3a4a5a6a7:")
        assert (tmp_path / "auc.sock").stat().st_mode & 0o077 == 0
    finally:
        process.terminate()
        process.wait(10)
