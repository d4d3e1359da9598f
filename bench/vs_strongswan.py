"""HAC vs strongSwan: the HAC's RFC 6618 bootstraps against strongSwan's IKEv2 IKE_SAs on
the same machine, in alternating rounds, with the CPU per operation of every process
(docs/performance.md, section "HAC vs strongSwan").

One run generates a CA, an ECDSA P-256 certificate for the HAC and one for the
responder charon (aaa_mip6.pki), starts FreeRADIUS (lab/servers/freeradius.py, its
thread pool), two ``mip6-hac`` processes (one worker each, SQLite store; the second with
``eap.identity_from_mn_id``) and two charons on 127.0.0.1 (a responder and an initiator,
each with its own strongswan.conf, vici socket, UDP ports and mount namespace for its
pid file; connections loaded over vici). Compared, round after round:

- ``psk_16``: 16 MNs at once. HAC: PSK bootstraps (TLS 1.3, X25519, HAC certificate
  checked, MN Init, MN Done, SA committed, HAC Done). charon: IKE_SAs (IKE_SA_INIT with
  curve25519, IKE_AUTH, no CHILD_SA) with PSK on both ends (``charon-psk``) and with the
  responder signing with its ECDSA P-256 certificate (``charon-cert``, the closer match
  to a TLS server certificate);
- ``psk_1``: the same, one MN at a time (latency);
- ``eap_md5_8``: 8 at once, EAP-MD5 through the same FreeRADIUS: the HAC relaying
  (RFC 6618 Figure 5, and identity from mn-id) and charon's eap-radius (responder signs
  with its certificate, as RFC 7296 asks with EAP);
- ``floor_16`` (and two runners of ``psk_1``): what the HAC cannot go under in its process
  model -- a Twisted server with the HAC's TLS context that closes each connection once
  the handshake is done (``floor-tls``), the same committing one SA to SQLite first, one
  fsync each (``floor-tls-commit``), and the standard library's ``ssl.SSLObject`` on
  memory BIOs instead of pyOpenSSL (``floor-stdlib-tls``, an experiment: the HAC keeps
  pyOpenSSL). ``floor_share`` lines divide a floor by the HAC's and charon's figures.

Each strongSwan operation is initiated over the initiator's vici socket and terminated
(an INFORMATIONAL delete) once established; its latency is to establishment. Each HAC
operation is a new MN (full TLS handshake) driven by a load-driver process of its own;
its latency is from connect to the closed connection. CPU per operation comes from
/proc/PID/stat (utime + stime) around the timed window: ``server`` (the HAC process or
the responder charon), ``client`` (the driver, or the initiator charon plus the vici
driver) and ``radius`` (FreeRADIUS). Headline lines (``hac_vs_charon``): the HAC's
server CPU per operation over charon's, medians of the rounds, against the targets.

Usage (root: each charon gets a private /run for its pid file):
    .venv/bin/python bench/vs_strongswan.py [--quick] [--rounds R] [--seconds S]
        [--figures psk_16,psk_1,eap_md5_8,floor_16] [--workers W]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import cpu_seconds, emit, latency_summary, process_tree  # noqa: E402
from bench._strongswan import (  # noqa: E402
    CHARON, PROPOSAL, START_TIMEOUT, conn, missing_packages)
from bench._strongswan import CHARON_PLUGINS as BASE_PLUGINS  # noqa: E402
from bench._strongswan import Charon as BaseCharon  # noqa: E402
from bench._strongswan import strongswan_conf as base_conf  # noqa: E402

HOST = "127.0.0.1"
CHARON_PLUGINS = BASE_PLUGINS + " counters"
RESPONDER_CERT_ID = "responder.bench.example"
PSK_RESPONDER_ID = "psk-responder.bench.example"
SPAWN = multiprocessing.get_context("spawn")
SYNC_TIMEOUT = 60.0
PREPARED_PER_SECOND = 400
TARGETS = (  # (HAC figure, charon figure, quantity, target ratio HAC / charon)
    ("psk_16", "charon-cert", "server_cpu_ms", 1.0),
    ("psk_16", "charon-psk", "server_cpu_ms", 1.2),
    ("eap_md5_8", "charon-eap", "server_cpu_ms", 1.0),
    ("psk_1", "charon-psk", "p50_ms", 1.0),
)
FIGURES = {  # figure -> (concurrency, what runs it)
    "psk_16": (16, ("hac", "charon-psk", "charon-cert")),
    "psk_1": (1, ("hac", "charon-psk", "charon-cert", "floor-tls", "floor-tls-commit")),
    "eap_md5_8": (8, ("hac", "hac-id-from-mn-id", "charon-eap")),
    "floor_16": (16, ("floor-tls", "floor-tls-commit", "floor-stdlib-tls")),
}


def missing() -> str | None:
    """One line naming what this machine lacks for the bench, or None."""
    problem = missing_packages(
        ("freeradius", shutil.which("freeradius") or shutil.which("radiusd")))
    if problem is not None:
        return problem
    try:
        import vici  # noqa: F401
    except ImportError:
        return "missing the vici Python package: .venv/bin/pip install vici"
    if not shutil.which("unshare"):
        return "missing unshare (util-linux): sudo apt-get install util-linux"
    if os.geteuid() != 0:
        return "run as root (sudo): charon needs its own mount namespace for its pid file"
    return None


DOS_OFF = """\
  cookie_threshold = 100000
  cookie_threshold_ip = 100000
  block_threshold = 100000
  init_limit_half_open = 0
  threads = 64  # a vici initiate holds a thread until its IKE_SA is up
