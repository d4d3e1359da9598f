"""The ``mip6-hac`` program at its edges, run as a real process: start-up failures (one line,
exit 2 for the configuration, 1 for the rest, never a traceback), the open-file limit,
signals (SIGUSR1 status, SIGHUP reload, SIGTERM stop; also through the workers' parent),
``--check-config`` and ``--version``."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aaa_mip6 import messages as m
from aaa_mip6 import pki
from aaa_mip6.tvheaders import AuthMethod
from lab.processes import free_port, stop_process
from tests.integration.test_hac_server import ALICE, PSK, RawMn, tls_connect

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HAC = str(Path(sys.executable).with_name("mip6-hac"))
SAFETY = 20.0  # seconds a process may take to start or stop before the test fails
PASSWORD = "pw-never-shown"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hacprog")
    ca = pki.make_ca(directory)
    hac = pki.make_cert(directory, ca, "hac", ip_addresses=("127.0.0.1",))
    other = pki.make_cert(directory, ca, "other", ip_addresses=("127.0.0.1",))
    return {"dir": directory, "ca": ca, "hac": hac, "other": other}


def flags(lab, tmp_path, *, listen: str = "127.0.0.1:0", key: str | None = None,
          store: str | None = None) -> list[str]:
    psk = tmp_path / "psk"
    if not psk.exists():
        pki.write_private(psk, f"{ALICE} {PSK.hex()}\n".encode())
    return [HAC, "--listen", listen, "--cert", str(lab["hac"].cert_path),
            "--key", key or str(lab["hac"].key_path), "--psk-file", str(psk),
            "--store", store or f"sqlite:///{tmp_path}/sa.db", "--ha", "[2001:db8::1]",
            "--hoa-prefix", "2001:db8:1::/64"]


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=SAFETY, cwd=REPO,
                          stdin=subprocess.DEVNULL, **options)


def one_line(stderr: str) -> str:
    """The single line a failed start prints (asserted to be one, without a traceback)."""
    assert "Traceback" not in stderr and PASSWORD not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mip6-hac: "), stderr
    return lines[0]


def closed_loopback_port() -> int:
    return free_port("127.0.0.1")  # nothing listens there once the probe is closed


# --- start-up failures ----------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unreachable_postgresql_is_one_line_and_exit_1(lab, tmp_path, workers):
    url = f"postgresql://hac:{PASSWORD}@127.0.0.1:{closed_loopback_port()}/mip6"
    result = run([*flags(lab, tmp_path, store=url), "--workers", workers])
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("mip6-hac: store.url (--store): cannot connect to PostgreSQL "
                           "hac@127.0.0.1:"), line


def test_port_in_use_is_one_line_and_exit_1(lab, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(flags(lab, tmp_path, listen=f"127.0.0.1:{port}"))
    assert result.returncode == 1  # the world must change, not the configuration
    assert one_line(result.stderr) == (f"mip6-hac: listen (--listen) 127.0.0.1:{port}: "
                                       "Address already in use")


@pytest.mark.parametrize("which", ["missing", "directory"])
def test_unreadable_key_is_one_line_and_exit_2(lab, tmp_path, which):
    # Tests run as root, which reads a chmod 000 file: a missing file or a directory it is.
    key = tmp_path / "absent.key" if which == "missing" else tmp_path
    result = run(flags(lab, tmp_path, key=str(key)))
    assert result.returncode == 2
    reason = "No such file or directory" if which == "missing" else "Is a directory"
    assert one_line(result.stderr) == (f"mip6-hac: tls.key (--key): key file {key}: cannot "
                                       f"read ({reason})")


def test_certificate_and_key_that_do_not_match_are_one_line_and_exit_2(lab, tmp_path):
    result = run(flags(lab, tmp_path, key=str(lab["other"].key_path)))
    assert result.returncode == 2
    assert one_line(result.stderr) == (f"mip6-hac: tls.key (--key): key file "
                                       f"{lab['other'].key_path} does not match certificate "
                                       f"file {lab['hac'].cert_path}")


WORKER_FAILS = """
import sys
from hac import assemble, cli, server

def fail_in_worker(*args, **kwargs):  # only workers build a HacServer; the parent checks
    raise assemble.StartFailed("store.url (--store): cannot connect to PostgreSQL (injected)")

