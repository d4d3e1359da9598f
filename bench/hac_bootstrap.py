"""HAC PSK bootstrap benchmark: bootstraps per second and p50/p99 latency with 1, 16 and 64
concurrent MNs against bare OpenSSL full handshakes in the same run, and memory per idle
TLS connection (docs/performance.md, section "HAC PSK bootstrap").

One run makes an EC P-256 CA and HAC certificate (aaa_mip6.pki, via
lab/servers/hac.py) and measures, in alternating rounds (best round of each figure kept):

- baseline: ``openssl s_time -new`` (full handshakes, one connection at a time per
  client) against ``openssl s_server`` with the same certificate and key on 127.0.0.1,
  with one and with two s_time clients; the better is the baseline rate. ``-reuse``
  (two clients) for resumed sessions;
- ``mip6-hac --workers 2`` (two processes on one port sharing one SQLite store) driven by
  load-driver processes of their own (spawned, one Twisted epoll reactor each, MNs split
  between them): whole RFC 6618 PSK bootstraps (TLS, MN Init, MN Done, SA stored and
  sent, every auth checked) with ``--concurrency`` MNs at a time. Headline: every
  bootstrap a new MN, so a full handshake; extra: each MN resuming its TLS session. The
  drivers offer only X25519, the key exchange s_server (OpenSSL 3.0) negotiates, so both
  sides do the same handshake; one more figure keeps the library's default groups
  (X25519MLKEM768 first);
- memory: a fresh one-worker HAC, ``--idle`` TLS connections opened and left idle; RSS
  delta / connections.

The machine's cores are shared by everyone: s_server with its s_time clients, the HAC
workers with their drivers. Each figure reports the CPU time the server side and the
client side used per handshake or bootstrap, so the split is visible; ``ratio`` lines
divide the HAC rate by the baseline rate, and the server CPU per operation of the two.
Every figure is bounded by ``--count`` and ``--seconds``.

Usage: .venv/bin/python bench/hac_bootstrap.py [--seconds S] [--count N] [--rounds R]
       [--concurrency 1,16,64] [--workers W] [--drivers D] [--idle N]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, threads  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS  # noqa: E402
from twisted.internet.epollreactor import EPollReactor  # noqa: E402
from twisted.internet.interfaces import IHandshakeListener  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from zope.interface import implementer  # noqa: E402

from aaa_mip6.twisted.tls import ClientTLS, session_reused  # noqa: E402
from bench._common import cpu_seconds, emit, latency_summary, process_tree, rss_bytes  # noqa: E402
from lab.processes import free_port, stop_process, wait_listening  # noqa: E402
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids  # noqa: E402
from mn import client  # noqa: E402
from mn.bootstrap import BootstrapFailed, PskBootstrap  # noqa: E402

TARGET = 0.5
BASELINE = "openssl s_time vs openssl s_server"
HOST = "127.0.0.1"
S_TIME_MODES = {"new": "-new", "resumed": "-reuse"}  # HAC sessions -> the s_time mode
BASELINE_RUNS = (("new", 1), ("new", 2), ("resumed", 2))  # (sessions, s_time clients)
SPAWN = multiprocessing.get_context("spawn")  # drivers start from scratch: no inherited state
PREPARED_PER_SECOND = 500  # fresh TLS clients a driver builds, per timed second, before timing
SYNC_TIMEOUT = 60.0  # seconds for drivers to start or answer: a safety net only
IN_FLIGHT_OPENING = 32  # idle connections being opened at once
BASELINE_GROUP = "X25519"
X25519_ONLY = f"""openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_section
[ssl_section]
system_default = system_default_section
[system_default_section]
Groups = {BASELINE_GROUP}
"""
"""An OpenSSL configuration that makes a client offer only the baseline's key exchange."""