"""


def strongswan_conf(directory: Path, port: int, natt_port: int, radius=None) -> str:
    """The shared charon configuration (bench/_strongswan.py) with the counters plugin,
    DoS limits off (every initiator comes from 127.0.0.1), 64 threads and times in the
    log."""
    return base_conf(directory, port, natt_port, radius, plugins=CHARON_PLUGINS,
                     settings=DOS_OFF, log_time_format="%T")


class Charon(BaseCharon):
    """One charon on 127.0.0.1 with a directory, two UDP ports and a vici socket of its
    own; three tries, each on other ports, should another program bind one first."""

    attempts = 3

    def __init__(self, directory: Path, radius=None):
        super().__init__(directory, HOST, radius)

    def config(self, port: int, natt_port: int) -> str:
        return strongswan_conf(self.directory, port, natt_port, self.radius)

    def bound(self) -> bool:
        """No port taken meanwhile ("unable to bind") and nothing failed, by its log."""
        log = (self.directory / "charon.log").read_text(errors="replace")
        return "unable to bind" not in log and "failed" not in log.lower()


def _conn(local: dict, remote: dict, *, remote_port: int | None = None) -> dict:
    return conn(HOST, HOST, local, remote, remote_port)


def configure_responder(charon: Charon, cert_pem: bytes, key_pem: bytes, psk: bytes,
                        eap_user: str) -> None:
    """The responder's key, certificate and three connections (chosen by the initiator's
    identity: ``*@psk.bench``, ``*@cert.bench``, the EAP user)."""
    vici = charon.session()
    try:
        session = vici.session
        session.load_key({"type": "any", "data": key_pem})
        session.load_shared({"type": "IKE", "data": psk})
        cert = {"auth": "pubkey", "id": RESPONDER_CERT_ID, "certs": [cert_pem]}
        session.load_conn({"psk": _conn({"auth": "psk", "id": PSK_RESPONDER_ID},
                                         {"auth": "psk", "id": "*@psk.bench"})})
        session.load_conn({"cert": _conn(cert, {"auth": "psk", "id": "*@cert.bench"})})
        session.load_conn({"eap": _conn(cert, {"auth": "eap-radius", "id": eap_user})})
    finally:
        vici.close()


def configure_initiator(charon: Charon, responder_port: int, ca_pem: bytes, psk: bytes,
                        eap_user: str, eap_password: str, slots: int) -> None:
    """One connection per concurrent slot and kind (``psk-3``, ``cert-3``, ``eap-3``), so
    each slot terminates only its own IKE_SA."""
    vici = charon.session()
    try:
        session = vici.session
        session.load_cert({"type": "X509", "flag": "CA", "data": ca_pem})
        session.load_shared({"type": "IKE", "data": psk})
        session.load_shared({"type": "EAP", "data": eap_password, "owners": [eap_user]})
        cert = {"auth": "pubkey", "id": RESPONDER_CERT_ID}
        for slot in range(slots):
            session.load_conn({
                f"psk-{slot}": _conn({"auth": "psk", "id": f"mn{slot}@psk.bench"},
                                     {"auth": "psk", "id": PSK_RESPONDER_ID},
                                     remote_port=responder_port),
                f"cert-{slot}": _conn({"auth": "psk", "id": f"mn{slot}@cert.bench"}, cert,
                                      remote_port=responder_port),
                # The same identities on every slot: charon would reuse another slot's
                # IKE_SA for a connection equal to its own, so each differs in a value
                # that never comes into play in a run (its rekey time).
                f"eap-{slot}": {**_conn({"auth": "eap-md5", "id": eap_user}, cert,
                                        remote_port=responder_port),
                                "rekey_time": f"{14400 + slot}s"}})
    finally:
        vici.close()


def charon_load(initiator: Charon, kind: str, concurrency: int, seconds: float,
                count: int) -> dict:
    """``concurrency`` threads, each initiating its own connection's IKE_SA over vici and
    terminating it, until ``count`` or ``seconds``; latency is to establishment."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    budget = [count]
    deadline = time.monotonic() + seconds

    def slot(number: int) -> None:
        vici = initiator.session()
        name = f"{kind}-{number}"
        try:
            while time.monotonic() < deadline:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                begin = time.monotonic()
                try:
                    for _ in vici.session.initiate({"ike": name, "timeout": "10000",
                                                    "init-limits": "no"}):
                        pass
                except Exception:  # vici.exception.CommandException: not established
                    failures[0] += 1
                else:
                    with lock:
                        latencies.append(time.monotonic() - begin)
                try:
                    for _ in vici.session.terminate({"ike": name, "timeout": "10000"}):
                        pass
                except Exception:  # noqa: BLE001 -- gone already (its initiate failed)
                    pass
        finally:
            vici.close()

    threads = [threading.Thread(target=slot, args=(n,)) for n in range(concurrency)]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + SYNC_TIMEOUT)
    return {"operations": len(latencies), "failures": failures[0],
            "seconds": time.monotonic() - begin, "latencies": latencies}