server.HacServer.__init__ = fail_in_worker
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_worker_failing_at_start_stops_the_hac_with_its_one_line(lab, tmp_path):
    command = flags(lab, tmp_path)
    result = run([sys.executable, "-c", WORKER_FAILS, *command[1:], "--workers", "2"])
    assert result.returncode == 1
    assert one_line(result.stderr) == ("mip6-hac: store.url (--store): cannot connect to "
                                       "PostgreSQL (injected)")


def test_max_connections_beyond_the_hard_open_file_limit_is_refused(lab, tmp_path):
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    result = run(flags(lab, tmp_path), preexec_fn=low_limit)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        "mip6-hac: limits.max_connections (--max-connections) 1024 needs 1091 open files per "
        "process, but the limit is 1024 (hard limit 1024): lower it to 957")


# --- a running HAC: the open-file limit, signals ----------------------------------------


class Running:
    """``mip6-hac`` in the background, its stderr in a file."""

    def __init__(self, command: list[str], log: Path, **options):
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=REPO, **options)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1) -> list[str]:
        """The first ``count`` matches of ``pattern`` in the log, once there are that many."""
        deadline = time.monotonic() + SAFETY
        while len(found := re.findall(pattern, self.text())) < count:
            assert self.process.poll() is None, f"mip6-hac exited:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.text()}"
            time.sleep(0.05)
        return found[:count]

    def port(self, workers: int = 1) -> int:
        ports = set(self.wait_for(r"listening on 127\.0\.0\.1:(\d+)", workers))
        assert len(ports) == 1
        return int(ports.pop())

    def stop(self) -> int:
        return stop_process(self.process)


@pytest.fixture
def running():
    started = []

    def start(command, log, **options) -> Running:
        started.append(Running(command, log, **options))
        return started[-1]

    yield start
    for hac in started:
        hac.stop()


def test_the_soft_open_file_limit_is_raised_for_max_connections(lab, tmp_path, running):
    def soft_1024():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))

    hac = running(flags(lab, tmp_path), tmp_path / "hac.log", preexec_fn=soft_1024)
    hac.port()
    limits = Path(f"/proc/{hac.process.pid}/limits").read_text()
    soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))
    assert soft >= 1091


def test_signals_status_reload_and_stop(lab, tmp_path, running):
    hac = running(flags(lab, tmp_path), tmp_path / "hac.log")
    port = hac.port()
    hac.wait_for(r"TLS on 127\.0\.0\.1:\d+, auth methods psk, AAA none, store sqlite:///")
    with tls_connect(lab, port) as sock:
        assert RawMn(sock).bootstrap().message.status == 200
    with tls_connect(lab, port) as sock:  # an EAP-only MN: 501, the log says what runs
        answer = RawMn(sock).exchange(1, m.MnInit(ALICE, os.urandom(32), (AuthMethod.EAP,)),
                                      None, (m.HacInit, m.HacError))
        assert answer.message.status == 501
    hac.wait_for(r"result=501 \(the MN offers no method this HAC runs \(psk\)\)")

    hac.process.send_signal(signal.SIGUSR1)
    status = hac.wait_for(r"status (\{.*\})")[0]
    assert '"bootstraps":{"200":1,"501":1}' in status and '"sas_issued":1' in status
    assert hac.process.poll() is None

    pki.write_private(tmp_path / "psk", f"{ALICE} {PSK.hex()}\nbob@example.org {PSK.hex()}\n"
                      .encode())
    hac.process.send_signal(signal.SIGHUP)
    hac.wait_for(r"reloaded: 2 identities")

    assert hac.stop() == 0
    assert "Traceback" not in hac.text()


def test_workers_get_the_signals_from_their_parent(lab, tmp_path, running):
    hac = running([*flags(lab, tmp_path), "--workers", "2"], tmp_path / "hac.log")
    hac.port(workers=2)
    hac.wait_for(r"TLS on 127\.0\.0\.1:\d+, 2 workers")
    hac.process.send_signal(signal.SIGUSR1)
    pids = set(hac.wait_for(r'status \{"pid":(\d+)', 2))
    assert len(pids) == 2 and str(hac.process.pid) not in pids
    assert hac.process.poll() is None
    hac.process.send_signal(signal.SIGHUP)
    hac.wait_for(r"reloaded: 1 identities", 2)
    assert hac.stop() == 0
    assert "Traceback" not in hac.text()