@dataclass(frozen=True)
class DriveJob:
    """What one load-driver process does: ``len(mns)`` MNs at once, at most ``count``
    bootstraps in all, for at most ``seconds``."""

    port: int
    ca_path: Path
    mns: tuple[tuple[str, bytes], ...]  # (NAI, PSK), one per concurrent MN
    count: int
    seconds: float
    resume: bool


class ObservedTLS(ClientTLS):
    """ClientTLS that remembers its last connection, to read its group and resumption."""

    last_connection = None

    def clientConnectionForTLS(self, tlsProtocol):  # noqa: N802 (Twisted API)
        self.last_connection = super().clientConnectionForTLS(tlsProtocol)
        return self.last_connection


def _drive(job: DriveJob, barrier, results) -> None:
    """Driver process: warm up, wait for the others, run the timed bootstraps, report."""
    reactor = EPollReactor()  # a private reactor; select() would stop at 1024 descriptors
    report: dict = {"latencies": [], "failures": 0, "resumed": 0, "groups": set()}

    async def one(tls, nai: str, psk: bytes) -> None:
        await client.bootstrap(reactor, tls, job.port, PskBootstrap(nai, psk), timeout=30)

    # A new MN has no session to resume: a TLS client of its own, built before the clock
    # starts (as s_time reuses its SSL_CTX), unless the run outlasts the prepared ones.
    fresh = [] if job.resume else [ObservedTLS(HOST, job.ca_path) for _ in range(
        min(job.count, int(job.seconds * PREPARED_PER_SECOND)))]

    async def mn_loop(nai: str, psk: bytes, tls, budget: list[int], deadline: float) -> None:
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            if not job.resume:
                tls = fresh.pop() if fresh else ObservedTLS(HOST, job.ca_path)
            begin = time.monotonic()
            try:
                await one(tls, nai, psk)
            except BootstrapFailed:
                report["failures"] += 1
                continue
            report["latencies"].append(time.monotonic() - begin)
            report["resumed"] += session_reused(tls.last_connection)
            report["groups"].add(tls.last_connection.get_group_name())

    async def scenario() -> None:
        clients = [ObservedTLS(HOST, job.ca_path) for _ in job.mns]
        # Warm-up, untimed: imports, and for resumption each MN's first (full) handshake.
        await defer.gatherResults([defer.ensureDeferred(one(tls, nai, psk))
                                   for tls, (nai, psk) in zip(clients, job.mns)])
        await threads.deferToThreadPool(reactor, reactor.getThreadPool(), barrier.wait,
                                        SYNC_TIMEOUT)
        cpu_before, report["begin"] = sum(os.times()[:2]), time.monotonic()
        budget, deadline = [job.count], report["begin"] + job.seconds
        await defer.gatherResults([
            defer.ensureDeferred(mn_loop(nai, psk, tls, budget, deadline))
            for tls, (nai, psk) in zip(clients, job.mns)])
        report["end"] = time.monotonic()
        report["cpu"] = sum(os.times()[:2]) - cpu_before

    _run(reactor, scenario)
    report["groups"] = sorted(str(group) for group in report["groups"])
    results.put(report)


def _run(reactor, scenario) -> None:
    """Run ``scenario()`` on ``reactor`` until it ends; re-raise its failure."""
    outcome: list = []

    def start() -> None:
        running = defer.ensureDeferred(scenario())
        running.addBoth(outcome.append)
        running.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    if outcome and isinstance(outcome[0], Failure):
        outcome[0].raiseException()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (index < total % parts) for index in range(parts)]