def _floor_server(kind: str, cert: Path, key: Path, store_url: str, ports) -> None:
    """Floor server process: TLS 1.3 with the HAC's certificate on one Twisted reactor,
    each connection closed once its handshake is done, nothing else. ``kind``:
    ``floor-tls`` (pyOpenSSL through Twisted's TLS layer, as the HAC), ``floor-tls-commit``
    (the same plus one SA committed in the store thread before the close, one fsync
    each: the HAC's process model without RFC 6618), ``floor-stdlib-tls`` (the standard
    library's ssl.SSLObject on memory BIOs under a plain Twisted protocol)."""
    import ssl
    from datetime import datetime, timedelta, timezone

    from twisted.internet import threads
    from twisted.internet.epollreactor import EPollReactor
    from twisted.internet.interfaces import IHandshakeListener
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from twisted.python.threadpool import ThreadPool
    from zope.interface import implementer

    from aaa_mip6.sa import SecurityAssociation
    from aaa_mip6.store import open_store
    from aaa_mip6.twisted.tls import ServerTLS

    reactor = EPollReactor()
    store = open_store(store_url)
    pool = ThreadPool(1, 1, name="floor-store")
    pool.start()
    template = SecurityAssociation(
        spi=0, suite="AES_128_CBC_SHA", mn_to_ha_ikey=b"i" * 20, ha_to_mn_ikey=b"j" * 20,
        mn_to_ha_ekey=b"e" * 16, ha_to_mn_ekey=b"f" * 16, scope=1, mn_id="floor@example.org",
        validity_end=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1))

    @implementer(IHandshakeListener)
    class CloseAfterHandshake(Protocol):
        def connectionMade(self):  # noqa: N802 (Twisted API)
            self.transport.setTcpNoDelay(True)

        def handshakeCompleted(self):  # noqa: N802 (Twisted API)
            if kind == "floor-tls-commit":
                committed = threads.deferToThreadPool(reactor, pool, store.create, template,
                                                      hac_instance="floor", home_agent=None)
                committed.addCallback(lambda _: self.transport.loseConnection())
            else:
                self.transport.loseConnection()

    class StdlibTLS(Protocol):
        def connectionMade(self):  # noqa: N802 (Twisted API)
            self.transport.setTcpNoDelay(True)
            self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = stdlib_context.wrap_bio(self.incoming, self.outgoing, server_side=True)

        def dataReceived(self, data):  # noqa: N802 (Twisted API)
            self.incoming.write(data)
            try:
                self.tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            pending = self.outgoing.read()
            if pending:
                self.transport.write(pending)
            if done:
                try:
                    self.tls.unwrap()
                except ssl.SSLWantReadError:
                    pass
                self.transport.write(self.outgoing.read())
                self.transport.loseConnection()

    if kind == "floor-stdlib-tls":
        stdlib_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        stdlib_context.minimum_version = ssl.TLSVersion.TLSv1_2
        stdlib_context.load_cert_chain(cert, key)
        factory = Factory.forProtocol(StdlibTLS)
    else:
        factory = TLSMemoryBIOFactory(ServerTLS(cert, key), False,
                                      Factory.forProtocol(CloseAfterHandshake), clock=reactor)
    port = reactor.listenTCP(0, factory, backlog=1024, interface=HOST)
    ports.put(port.getHost().port)
    reactor.run(installSignalHandlers=False)


