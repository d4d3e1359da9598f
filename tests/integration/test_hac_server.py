"""hac.server over real TLS on 127.0.0.1, driven by a raw client built from aaa_mip6 pieces.

The HAC runs in-process on its own reactor in a background thread; the client is a
plain blocking TLS socket (stdlib ssl) speaking containers and TV-header messages.
The last tests run the ``mip6-hac`` program itself (workers, SIGHUP, SIGTERM).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from twisted.internet import threads
from twisted.internet.selectreactor import SelectReactor

from aaa_mip6 import container, pki
from aaa_mip6 import messages as m
from aaa_mip6.authenticator import channel_binding
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod
from hac.config import load_config
from hac.assemble import assemble_hac

pytestmark = pytest.mark.integration

ALICE = "alice@example.org"
PSK = bytes(range(32))
SAFETY = 10.0  # seconds a blocking socket call may take before the test fails (not a check)
AES = SUITES["AES_128_CBC_SHA"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hac")
    ca = pki.make_ca(directory)
    hac = pki.make_cert(directory, ca, "hac", ip_addresses=("127.0.0.1",))
    psk = directory / "psk"
    pki.write_private(psk, f"{ALICE} {PSK.hex()}\n".encode())
    return {"dir": directory, "ca": ca, "hac": hac, "psk": psk}


def make_config(lab, tmp_path, **settings):
    overrides = {
        "listen": "127.0.0.1:0", "tls.cert": str(lab["hac"].cert_path),
        "tls.key": str(lab["hac"].key_path), "credentials.psk_file": str(lab["psk"]),
        "store.url": f"sqlite:///{tmp_path}/sa.db",
        "home_agents.addresses": ["[2001:db8::1]:7000", "192.0.2.1"],
        "bootstrap.hoa_prefix": "2001:db8:1::/64",
    }
    overrides.update(settings)
    return load_config(None, overrides)


class RunningHac:
    """A HacServer on a SelectReactor in a background thread."""

    def __init__(self, config):
        self.reactor = SelectReactor()
        self.server = assemble_hac(config, self.reactor)
        self.port = self.server.listen().getHost().port
        self.thread = threading.Thread(
            target=self.reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
        self.thread.start()

    def call(self, function, *args):
        return threads.blockingCallFromThread(self.reactor, function, *args)

    def stop(self):
        self.call(self.server.stop)
        self.reactor.callFromThread(self.reactor.stop)
        self.thread.join(SAFETY)


@pytest.fixture
def start_hac(lab, tmp_path):
    running = []

    def start(**settings) -> RunningHac:
        hac = RunningHac(make_config(lab, tmp_path, **settings))
        running.append(hac)
        return hac

    yield start
    for hac in running:
        hac.stop()


def wait_until(condition) -> None:
    """Poll ``condition`` until true; the deadline is a safety net, not a measurement."""
    deadline = time.monotonic() + SAFETY
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def tls_connect(lab, port: int, **context_options) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(lab["ca"].cert_path))
    for name, value in context_options.items():
        setattr(context, name, value)
    sock = socket.create_connection(("127.0.0.1", port), timeout=SAFETY)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def read_frame(sock) -> container.Frame | None:
    """The next container, or None at a clean end of stream."""
    deframer = container.Deframer()
    while True:
        data = sock.recv(65_536)
        if not data:
            return None
        frames = deframer.feed(data)
        if frames:
            return frames[0]


def closed(sock) -> bool:
    """True once the HAC has closed the connection (EOF or reset)."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


class RawMn:
    """An MN made of aaa_mip6 pieces over one TLS connection."""

    def __init__(self, sock: ssl.SSLSocket):
        self.sock = sock
        self.cb = channel_binding(sock.getpeercert(binary_form=True))
        self.mn_rand = os.urandom(32)

    def exchange(self, identifier: int, message, key: bytes | None, expected):
        content = m.encode(message, key, self.cb if key else None)
        self.sock.sendall(container.encode(identifier, content))
        reply = read_frame(self.sock)
        assert reply is not None and reply.identifier == identifier
        received = m.decode_response(reply.content, expected)
        return received

    def bootstrap(self, mn_id: str = ALICE, psk: bytes = PSK, *, check_hac: bool = True):
        hac_init = self.exchange(1, m.MnInit(mn_id, self.mn_rand, (AuthMethod.PSK,)), None,
                                 (m.HacInit, m.HacError))
        if check_hac:
            hac_init.verify(psk, self.cb)
        done = m.MnDone(1, (AES.code,), self.mn_rand, hac_init.message.hac_rand)
        return self.exchange(2, done, psk, (m.HacDone, m.HacError))