@contextlib.contextmanager
def _environment(name: str, value: str | None):
    """``os.environ[name]`` is ``value`` (None: unchanged) for processes started meanwhile."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def hac_figure(hac: HacProcess, concurrency: int, resume: bool, args,
               openssl_conf: Path | None) -> dict:
    """Bootstraps/s, latency and CPU split for ``concurrency`` MNs spread over the drivers.

    ``openssl_conf`` (an OpenSSL configuration file) restricts what the drivers offer.
    """
    mns = list(hac.setup.psks.items())[:concurrency]
    drivers = min(args.drivers, concurrency)
    shares = _split(concurrency, drivers)
    counts = _split(args.count, drivers)
    barrier, results = SPAWN.Barrier(drivers + 1), SPAWN.Queue()
    processes, first = [], 0
    for share, count in zip(shares, counts):
        job = DriveJob(hac.port, hac.setup.ca.cert_path, tuple(mns[first:first + share]),
                       count, args.seconds, resume)
        first += share
        processes.append(SPAWN.Process(target=_drive, args=(job, barrier, results)))
    with _environment("OPENSSL_CONF", openssl_conf and str(openssl_conf)):
        for process in processes:
            process.start()
    try:
        hac_pids = process_tree(hac.process.pid)
        barrier.wait(SYNC_TIMEOUT)
        hac_cpu_before = cpu_seconds(hac_pids)
        reports = [results.get(timeout=args.seconds + SYNC_TIMEOUT) for _ in processes]
        hac_cpu = cpu_seconds(hac_pids) - hac_cpu_before
    finally:
        for process in processes:
            process.join(SYNC_TIMEOUT)
            if process.is_alive():
                process.kill()
    latencies = [latency for report in reports for latency in report["latencies"]]
    elapsed = max(r["end"] for r in reports) - min(r["begin"] for r in reports)
    done = len(latencies)
    return {"bootstraps": done, "failures": sum(r["failures"] for r in reports),
            "seconds": round(elapsed, 3), "per_second": round(done / elapsed, 1),
            **latency_summary(latencies),
            "resumed": sum(r["resumed"] for r in reports),
            "groups": sorted({group for r in reports for group in r["groups"]}),
            "server_cpu_ms": _per(hac_cpu, done),
            "client_cpu_ms": _per(sum(r["cpu"] for r in reports), done)}


def _per(cpu: float, operations: int) -> float | None:
    return round(cpu * 1000 / operations, 3) if operations else None


class OpensslServer:
    """``openssl s_server`` with the HAC's certificate and key on a free loopback port."""

    def __init__(self, cert: Path, key: Path):
        self.cert, self.key = cert, key
        self.process: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> OpensslServer:
        for _ in range(3):  # another program may take the free port first
            self.port = free_port(HOST)
            self.process = subprocess.Popen(
                ["openssl", "s_server", "-accept", f"{HOST}:{self.port}", "-cert",
                 str(self.cert), "-key", str(self.key), "-quiet"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if wait_listening(self.process, HOST, self.port, 10.0):
                return self
            stop_process(self.process)
        raise RuntimeError("openssl s_server did not start")

    def __exit__(self, *exc_info) -> None:
        stop_process(self.process)

    def negotiated(self) -> str:
        """What an OpenSSL client negotiates with it: protocol, cipher, key exchange."""
        probe = subprocess.run(
            ["openssl", "s_client", "-connect", f"{HOST}:{self.port}", "-brief"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        wanted = ("Protocol version", "Ciphersuite", "Server Temp Key", "Peer signature type")
        return "; ".join(line.strip() for line in probe.stderr.splitlines()
                         if line.startswith(wanted))


_S_TIME_COUNT = re.compile(r"^(\d+) connections in [\d.]+s;", re.MULTILINE)


def s_time_figure(server: OpensslServer, clients: int, mode: str, seconds: int) -> dict:
    """``clients`` concurrent ``openssl s_time`` runs (``-new`` or ``-reuse``), wall-timed."""
    command = ["openssl", "s_time", "-connect", f"{HOST}:{server.port}", mode,
               "-time", str(seconds)]
    server_cpu_before = cpu_seconds([server.process.pid])
    client_cpu_before = _children_cpu()
    begin = time.monotonic()
    runs = [subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True) for _ in range(clients)]
    outputs = [run.communicate(timeout=seconds + SYNC_TIMEOUT)[0] for run in runs]
    elapsed = time.monotonic() - begin
    server_cpu = cpu_seconds([server.process.pid]) - server_cpu_before
    done = 0
    for output in outputs:
        match = _S_TIME_COUNT.search(output)
        if match is None:
            raise RuntimeError(f"unexpected openssl s_time output: {output[-300:]!r}")
        done += int(match.group(1))
    return {"handshakes": done, "seconds": round(elapsed, 3),
            "per_second": round(done / elapsed, 1), "server_cpu_ms": _per(server_cpu, done),
            "client_cpu_ms": _per(_children_cpu() - client_cpu_before, done)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@implementer(IHandshakeListener)
class IdleConnection(Protocol):
    """A TLS connection that completes its handshake and then sends nothing."""

    def __init__(self):
        self.handshaken = defer.Deferred()

    def handshakeCompleted(self):  # noqa: N802 (Twisted API)
        self.handshaken.callback(None)


def _hold_idle(port: int, ca_path: Path, warm: int, count: int, steps) -> None:
    """Driver process: open ``warm`` then ``count`` more idle TLS connections, step by step.

    Each connection is a new MN (full handshake). After each batch it waits on the next
    ``steps`` event (the parent measures meanwhile); after the last it closes everything.
    """
    reactor = EPollReactor()
    limit = defer.DeferredSemaphore(IN_FLIGHT_OPENING)
    opened: list[IdleConnection] = []

    async def open_one() -> None:
        endpoint = wrapClientTLS(ClientTLS(HOST, ca_path),
                                 TCP4ClientEndpoint(reactor, HOST, port, timeout=30),
                                 clock=reactor)
        protocol = IdleConnection()
        await endpoint.connect(Factory.forProtocol(lambda: protocol))
        await protocol.handshaken
        opened.append(protocol)

    async def scenario() -> None:
        for batch, step in ((warm, steps[0]), (count, steps[1])):
            await defer.gatherResults([limit.run(lambda: defer.ensureDeferred(open_one()))
                                       for _ in range(batch)])
            step[0].set()  # opened: the parent measures
            await threads.deferToThreadPool(reactor, reactor.getThreadPool(), step[1].wait,
                                            SYNC_TIMEOUT)
        for protocol in opened:
            protocol.transport.abortConnection()

    _run(reactor, scenario)


def idle_memory_figure(directory: Path, args) -> dict:
    """RSS growth of a fresh one-worker HAC per idle TLS connection (handshake done, no data)."""
    setup = make_setup(directory / "idle")
    config = {**TEST_CONFIG, "limits": {**TEST_CONFIG["limits"], "idle_timeout": 600.0,
                                        "handshake_timeout": 60.0,
                                        "max_connections": args.idle * 2 + 100}}
    warm = IN_FLIGHT_OPENING
    steps = [(SPAWN.Event(), SPAWN.Event()) for _ in range(2)]
    with HacProcess(setup, config=config) as hac:
        holder = SPAWN.Process(target=_hold_idle,
                               args=(hac.port, setup.ca.cert_path, warm, args.idle, steps))
        holder.start()
        try:
            readings = []
            for opened, measured in steps:
                if not opened.wait(SYNC_TIMEOUT):
                    raise RuntimeError("the idle connections were not opened in time")
                time.sleep(1.0)  # let the HAC finish its side of the last handshakes
                readings.append(rss_bytes([hac.process.pid]))
                measured.set()
        finally:
            holder.join(SYNC_TIMEOUT)
            if holder.is_alive():
                holder.kill()
    delta = readings[1] - readings[0]
    return {"connections": args.idle, "rss_before_mb": round(readings[0] / 2**20, 1),
            "rss_after_mb": round(readings[1] / 2**20, 1),
            "bytes_per_connection": delta // args.idle}


def _best(rounds: list[dict]) -> dict:
    """The round with the highest rate, and every round's rate (the spread shows noise)."""
    best = max(rounds, key=lambda figure: figure["per_second"])
    return {**best, "round_rates": [figure["per_second"] for figure in rounds]}



def measure(args, levels: list[int], directory: Path) -> tuple[dict, dict]:
    """Every rate figure, round after round: ``{key: [one figure per round]}`` for the
    baseline (key: sessions, s_time clients) and the HAC (key: sessions, MNs, groups)."""
    setup = make_setup(directory / "hac", identities=mn_ids(max(levels)))
    x25519_only = directory / "x25519-only.cnf"
    x25519_only.write_text(X25519_ONLY)
    hac_runs = [(sessions, level, BASELINE_GROUP) for sessions in S_TIME_MODES
                for level in levels] + [("new", max(levels), "library default")]
    config = {**TEST_CONFIG, "limits": {**TEST_CONFIG["limits"], "max_connections": 10_000}}
    baseline: dict[tuple, list] = {}
    hac_figures: dict[tuple, list] = {}
    with OpensslServer(setup.server.cert_path, setup.server.key_path) as server, \
            HacProcess(setup, config=config,
                       extra_args=["--workers", str(args.workers)]) as hac:
        emit("baseline_tls", server="openssl s_server", negotiated=server.negotiated())
        for _ in range(args.rounds):
            for sessions, clients in BASELINE_RUNS:
                baseline.setdefault((sessions, clients), []).append(
                    s_time_figure(server, clients, S_TIME_MODES[sessions], args.seconds))
            for key in hac_runs:
                sessions, level, groups = key
                hac_figures.setdefault(key, []).append(hac_figure(
                    hac, level, sessions == "resumed", args,
                    x25519_only if groups == BASELINE_GROUP else None))
    return baseline, hac_figures


def report(args, baseline: dict, hac_figures: dict) -> None:
    """The best round of every figure, and each HAC figure's ratios to its baseline."""
    best_baseline = {}
    for (sessions, clients), rounds in baseline.items():
        best = _best(rounds)
        emit("openssl_handshake_rate", path=BASELINE, mode=S_TIME_MODES[sessions],
             clients=clients, **best)
        if best["per_second"] > best_baseline.get(sessions, {"per_second": 0})["per_second"]:
            best_baseline[sessions] = best
    for (sessions, level, groups), rounds in hac_figures.items():
        best = _best(rounds)
        emit("hac_psk_bootstrap_rate", sessions=sessions, concurrency=level,
             workers=args.workers, offered_groups=groups, **best)
        if groups != BASELINE_GROUP:
            continue
        reference = best_baseline[sessions]
        ratio = best["per_second"] / reference["per_second"]
        headline = {"target": TARGET, "met": ratio >= TARGET} if sessions == "new" else {}
        emit("hac_vs_openssl_ratio", sessions=sessions, concurrency=level,
             baseline=f"openssl s_time {S_TIME_MODES[sessions]} vs openssl s_server",
             baseline_per_second=reference["per_second"], ratio=round(ratio, 2), **headline,
             server_cpu_ratio=round(reference["server_cpu_ms"] / best["server_cpu_ms"], 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="time bound per figure and round")
    parser.add_argument("--count", type=int, default=5000, help="bootstraps per figure and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--workers", type=int, default=2, help="HAC worker processes")
    parser.add_argument("--drivers", type=int, default=2, help="load-driver processes")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections for memory")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.concurrency.split(",")]
    emit("machine", cpus=os.cpu_count(), load_average=[round(load, 2) for load in
                                                       os.getloadavg()],
         openssl_cli=subprocess.run(["openssl", "version"], capture_output=True,
                                    text=True).stdout.strip(),
         note="the HAC workers and their load drivers share these cores, "
              "as s_server and its s_time clients do")
    with tempfile.TemporaryDirectory(prefix="hac-bootstrap-bench-") as temp:
        directory = Path(temp)
        report(args, *measure(args, levels, directory))
        emit("hac_memory_per_idle_tls_connection", workers=1,
             **idle_memory_figure(directory, args))
    emit("machine_after", load_average=[round(load, 2) for load in os.getloadavg()],
         note="a load average well above the run's own ~2 means other jobs shared the cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