@dataclass(frozen=True)
class HacJob:
    """One HAC load-driver process: ``len(mns)`` MNs at once, each bootstrap a new MN."""

    port: int
    ca_path: Path
    method: str  # "psk", "eap-md5" or "tls" (a handshake, then the server closes)
    mns: tuple[tuple[str, bytes], ...]  # (NAI, PSK) or (EAP user, password)
    count: int
    seconds: float


def _drive_hac(job: HacJob, barrier, results) -> None:
    """Driver process: warm up, wait for the parent, run the timed bootstraps, report."""
    from twisted.internet import defer, threads
    from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
    from twisted.internet.epollreactor import EPollReactor
    from twisted.internet.interfaces import IHandshakeListener
    from twisted.internet.protocol import Factory, Protocol
    from zope.interface import implementer

    from aaa_mip6.twisted.tls import ClientTLS
    from bench.hac_bootstrap import _run
    from mn import client
    from mn.bootstrap import BootstrapFailed, EapBootstrap, PskBootstrap
    from mn.eap import EapCredentials
    from mn.eap.peer import EapPeer

    reactor = EPollReactor()
    report: dict = {"latencies": [], "failures": 0}

    def machine(nai: str, secret: bytes):
        if job.method == "psk":
            return PskBootstrap(nai, secret)
        return EapBootstrap(nai, EapPeer("md5", EapCredentials(nai, secret.decode())))

    async def one(tls, nai: str, secret: bytes) -> None:
        if job.method == "tls":
            await handshake_then_closed(tls)
            return
        await client.bootstrap(reactor, tls, job.port, machine(nai, secret), timeout=30)

    @implementer(IHandshakeListener)
    class UntilClosed(Protocol):
        """The floor's MN: a TLS handshake, then wait for the server to close."""

        def __init__(self):
            self.closed = defer.Deferred()

        def connectionMade(self):  # noqa: N802 (Twisted API)
            self.transport.setTcpNoDelay(True)

        def handshakeCompleted(self):  # noqa: N802 (Twisted API)
            pass

        def connectionLost(self, reason):  # noqa: N802 (Twisted API)
            self.closed.callback(None)

    async def handshake_then_closed(tls) -> None:
        endpoint = wrapClientTLS(tls, TCP4ClientEndpoint(reactor, HOST, job.port, timeout=30),
                                 clock=reactor)
        protocol = UntilClosed()
        await endpoint.connect(Factory.forProtocol(lambda: protocol))
        await protocol.closed

    fresh = [ClientTLS(HOST, job.ca_path)
             for _ in range(min(job.count, int(job.seconds * PREPARED_PER_SECOND)))]

    async def mn_loop(nai: str, secret: bytes, budget: list[int], deadline: float) -> None:
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            tls = fresh.pop() if fresh else ClientTLS(HOST, job.ca_path)
            begin = time.monotonic()
            try:
                await one(tls, nai, secret)
            except BootstrapFailed:
                report["failures"] += 1
                continue
            report["latencies"].append(time.monotonic() - begin)

    async def scenario() -> None:
        await defer.gatherResults([defer.ensureDeferred(one(ClientTLS(HOST, job.ca_path),
                                                            nai, secret))
                                   for nai, secret in job.mns])  # warm-up, untimed
        await threads.deferToThreadPool(reactor, reactor.getThreadPool(), barrier.wait,
                                        SYNC_TIMEOUT)
        cpu_before, begin = sum(os.times()[:2]), time.monotonic()
        budget, deadline = [job.count], begin + job.seconds
        await defer.gatherResults([defer.ensureDeferred(mn_loop(nai, secret, budget, deadline))
                                   for nai, secret in job.mns])
        report["seconds"] = time.monotonic() - begin
        report["cpu"] = sum(os.times()[:2]) - cpu_before

    _run(reactor, scenario)
    results.put(report)