def test_psk_bootstrap_provisions_a_stored_sa_and_logs_one_line(start_hac, lab, caplog):
    hac = start_hac()
    with caplog.at_level(logging.INFO, "hac.server"), tls_connect(lab, hac.port) as sock:
        received = RawMn(sock).bootstrap()
        received.verify(PSK, channel_binding(lab["hac"].cert_der))
        done = received.message
        assert done.status == 200 and closed(sock)
    provision = done.provision
    assert provision.suite == AES.code and provision.bootstrap.home_address6 is not None
    assert provision.bootstrap.home_agent.port in (7000, 7872)
    record = hac.call(hac.server.store.get, provision.spi)
    assert record.sa.mn_id == ALICE and record.sa.mn_to_ha_ikey == provision.mn_to_ha_ikey
    lines = [r.getMessage() for r in caplog.records if "bootstrap mn-id=" in r.getMessage()]
    assert lines and f"spi={provision.spi}" in lines[-1] and "result=200" in lines[-1]
    assert f"mn-id={ALICE} source=127.0.0.1:" in lines[-1]
    assert provision.mn_to_ha_ikey.hex() not in caplog.text and PSK.hex() not in caplog.text


def test_postgresql_store_is_called_from_the_thread_pool(start_hac, lab, postgres_url):
    hac = start_hac(**{"store.url": postgres_url, "store.threads": 2})
    spis = set()
    for _ in range(3):
        with tls_connect(lab, hac.port) as sock:
            spis.add(RawMn(sock).bootstrap().message.provision.spi)
    assert len(spis) == 3
    assert all(hac.call(hac.server.store.get, spi).sa.mn_id == ALICE for spi in spis)


def test_sqlite_store_is_called_off_the_reactor_thread(start_hac, lab, monkeypatch):
    hac = start_hac()
    store = hac.server.store
    callers = []

    def recording(method):
        def call(*args, **kwargs):
            callers.append((method.__name__, threading.current_thread()))
            return method(*args, **kwargs)
        return call

    for name in ("create", "home_address"):
        monkeypatch.setattr(store, name, recording(getattr(store, name)))
    with tls_connect(lab, hac.port) as sock:
        spi = RawMn(sock).bootstrap().message.provision.spi  # HAC Done: already committed
    assert hac.call(store.get, spi).sa.mn_id == ALICE
    assert {name for name, _ in callers} == {"create", "home_address"}
    assert all(thread is not hac.thread for _, thread in callers)


def test_wrong_key_is_401_then_close(start_hac, lab):
    hac = start_hac()
    with tls_connect(lab, hac.port) as sock:
        received = RawMn(sock).bootstrap(psk=b"not the key", check_hac=False)
        assert received.message.status == 401 and closed(sock)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_tls_is_refused_by_the_hac(start_hac, lab, version):
    hac = start_hac()
    context = ssl.create_default_context(cafile=str(lab["ca"].cert_path))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer the old version
    context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
    with socket.create_connection(("127.0.0.1", hac.port), timeout=SAFETY) as raw:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):  # the HAC's alert
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_malformed_message_gets_400_then_close(start_hac, lab):
    hac = start_hac()
    with tls_connect(lab, hac.port) as sock:
        sock.sendall(container.encode(1, b"mn-id:alice@example.org\r\nbogus\r\n\r\n"))
        reply = read_frame(sock)
        assert m.decode_response(reply.content, m.HacError).message.status == 400
        assert closed(sock)


def test_idle_connection_is_closed(start_hac, lab):
    hac = start_hac(**{"limits.idle_timeout": 0.2})
    with tls_connect(lab, hac.port) as sock:
        assert closed(sock)


def test_silent_tcp_client_hits_the_handshake_timeout(start_hac):
    hac = start_hac(**{"limits.handshake_timeout": 0.2})
    with socket.create_connection(("127.0.0.1", hac.port), timeout=SAFETY) as sock:
        assert closed(sock)


def test_connection_cap_is_enforced(start_hac, lab):
    hac = start_hac(**{"limits.max_connections": 2})
    first, second = tls_connect(lab, hac.port), tls_connect(lab, hac.port)
    try:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with tls_connect(lab, hac.port) as third:
                third.recv(1)
        assert hac.server.refused["cap"] >= 1
    finally:
        first.close()
    second.close()
    wait_until(lambda: hac.call(lambda: hac.server.connections) == 0)
    with tls_connect(lab, hac.port) as again:  # room again once connections have closed
        assert RawMn(again).bootstrap().message.status == 200


