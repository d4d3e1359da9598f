"""``--metrics`` on the real programs, read back the way an operator does: mip6-hac and
mip6-ha serve the exposition (which ``promtool check metrics`` accepts), and Debian's
``prometheus`` server scrapes them and answers the values through its HTTP API."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from aaa_mip6 import pki
from aaa_mip6.transform import SaEndpoint
from tests.integration.test_ha_server import provision, register, start_ha, stop_ha
from tests.integration.test_hac_server import (  # noqa: F401 (lab is a fixture)
    ALICE, PSK, REPO, SAFETY, RawMn, lab, quick_start)

pytestmark = pytest.mark.integration

METRICS_LINE = re.compile(r"metrics on http://[^ ]+:(\d+)/metrics")


def _metrics_port(stream, lines: list[str], until: str | None = None) -> int:
    """Read stderr lines (at most 50) to the "metrics on" line and, if ``until`` is given,
    on to the line containing it; the metrics port."""
    port = None
    for _ in range(50):
        line = stream.readline()
        lines.append(line)
        match = METRICS_LINE.search(line)
        if match:
            port = int(match.group(1))
        if port is not None and (until is None or until in line):
            return port
        if not line:
            break
    pytest.fail(f"no metrics line in: {''.join(lines)}")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SAFETY) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return reply.read().decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _query(port: int, expression: str) -> list[dict]:
    url = (f"http://127.0.0.1:{port}/api/v1/query?"
           + urllib.parse.urlencode({"query": expression}))
    with urllib.request.urlopen(url, timeout=SAFETY) as reply:
        answer = json.load(reply)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _promtool_accepts(text: str) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package prometheus; make deps)")
    result = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def running_hac(lab, tmp_path):
    pki.write_private(tmp_path / "psk", f"{ALICE} {PSK.hex()}\n".encode())
    process = subprocess.Popen([*quick_start(lab, tmp_path), "--metrics", "127.0.0.1:0"],
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines: list[str] = []
    try:
        metrics = _metrics_port(process.stderr, lines, until="listening on 127.0.0.1:")
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", lines[-1]).group(1))
        yield process, port, metrics
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=SAFETY)


@pytest.fixture
def running_ha(tmp_path):
    store_url = f"sqlite:///{tmp_path}/ha-sa.db"
    sa = provision(store_url)
    process, port = start_ha(store_url, "--metrics", "127.0.0.1:0")
    try:
        metrics = _metrics_port(process.stderr, [])
        yield sa, port, metrics
    finally:
        stop_ha(process)


def test_hac_and_ha_metrics_pass_promtool_and_reach_prometheus(lab, running_hac, running_ha,
                                                               tmp_path):
    _hac, hac_port, hac_metrics = running_hac
    sa, ha_port, ha_metrics = running_ha
    context = ssl.create_default_context(cafile=str(lab["ca"].cert_path))
    session = None
    for _ in range(2):  # the second resumes the first's session (its ticket)
        raw = socket.create_connection(("127.0.0.1", hac_port), timeout=SAFETY)
        with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as sock:
            assert RawMn(sock).bootstrap().message.status == 200  # reads the ticket too
            session = sock.session
    _home_address, ack = register(SaEndpoint(sa, "mn"), ha_port, 1)
    assert ack.status == 0

    hac_text, ha_text = _scrape(hac_metrics), _scrape(ha_metrics)
    assert 'mip6_hac_bootstraps_total{method="psk",status="200"} 2.0' in hac_text
    assert "mip6_hac_bootstrap_duration_seconds_count 2.0" in hac_text
    assert "mip6_hac_tls_handshakes_total 2.0" in hac_text
    assert "mip6_hac_tls_resumptions_total 1.0" in hac_text
    assert "mip6_hac_store_sas_active 2.0" in hac_text  # counted at start, then moved
    assert 'mip6_ha_events_total{reason="registered"} 1.0' in ha_text
    assert 'mip6_ha_binding_acks_total{status="0"} 1.0' in ha_text
    assert 'mip6_ha_binding_updates_total{status="0"} 1.0' in ha_text
    assert "mip6_ha_bindings 1.0" in ha_text
    assert 'mip6_ha_received_packets_total{ptype="8"} 1.0' in ha_text
    assert 'mip6_ha_sent_packets_total{ptype="8"} 1.0' in ha_text
    _promtool_accepts(hac_text)
    _promtool_accepts(ha_text)

    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not installed (Debian package prometheus; make deps)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: mip6-hac\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{hac_metrics}']\n"
        f"  - job_name: mip6-ha\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{ha_metrics}']\n")
    web = _free_port()
    server = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wanted = {
            'mip6_hac_bootstraps_total{method="psk",status="200"}': "2",
            'mip6_ha_events_total{reason="registered"}': "1",
            "mip6_ha_bindings": "1",
        }
        got: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and got != wanted:
            if server.poll() is not None:
                pytest.fail(f"prometheus exited: {server.stderr.read()[-2000:]}")
            for expression in wanted:
                try:
                    result = _query(web, expression)
                except OSError:  # not listening yet
                    break
                if result:
                    got[expression] = result[0]["value"][1]
            time.sleep(0.5)
        assert got == wanted
        [up] = _query(web, 'up{job="mip6-hac"}')
        assert up["value"][1] == "1"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_gateway_metrics_pass_promtool(tmp_path):
    secret = tmp_path / "radius-secret"
    pki.write_private(secret, b"not-a-real-secret\n")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mip6-aaa-gw"), "--origin-host", "gw.example.org",
         "--origin-realm", "example.org", "--radius-server", "127.0.0.1:1812",
         "--radius-secret-file", str(secret), "--listen", "127.0.0.1:0", "--insecure-tcp",
         "--metrics", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        text = _scrape(_metrics_port(process.stderr, []))
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=SAFETY)
    assert process.returncode == 0
    assert "mip6_gw_conversations 0.0" in text
    assert "# TYPE mip6_gw_relay_events_total counter" in text
    _promtool_accepts(text)


def test_a_metrics_port_in_use_is_one_line_and_exit_1(tmp_path):
    store_url = f"sqlite:///{tmp_path}/sa.db"
    provision(store_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ha.cli", "--listen", "[::1]:0",
                                 "--store", store_url, "--metrics", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("mip6-ha: metrics.listen (--metrics) 127.0.0.1:") and \
        "Traceback" not in result.stderr


def test_hac_aaa_round_trips_are_counted_by_outcome_and_timed(tmp_path):
    """An EAP-MD5 bootstrap through the real HAC shell and a fake RADIUS server: one
    challenge and one accept, each timed."""
    from prometheus_client import generate_latest

    from hac.assemble import assemble_hac
    from hac.metrics import hac_registry
    from lab.reactors import run_on_fresh_reactor
    from tests.integration.test_hac_aaa_faults import (
        FAKE_PASSWORD, FAKE_USER, SECRET, EapCredentials, FakeRadiusServer, eap_bootstrap,
        hac_config, md5_server)

    async def scenario(reactor):
        fake = FakeRadiusServer(md5_server)
        listening = reactor.listenUDP(0, fake, interface="127.0.0.1")
        setup, config = hac_config(tmp_path, [f"127.0.0.1:{listening.getHost().port}"], SECRET)
        server = assemble_hac(config, reactor)
        registry = hac_registry(server)
        port = server.listen().getHost().port
        try:
            await eap_bootstrap(reactor, setup, port, EapCredentials(FAKE_USER, FAKE_PASSWORD))
            return generate_latest(registry).decode()
        finally:
            await server.stop()
            await listening.stopListening()

    text = run_on_fresh_reactor(scenario)
    assert 'mip6_hac_aaa_requests_total{outcome="challenge"} 1.0' in text
    assert 'mip6_hac_aaa_requests_total{outcome="accept"} 1.0' in text
    assert "mip6_hac_aaa_duration_seconds_count 2.0" in text
    assert 'mip6_hac_bootstraps_total{method="eap",status="200"} 1.0' in text


def test_every_hac_worker_serves_its_own_counters_and_together_they_count_each_bootstrap(
        lab, tmp_path):
    pki.write_private(tmp_path / "psk", f"{ALICE} {PSK.hex()}\n".encode())
    process = subprocess.Popen([*quick_start(lab, tmp_path), "--metrics", "127.0.0.1:0",
                                "--workers", "2"],
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        lines: list[str] = []
        ports = set()
        for _ in range(60):  # both workers' metrics lines, then the parent's summary
            line = process.stderr.readline()
            lines.append(line)
            if match := METRICS_LINE.search(line):
                ports.add(int(match.group(1)))
            if not line or (len(ports) == 2 and "listening on" in line):
                break
        assert len(ports) == 2, "".join(lines)
        hac_port = int(re.findall(r"listening on 127\.0\.0\.1:(\d+)", "".join(lines))[0])
        context = ssl.create_default_context(cafile=str(lab["ca"].cert_path))
        for _ in range(6):
            raw = socket.create_connection(("127.0.0.1", hac_port), timeout=SAFETY)
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                assert RawMn(sock).bootstrap().message.status == 200
        wanted = re.compile(r'^mip6_hac_bootstraps_total\{method="psk",status="200"\} (\S+)$',
                            re.MULTILINE)
        counts = [float(match.group(1)) for port in ports
                  for match in wanted.finditer(_scrape(port))]
        assert sum(counts) == 6
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=SAFETY)