@dataclass
class Rig:
    """Everything running, and the pids whose CPU each figure reads."""

    hacs: dict  # "hac", "hac-id-from-mn-id" -> HacProcess
    responder: Charon
    initiator: Charon
    radius_pids: list[int]
    psks: list[tuple[str, bytes]]
    eap_user: tuple[str, bytes]
    x25519_only: Path
    ca_path: Path
    rounds: dict = field(default_factory=dict)  # (figure, runner) -> [round results]


def measure_hac(rig: Rig, runner: str, figure: str, concurrency: int, args) -> dict:
    from bench.hac_bootstrap import _environment
    hac = rig.hacs[runner]
    method = ("tls" if runner.startswith("floor") else
              "psk" if figure.startswith("psk") else "eap-md5")
    mns = (tuple(rig.psks[:concurrency]) if method != "eap-md5" else
           (rig.eap_user,) * concurrency)
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    job = HacJob(hac.port, rig.ca_path, method, mns, args.count, args.seconds)
    process = SPAWN.Process(target=_drive_hac, args=(job, barrier, results))
    with _environment("OPENSSL_CONF", str(rig.x25519_only)):
        process.start()
    try:
        server_pids = process_tree(hac.process.pid)
        barrier.wait(SYNC_TIMEOUT)
        before = cpu_seconds(server_pids), cpu_seconds(rig.radius_pids)
        report = results.get(timeout=args.seconds + SYNC_TIMEOUT)
        after = cpu_seconds(server_pids), cpu_seconds(rig.radius_pids)
    finally:
        process.join(SYNC_TIMEOUT)
        if process.is_alive():
            process.kill()
    return _figure(report["latencies"], report["failures"], report["seconds"],
                   after[0] - before[0], report["cpu"], after[1] - before[1])


def measure_charon(rig: Rig, runner: str, figure: str, concurrency: int, args) -> dict:
    kind = runner.removeprefix("charon-")
    charon_load(rig.initiator, kind, concurrency, 0.5, concurrency * 4)  # warm-up, untimed
    server = [rig.responder.process.pid]
    client = [rig.initiator.process.pid]
    inits_before = _ike_sa_inits(rig.responder)
    before = (cpu_seconds(server), cpu_seconds(client) + sum(os.times()[:2]),
              cpu_seconds(rig.radius_pids))
    load = charon_load(rig.initiator, kind, concurrency, args.seconds, args.count)
    after = (cpu_seconds(server), cpu_seconds(client) + sum(os.times()[:2]),
             cpu_seconds(rig.radius_pids))
    # Every operation must be a new IKE_SA: the responder counts the IKE_SA_INITs it got.
    return {**_figure(load["latencies"], load["failures"], load["seconds"],
                      after[0] - before[0], after[1] - before[1], after[2] - before[2]),
            "responder_ike_sa_inits": _ike_sa_inits(rig.responder) - inits_before}


def _ike_sa_inits(charon: Charon) -> int:
    """IKE_SA_INIT requests the charon has received (its counters plugin)."""
    vici = charon.session()
    try:
        counters = vici.session.get_counters()["counters"][""]  # "": the global ones
    finally:
        vici.close()
    value = counters["ike-init-in-req"]
    return int(value.decode() if isinstance(value, bytes) else value)