def test_source_rate_limit_refuses_a_burst(start_hac, lab):
    hac = start_hac(**{"limits.rate": 0.001, "limits.burst": 2})
    for _ in range(2):
        with tls_connect(lab, hac.port) as sock:
            assert RawMn(sock).bootstrap().message.status == 200
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        with tls_connect(lab, hac.port) as sock:
            sock.recv(1)
    assert hac.server.refused["rate"] == 1


# --- the program ------------------------------------------------------------------


REPO = Path(__file__).resolve().parents[2]


def quick_start(lab, tmp_path) -> list[str]:
    """The issue's quick-start command line."""
    return [sys.executable, "-m", "hac.cli", "--listen", "127.0.0.1:0",
            "--cert", str(lab["hac"].cert_path), "--key", str(lab["hac"].key_path),
            "--psk-file", str(tmp_path / "psk"), "--store", f"sqlite:///{tmp_path}/sa.db",
            "--ha", "[2001:db8::1]", "--hoa-prefix", "2001:db8:1::/64"]


def start_program(lab, tmp_path, workers: int) -> tuple[subprocess.Popen, int]:
    """Start mip6-hac; return once every worker listens (and so can reload on SIGHUP)."""
    process = subprocess.Popen([*quick_start(lab, tmp_path), "--workers", str(workers)],
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    ports = []
    for line in process.stderr:
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if found:
            ports.append(int(found.group(1)))
            if len(ports) == workers:
                assert len(set(ports)) == 1  # one shared socket
                return process, ports[0]
    raise AssertionError(f"mip6-hac did not start (exit {process.wait()})")


def test_program_with_two_workers_reloads_psks_on_sighup_and_stops_on_sigterm(lab, tmp_path):
    pki.write_private(tmp_path / "psk", f"{ALICE} {PSK.hex()}\n".encode())
    process, port = start_program(lab, tmp_path, workers=2)
    try:
        with tls_connect(lab, port) as sock:
            assert RawMn(sock).bootstrap().message.status == 200
        new_key = os.urandom(32)
        pki.write_private(tmp_path / "psk", f"bob@example.org {new_key.hex()}\n".encode())
        process.send_signal(signal.SIGHUP)
        # Workers reload independently; within the safety limit every one has the new table.
        reloaded = 0
        for line in process.stderr:
            reloaded += "PSK file" in line and "reloaded" in line
            if reloaded == 2:
                break
        for _ in range(4):  # whichever worker accepts, bob is known and alice is not
            with tls_connect(lab, port) as sock:
                assert RawMn(sock).bootstrap("bob@example.org", new_key).message.status == 200
            with tls_connect(lab, port) as sock:
                assert RawMn(sock).bootstrap(check_hac=False).message.status == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(SAFETY) == 0


def serving_pid(hac_port: int, client_port: int) -> int:
    """The pid of the process holding the HAC end of one established connection."""
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{hac_port} and "
         f"dport = :{client_port} )"], capture_output=True, text=True, timeout=SAFETY)
    return int(re.search(r"pid=(\d+)", listing.stdout).group(1))


def test_program_workers_resume_each_others_session_tickets(lab, tmp_path):
    pki.write_private(tmp_path / "psk", f"{ALICE} {PSK.hex()}\n".encode())
    process, port = start_program(lab, tmp_path, workers=2)
    context = ssl.create_default_context(cafile=str(lab["ca"].cert_path))
    session, served_by, resumed = None, set(), []
    try:
        # Which worker accepts is the kernel's choice: connect until both have served.
        while len(served_by) < 2:
            assert len(resumed) < 100, "one worker accepted every connection"
            raw = socket.create_connection(("127.0.0.1", port), timeout=SAFETY)
            with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as sock:
                served_by.add(serving_pid(port, sock.getsockname()[1]))
                if session is not None:
                    resumed.append(sock.session_reused)
                assert RawMn(sock).bootstrap().message.status == 200  # reads the ticket too
                session = sock.session
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(SAFETY) == 0
    assert resumed and all(resumed)


def test_program_bad_configuration_exits_2_naming_the_key(lab, tmp_path):
    config = tmp_path / "hac.toml"
    config.write_text('[sa]\nlifetime = "long"\n')
    result = subprocess.run(
        [*quick_start(lab, tmp_path), "--config", str(config)], capture_output=True,
        text=True, timeout=SAFETY, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.startswith("mip6-hac: sa.lifetime: must be an integer")