# --- --check-config, --version --------------------------------------------------------


def test_check_config_prints_a_summary_and_exits_0(lab, tmp_path):
    config = tmp_path / "hac.toml"
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")  # old roots there made cryptography warn
    client_ca = bundle if bundle.exists() else lab["ca"].cert_path
    config.write_text(f'instance = "hac7"\n[tls]\nclient_ca = "{client_ca}"\n')
    result = run([*flags(lab, tmp_path), "--config", str(config), "--check-config"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("mip6-hac: configuration OK: HAC hac7: TLS on 127.0.0.1:0, auth "
                             f"methods psk, AAA none, store sqlite:///{tmp_path}/sa.db, home "
                             "agents [2001:db8::1]:7872, 1 PSK identities\n")
    assert result.stderr == ""


@pytest.mark.parametrize("problem", ["port", "store"])
def test_check_config_finds_a_taken_port_or_an_unreachable_store_and_exits_1(lab, tmp_path,
                                                                             problem):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if problem == "port":
            command = flags(lab, tmp_path, listen=f"127.0.0.1:{port}")
        else:
            url = f"postgresql://hac:{PASSWORD}@127.0.0.1:{closed_loopback_port()}/mip6"
            command = flags(lab, tmp_path, store=url)
        result = run([*command, "--check-config"])
    assert result.returncode == 1  # the configuration is fine; the world is not ready
    line = one_line(result.stderr)
    assert ("listen (--listen)" if problem == "port" else "store.url (--store)") in line
    assert result.stdout == ""


def test_version():
    result = run([HAC, "--version"])
    assert result.returncode == 0
    assert re.fullmatch(r"mip6-hac \S+ \(aaa-mip6, RFC 6618\)\n", result.stdout)


def test_a_restarted_worker_reads_the_psk_file_the_others_reloaded(lab, tmp_path, running):
    hac = running([*flags(lab, tmp_path), "--workers", "2"], tmp_path / "hac.log")
    port = hac.port(workers=2)
    hac.wait_for(r"TLS on 127\.0\.0\.1:\d+, 2 workers")
    pki.write_private(tmp_path / "psk", f"bob@example.org {PSK.hex()}\n".encode())
    hac.process.send_signal(signal.SIGHUP)
    hac.wait_for(r"reloaded: 1 identities", 2)
    children = Path(f"/proc/{hac.process.pid}/task/{hac.process.pid}/children").read_text()
    os.kill(int(children.split()[0]), signal.SIGKILL)
    hac.wait_for(r"exited with status -9; restarting")
    hac.wait_for(r"reloaded: 1 identities", 3)  # the new worker, as it starts
    hac.wait_for(r"listening on 127\.0\.0\.1:\d+", 3)
    for _ in range(4):  # whichever worker accepts, bob is known
        with tls_connect(lab, port) as sock:
            assert RawMn(sock).bootstrap("bob@example.org", PSK).message.status == 200
    assert hac.stop() == 0


def test_sighup_reloads_the_tls_certificate_and_key_without_dropping_an_mn(lab, tmp_path,
                                                                          running):
    import shutil

    cert, key = tmp_path / "hac.pem", tmp_path / "hac.key"
    shutil.copy(lab["hac"].cert_path, cert)
    shutil.copy(lab["hac"].key_path, key)
    command = flags(lab, tmp_path, key=str(key))
    command[command.index("--cert") + 1] = str(cert)
    hac = running(command, tmp_path / "hac.log")
    port = hac.port()
    with tls_connect(lab, port) as established:  # an MN connected before the reload
        old_der = established.getpeercert(binary_form=True)
        shutil.copy(lab["other"].cert_path, cert)
        shutil.copy(lab["other"].key_path, key)
        hac.process.send_signal(signal.SIGHUP)
        hac.wait_for(r"TLS certificate \S+ and key reloaded")
        assert RawMn(established).bootstrap().message.status == 200
    with tls_connect(lab, port) as fresh:
        new_der = fresh.getpeercert(binary_form=True)
        assert new_der != old_der
        assert RawMn(fresh).bootstrap().message.status == 200  # the new channel binding

    shutil.copy(lab["hac"].key_path, key)  # a key that does not match: the old pair stays
    hac.process.send_signal(signal.SIGHUP)
    hac.wait_for(r"tls.cert and tls.key not reloaded, the old ones stay: key file .* does "
                 r"not match")
    with tls_connect(lab, port) as after:
        assert after.getpeercert(binary_form=True) == new_der
        assert RawMn(after).bootstrap().message.status == 200
    assert hac.stop() == 0
    assert "Traceback" not in hac.text()


def _signed_with(packet: bytes, secret: bytes) -> bool:
    """Whether an Accounting-Request's authenticator is computed with ``secret`` (RFC 2866)."""
    import hashlib
    return hashlib.md5(packet[:4] + bytes(16) + packet[20:] + secret).digest() \
        == packet[4:20]


def test_sighup_reloads_the_radius_servers_and_secret_file(lab, tmp_path, running):
    secret_file = tmp_path / "radius.secret"
    pki.write_private(secret_file, b"first-secret\n")
    config = tmp_path / "hac.toml"

    def configure(accounting_port: int) -> None:
        config.write_text(f'[radius]\naccounting = true\nsecret_file = "{secret_file}"\n'
                          f'accounting_servers = ["127.0.0.1:{accounting_port}"]\n'
                          '[auth]\nmethods = ["psk"]\n')

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as accounting, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as moved:
        for each in (accounting, moved):
            each.bind(("127.0.0.1", 0))
            each.settimeout(SAFETY)
        configure(accounting.getsockname()[1])
        hac = running([*flags(lab, tmp_path), "--config", str(config)], tmp_path / "hac.log")
        port = hac.port()

        def start_sent_after_a_bootstrap(server: socket.socket) -> bytes:
            with tls_connect(lab, port) as sock:
                assert RawMn(sock).bootstrap().message.status == 200
            return server.recv(4096)

        assert _signed_with(start_sent_after_a_bootstrap(accounting), b"first-secret")
        pki.write_private(secret_file, b"second-secret\n")
        hac.process.send_signal(signal.SIGHUP)
        hac.wait_for(r"RADIUS servers and secret reloaded \(secret from \S+\)")
        deadline = time.monotonic() + SAFETY
        packet = start_sent_after_a_bootstrap(accounting)
        while _signed_with(packet, b"first-secret"):  # retransmissions of the first Start
            assert time.monotonic() < deadline
            packet = accounting.recv(4096)
        assert _signed_with(packet, b"second-secret")

        configure(moved.getsockname()[1])  # the accounting server moves
        hac.process.send_signal(signal.SIGHUP)
        hac.wait_for(rf"RADIUS servers and secret reloaded .*127.0.0.1:{moved.getsockname()[1]}")
        assert _signed_with(start_sent_after_a_bootstrap(moved), b"second-secret")

        pki.write_private(secret_file, b"")
        hac.process.send_signal(signal.SIGHUP)
        hac.wait_for(r"RADIUS servers and secret not reloaded, the old ones stay: "
                     r"radius.secret_file \S+: empty")
        assert start_sent_after_a_bootstrap(moved)  # still there, under the old settings
        assert hac.stop() == 0
    text = hac.text()
    assert "Traceback" not in text and "second-secret" not in text


def test_sighup_rereads_the_log_level_and_a_bad_file_keeps_it(lab, tmp_path, running):
    config = tmp_path / "hac.toml"
    config.write_text('[log]\nlevel = "info"\n')
    hac = running([*flags(lab, tmp_path), "--config", str(config)], tmp_path / "hac.log")
    port = hac.port()
    with tls_connect(lab, port) as sock:
        assert RawMn(sock).bootstrap().message.status == 200
    hac.wait_for(r"bootstrap mn-id=")
    config.write_text('[log]\nlevel = "warning"\n')
    hac.process.send_signal(signal.SIGHUP)
    hac.wait_for(r"SIGHUP: log.level warning")
    with tls_connect(lab, port) as sock:  # its info line is not logged any more
        assert RawMn(sock).bootstrap().message.status == 200
    hac.process.send_signal(signal.SIGUSR1)  # answered at warning: after the bootstrap
    hac.wait_for(r"WARNING hac.server: status ")
    assert len(re.findall(r"bootstrap mn-id=", hac.text())) == 1
    config.write_text('[log]\nlevel = "loud"\n')
    hac.process.send_signal(signal.SIGHUP)
    hac.wait_for(r"the configuration does not load, log.level and radius.servers stay: "
                 r"log.level")
    assert hac.stop() == 0