def _figure(latencies, failures, seconds, server_cpu, client_cpu, radius_cpu) -> dict:
    done = len(latencies)

    def per(cpu):
        return round(cpu * 1000 / done, 3) if done else None

    return {"operations": done, "failures": failures, "seconds": round(seconds, 2),
            "per_second": round(done / seconds, 1) if seconds else None,
            **latency_summary(latencies), "server_cpu_ms": per(server_cpu),
            "client_cpu_ms": per(client_cpu), "radius_cpu_ms": per(radius_cpu)}


def run_rounds(rig: Rig, args) -> None:
    """Every figure, every runner, round after round (the runners' order alternates)."""
    for round_number in range(args.rounds):
        for figure in args.figures:
            concurrency, runners = FIGURES[figure]
            order = runners if round_number % 2 == 0 else tuple(reversed(runners))
            for runner in order:
                measure = measure_charon if runner.startswith("charon") else measure_hac
                result = measure(rig, runner, figure, concurrency, args)
                rig.rounds.setdefault((figure, runner), []).append(result)
                emit("round", round=round_number + 1, name=figure, runner=runner,
                     concurrency=concurrency, **result)


def _median(values):
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 3) if values else None


def report(rig: Rig, args) -> None:
    """Per figure and runner the medians of the rounds; then the ratios to the targets."""
    medians = {}
    for (figure, runner), rounds in rig.rounds.items():
        keys = ("per_second", "p50_ms", "p99_ms", "server_cpu_ms", "client_cpu_ms",
                "radius_cpu_ms")
        medians[(figure, runner)] = {key: _median([r[key] for r in rounds]) for key in keys}
        emit("median", name=figure, runner=runner, concurrency=FIGURES[figure][0],
             rounds=len(rounds), operations=sum(r["operations"] for r in rounds),
             failures=sum(r["failures"] for r in rounds), **medians[(figure, runner)],
             server_cpu_ms_rounds=[r["server_cpu_ms"] for r in rounds])
    for figure, charon, quantity, target in TARGETS:
        hac_runners = [runner for runner in FIGURES[figure][1] if runner.startswith("hac")]
        for hac_runner in hac_runners:
            hac_value = medians.get((figure, hac_runner), {}).get(quantity)
            charon_value = medians.get((figure, charon), {}).get(quantity)
            if hac_value is None or not charon_value:
                continue
            ratio = round(hac_value / charon_value, 2)
            emit("hac_vs_charon", name=figure, hac=hac_runner, charon=charon,
                 quantity=quantity, hac_value=hac_value, charon_value=charon_value,
                 ratio=ratio, target=f"<= {target}", met=ratio <= target)
    for floor in FIGURES["floor_16"][1]:
        floor_value = medians.get(("floor_16", floor), {}).get("server_cpu_ms")
        for figure, compared in (("psk_16", "hac"), ("psk_16", "charon-cert"),
                                 ("psk_16", "charon-psk")):
            value = medians.get((figure, compared), {}).get("server_cpu_ms")
            if floor_value and value:
                emit("floor_share", floor=floor, floor_server_cpu_ms=floor_value,
                     of=f"{figure} {compared}", server_cpu_ms=value,
                     ratio=round(floor_value / value, 2),
                     note="the floor's server CPU per handshake over this runner's per "
                          "operation: what TLS in this process model costs before RFC 6618")


