"""``--log-format json`` on the real programs: every stderr line is one JSON object, the
bootstrap (mip6-hac) and the registration (mip6-ha) are events with their fields, and no
key or PSK appears (the secret scan of test_hac_server, on JSON lines)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aaa_mip6 import pki
from aaa_mip6.transform import SaEndpoint
from tests.integration.test_ha_server import provision, register, start_ha
from tests.integration.test_hac_server import (  # noqa: F401 (lab is a fixture)
    ALICE, PSK, REPO, SAFETY, RawMn, lab, quick_start, tls_connect)

pytestmark = pytest.mark.integration


def _json_lines(text: str) -> list[dict]:
    """Every line parsed; a line that is not one JSON object fails the test, naming it."""
    parsed = []
    for line in text.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert {"time", "level", "program", "logger", "event", "message"} <= set(parsed[-1])
    return parsed


def _secrets(*keys: bytes) -> list[str]:
    """How a key could appear in a line: hex, or the escapes of a bytes repr."""
    return [form for key in keys for form in (key.hex(), repr(key)[2:-1])]


def test_hac_json_log_has_a_bootstrap_event_per_connection_and_no_secret(lab, tmp_path):
    pki.write_private(tmp_path / "psk", f"{ALICE} {PSK.hex()}\n".encode())
    process = subprocess.Popen([*quick_start(lab, tmp_path), "--log-format", "json"],
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        head = []
        for line in process.stderr:  # ends at the listening line or when the HAC exits
            head.append(line)
            if "listening on 127.0.0.1:" in line:
                break
        port = int(json.loads(head[-1])["message"].rpartition(":")[2].split()[0])
        with tls_connect(lab, port) as sock:
            done = RawMn(sock).bootstrap().message
        assert done.status == 200
        wrong = os.urandom(32)
        with tls_connect(lab, port) as sock:
            assert RawMn(sock).bootstrap(psk=wrong, check_hac=False).message.status == 401
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=SAFETY)[1]
    assert process.returncode == 0
    text = "".join(head) + rest
    lines = _json_lines(text)
    assert {line["program"] for line in lines} == {"mip6-hac"}
    bootstraps = [line for line in lines if line["event"] == "bootstrap"]
    assert [(b["mn_id"], b["method"], b["status"]) for b in bootstraps] == [
        (ALICE, "psk", 200), (ALICE, "psk", 401)]
    ok, refused = bootstraps
    assert ok["spi"] == done.provision.spi and ok["suite"] and ok["reason"] is None
    assert ok["source"].startswith("127.0.0.1:") and ok["duration_ms"] >= 0
    assert refused["spi"] is None and refused["reason"]
    assert ok["message"].startswith(f"bootstrap mn-id={ALICE} source=127.0.0.1:")
    sa = done.provision
    for secret in _secrets(PSK, wrong, sa.mn_to_ha_ikey, sa.ha_to_mn_ikey, sa.mn_to_ha_ekey,
                           sa.ha_to_mn_ekey):
        assert secret not in text


def test_ha_json_log_has_a_registration_and_a_drop_event_and_no_key(tmp_path):
    store_url = f"sqlite:///{tmp_path}/sa.db"
    sa = provision(store_url)
    process, port = start_ha(store_url, "--log-format", "json")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"\x07 not an RFC 6618 packet", ("::1", port))
        # the HA reads its socket in order: once the BA is back, the drop was logged
        home_address, ack = register(SaEndpoint(sa, "mn"), port, 1)
        assert ack.status == 0
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=20)[1]
    assert process.returncode == 0
    lines = _json_lines(rest)
    [registration] = [line for line in lines if line["event"] == "registration"]
    assert registration["program"] == "mip6-ha"
    assert (registration["home_address"], registration["spi"], registration["status"],
            registration["sequence"]) == (str(home_address), sa.spi, 0, 1)
    assert registration["care_of"].startswith("[::1]:") and registration["expires"] > 0
    [drop] = [line for line in lines if line["event"] == "drop"]
    assert drop["source"].startswith("[::1]:") and drop["reason"] and drop["held_back"] == 0
    for secret in _secrets(sa.mn_to_ha_ikey, sa.ha_to_mn_ikey, sa.mn_to_ha_ekey,
                           sa.ha_to_mn_ekey):
        assert secret not in rest


def test_a_bad_log_format_names_the_flag(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ha.cli", "--listen", "[::1]:0",
                             "--store", f"sqlite:///{tmp_path}/sa.db", "--log-format", "yaml"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--log-format" in result.stderr


def test_mn_log_lines_are_json_and_its_failure_line_stays_text(tmp_path):
    """mip6-mn's --log-format is for its log lines (here the ineffective-option warning);
    the result is --json's business and the one-line failure is text in both formats."""
    ca = pki.make_ca(tmp_path)
    with socket.socket() as closed_port:  # a port nobody listens on: refused at once
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mip6-mn"), "bootstrap", "--hac", f"127.0.0.1:{port}",
         "--ca", str(ca.cert_path), "--id", ALICE, "--psk", PSK.hex(), "--timeout", "5",
         "--json", "--show-keys", "--log-format", "json"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 1 and result.stdout == ""
    warning, failure = result.stderr.splitlines()
    parsed = json.loads(warning)
    assert (parsed["program"], parsed["level"], parsed["message"]) == (
        "mip6-mn", "warning", "--show-keys has no effect with --json (which always prints "
                              "the keys)")
    assert failure.startswith("mip6-mn: ") and PSK.hex() not in result.stderr


def test_lab_log_lines_are_json_with_the_servers_events():
    """mip6-lab runs the HAC and HA in its own process: their events come out in its format."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mip6-lab"), "up", "--mns", "1", "--verbose",
         "--log-format", "json"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0 and "PASS" in result.stdout
    lines = _json_lines(result.stderr)
    assert {"bootstrap", "registration"} <= {line["event"] for line in lines}
    assert {line["program"] for line in lines} == {"mip6-lab"}


def _first_line_then_stop(command: list[str]) -> tuple[dict, str]:
    """Start a daemon, parse its first stderr line, stop it with SIGTERM: (line, the rest)."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        first = process.stderr.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=SAFETY)[1]
    return _json_lines(first)[0], rest


def test_gateway_and_auc_log_json(tmp_path):
    secret = tmp_path / "radius-secret"
    pki.write_private(secret, b"not-a-real-secret\n")
    line, rest = _first_line_then_stop(
        [str(Path(sys.executable).parent / "mip6-aaa-gw"), "--origin-host", "gw.example.org",
         "--origin-realm", "example.org", "--radius-server", "127.0.0.1:1812",
         "--radius-secret-file", str(secret), "--listen", "127.0.0.1:0", "--insecure-tcp",
         "--log-format", "json"])
    assert line["program"] == "mip6-aaa-gw" and "listening on 127.0.0.1:" in line["message"]
    assert "not-a-real-secret" not in json.dumps(line) + rest
    _json_lines(rest)
    milenage = tmp_path / "milenage.db"
    milenage.write_text("232010000000000 90dca4eda45b53cf0f12d7c9c3bc6a89 "
                        "cb9cccc4b9258e6dca4760379fb82581 61df 000000000000\n")
    line, rest = _first_line_then_stop(
        [str(Path(sys.executable).parent / "mip6-auc"), "--socket", str(tmp_path / "auc.sock"),
         "--milenage", str(milenage), "--log-format", "json"])
    assert line["program"] == "mip6-auc" and line["message"].startswith("mip6-auc serving")
    assert "90dca4eda45b53cf0f12d7c9c3bc6a89" not in json.dumps(line) + rest
    _json_lines(rest)