def build_rig(directory: Path, radius, args, stack) -> Rig:
    from aaa_mip6 import pki
    from bench.hac_bootstrap import X25519_ONLY
    from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids

    setup = make_setup(directory / "pki", identities=mn_ids(16))
    secret_file = directory / "radius.secret"
    pki.write_private(secret_file, radius.secret + b"\n")
    hacs = {}
    for runner, from_mn_id in (("hac", False), ("hac-id-from-mn-id", True)):
        config = {**TEST_CONFIG, "log": {"level": args.hac_log_level},
                  "limits": {**TEST_CONFIG["limits"], "max_connections": 10_000},
                  "eap": {"identity_from_mn_id": from_mn_id}}
        own = directory / runner
        own.mkdir()
        hac_setup = dataclasses.replace(setup, directory=own,
                                        store_url=f"sqlite:///{own / 'sa.db'}")
        hacs[runner] = stack.enter_context(HacProcess(hac_setup, config=config, extra_args=[
            "--workers", str(args.workers), "--radius-server", f"{radius.host}:{radius.port}",
            "--radius-secret-file", str(secret_file)]))
    for kind in FIGURES["floor_16"][1]:
        store = directory / kind
        store.mkdir()
        ports = SPAWN.Queue()
        server = SPAWN.Process(target=_floor_server, args=(
            kind, setup.server.cert_path, setup.server.key_path, f"sqlite:///{store / 'sa.db'}",
            ports), daemon=True)
        server.start()
        stack.callback(_stop_floor, server)
        hacs[kind] = SimpleNamespace(port=ports.get(timeout=START_TIMEOUT), process=server)
    responder_id = pki.make_cert(directory / "strongswan", setup.ca, "responder",
                                 dns_names=(RESPONDER_CERT_ID,))
    psk = os.urandom(32)
    responder = Charon(directory / "responder", radius).start()
    stack.callback(responder.stop)
    initiator = Charon(directory / "initiator").start()
    stack.callback(initiator.stop)
    configure_responder(responder, responder_id.cert_path.read_bytes(),
                        responder_id.key_path.read_bytes(), psk, radius.user)
    configure_initiator(initiator, responder.port, setup.ca.cert_path.read_bytes(), psk,
                        radius.user, radius.password, 16)
    radius_pids = [pid for pid in process_tree(os.getpid())
                   if Path(f"/proc/{pid}/comm").read_text().strip() in ("freeradius",
                                                                         "radiusd")]
    x25519_only = directory / "x25519-only.cnf"
    x25519_only.write_text(X25519_ONLY)
    return Rig(hacs, responder, initiator, radius_pids, list(setup.psks.items()),
               (radius.user, radius.password.encode()), x25519_only, setup.ca.cert_path)


def _stop_floor(server) -> None:
    server.terminate()
    server.join(SYNC_TIMEOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: 1 round of 2 s per runner and figure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="time bound per runner, figure and round")
    parser.add_argument("--count", type=int, default=5000,
                        help="operations per runner, figure and round at most")
    parser.add_argument("--figures", default=",".join(FIGURES))
    parser.add_argument("--workers", type=int, default=1, help="HAC worker processes")
    parser.add_argument("--hac-log-level", default="info",
                        help="the HAC's log.level (info, its default: one line a bootstrap)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    args.figures = args.figures.split(",")
    problem = missing()
    if problem is not None:
        print(f"vs_strongswan: {problem}", file=sys.stderr)
        return 2
    import contextlib

    from lab.servers.freeradius import running_freeradius
    emit("machine", cpus=os.cpu_count(),
         load_average=[round(load, 2) for load in os.getloadavg()],
         charon=subprocess.run([str(CHARON), "--version"], capture_output=True,
                               text=True).stdout.strip() or "?",
         note="every process shares these cores; CPU per operation is the figure to "
              "compare, medians over alternating rounds; a load average well above 2 "
              "means other jobs shared the machine")
    with tempfile.TemporaryDirectory(prefix="vs-strongswan-") as temp, \
            contextlib.ExitStack() as stack:
        directory = Path(temp)
        radius = stack.enter_context(running_freeradius(directory / "radius"))
        rig = build_rig(directory, radius, args, stack)
        emit("setup", hac_workers=args.workers, hac_log_level=args.hac_log_level,
             tls="TLS 1.3, X25519 only offered, ECDSA P-256 HAC certificate",
             ike=f"IKEv2 {PROPOSAL}, no CHILD_SA, charon filelog level 0",
             radius="FreeRADIUS 3.2, thread pool", seconds=args.seconds, rounds=args.rounds,
             legend="server = HAC process / responder charon; client = MN driver / "
                    "initiator charon + vici driver; radius = FreeRADIUS; *_cpu_ms per "
                    "operation; a charon round's responder_ike_sa_inits is at least its "
                    "operations (fewer: IKE_SAs were reused, the round is void)")
        run_rounds(rig, args)
        report(rig, args)
    emit("machine_after", load_average=[round(load, 2) for load in os.getloadavg()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
