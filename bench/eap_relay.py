"""EAP relay benchmark: authentications per second and p99 through the HAC against the
same load driver speaking RADIUS straight to the same FreeRADIUS (docs/performance.md,
section "EAP relay").

One run starts FreeRADIUS 3.2 (thread pool, not debug mode; lab/servers/freeradius.py)
and a ``mip6-hac`` process relaying to it. For each method (EAP-MD5, EAP-TLS) the one load
driver runs ``--concurrency`` authentications at a time, bounded by ``--count`` and
``--seconds``, first on the baseline path -- the MN's EAP peer relayed by the HAC's own
RADIUS client (aaa_mip6.radius.RadiusClient) straight to FreeRADIUS -- then through the
HAC: a full RFC 6618 EAP bootstrap over TLS (mn.client + mn.bootstrap.EapBootstrap), SA
included. One JSON line per figure; the ratio line compares the two (target >= 0.8).
A first figure, PSK bootstraps through the same HAC (no AAA at all), shows what the TLS
connection and the SA store cost on their own.

Every figure also gives the CPU time per authentication of each process (the driver,
the HAC, FreeRADIUS; read from /proc around the figure). FreeRADIUS, the HAC and the
driver share this machine's cores, so the ratio line also says what the target leaves:
``cpu_budget_ms`` = cores / (target x baseline rate), the CPU one authentication through
the HAC may cost all processes together for the target to be reachable at all, next to
``floor_cpu_ms`` = the baseline's CPU per authentication (EAP peer, RADIUS client,
FreeRADIUS: all still done on the HAC path) plus a PSK bootstrap's (TLS handshake, RFC
6618 exchange, SA commit: every EAP bootstrap does them too, and more messages). When
the floor exceeds the budget, ``reachable`` is false: no relay, however cheap, can meet
the target on this machine.

By default the HAC runs RFC 6618 Figure 5: its Init carries an EAP-Request/Identity and
the MN's first Mid the response, one MN-HAC round trip the baseline never makes (its
driver answers the identity request itself). ``--identity-from-mn-id`` runs the HAC with
``eap.identity_from_mn_id``, so both paths carry the same EAP rounds.

Usage: .venv/bin/python bench/eap_relay.py [--count N] [--seconds S] [--concurrency C]
       [--methods md5,tls] [--identity-from-mn-id]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import cpu_seconds, process_tree  # noqa: E402

from twisted.internet import defer  # noqa: E402

from aaa_mip6 import eap, pki  # noqa: E402
from aaa_mip6.aaa import AaaSession, Accept, Challenge  # noqa: E402
from aaa_mip6.radius.codec import Nas  # noqa: E402
from aaa_mip6.radius.servers import RadiusServer, RetryPolicy  # noqa: E402
from aaa_mip6.twisted.radius_client import RadiusClient  # noqa: E402
from aaa_mip6.twisted.tls import ClientTLS  # noqa: E402
from lab.reactors import run_on_fresh_reactor  # noqa: E402
from lab.servers.freeradius import running_freeradius  # noqa: E402
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup  # noqa: E402
from mn import client  # noqa: E402
from mn.bootstrap import EapBootstrap, PskBootstrap  # noqa: E402
from mn.eap import EapCredentials  # noqa: E402
from mn.eap.peer import EapPeer  # noqa: E402

TARGET = 0.8
BASELINE = "direct RADIUS"
THROUGH_HAC = "through the HAC"
POLICY = RetryPolicy(initial_timeout=5.0, max_timeout=5.0, transmissions=2)


def credentials(radius, method: str) -> tuple[str, EapCredentials]:
    """(user name, credentials) for one method of the test FreeRADIUS."""
    if method == "tls":
        return radius.tls_user, EapCredentials(radius.tls_user, client_cert=radius.client_cert,
                                               client_key=radius.client_key,
                                               ca_cert=radius.ca_cert)
    return radius.user, EapCredentials(radius.user, radius.password)


async def direct_auth(radius_client: RadiusClient, method: str, user: str,
                      creds: EapCredentials) -> None:
    """One EAP conversation relayed by the HAC's RADIUS client, as the HAC does it."""
    peer = EapPeer(method, creds)
    session = AaaSession(user, ipaddress.ip_address("127.0.0.1"), 40000)
    payload = peer.receive(eap.EapPacket(eap.Code.REQUEST, 1, eap.Type.IDENTITY).encode())
    while True:
        answer = await radius_client.authenticate(session, payload)
        if not isinstance(answer, Challenge):
            break
        payload = peer.receive(answer.eap_payload)
    if not isinstance(answer, Accept):
        raise RuntimeError(f"{method}: FreeRADIUS refused the benchmark user")


async def hac_auth(tls: ClientTLS, port: int, reactor, method: str, creds: EapCredentials):
    """One full EAP bootstrap through the HAC."""
    machine = EapBootstrap(creds.identity, EapPeer(method, creds))
    await client.bootstrap(reactor, tls, port, machine, timeout=30)


async def load(reactor, one, count: int, seconds: float, concurrency: int) -> dict:
    """Run ``one()`` ``count`` times (or until ``seconds``), ``concurrency`` at a time."""
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds

    started_count = 0

    async def worker():
        nonlocal started_count
        while started_count < count and time.perf_counter() < deadline:
            started_count += 1
            begin = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - begin)

    await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(concurrency)],
                              consumeErrors=True)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"auths": len(latencies), "seconds": round(elapsed, 3),
            "per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[min(len(latencies) - 1,
                                          int(len(latencies) * 0.99))] * 1000, 2)}


class CpuMeter:
    """CPU seconds of the driver (this process), the HAC and the AAA servers (this process's
    children by command name, FreeRADIUS by default) around one figure."""

    def __init__(self, hac: HacProcess, servers: tuple[str, ...] = ("freeradius",)):
        self.hac_pids = process_tree(hac.process.pid)
        self.server_pids = {name: [pid for pid in process_tree(os.getpid())
                                   if Path(f"/proc/{pid}/comm").read_text().strip() == name]
                            for name in servers}

    def _now(self) -> dict[str, float]:
        return {"driver": sum(os.times()[:2]), "hac": cpu_seconds(self.hac_pids),
                **{name: cpu_seconds(pids) for name, pids in self.server_pids.items()}}

    def measure(self, run) -> dict:
        """``run()``'s figure with ``cpu_ms`` per authentication for each process and in all."""
        before = self._now()
        figure = run()
        after = self._now()
        auths = figure["auths"] or 1
        cpu = {name: round((after[name] - before[name]) * 1000 / auths, 3) for name in before}
        cpu["all"] = round(sum(cpu.values()), 3)
        return {**figure, "cpu_ms": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="authentications per figure")
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound per figure")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--methods", default="md5,tls")
    parser.add_argument("--identity-from-mn-id", action="store_true",
                        help="the HAC builds the EAP identity response from mn-id "
                             "(eap.identity_from_mn_id): no identity round trip")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eap-relay-bench-") as temp:
        directory = Path(temp)
        with running_freeradius(directory / "radius") as radius:
            setup = make_setup(directory / "hac")
            secret_file = directory / "radius.secret"
            pki.write_private(secret_file, radius.secret + b"\n")
            config = {**TEST_CONFIG, "limits": {**TEST_CONFIG["limits"],
                                                "max_connections": 10_000},
                      "eap": {"identity_from_mn_id": args.identity_from_mn_id}}
            with HacProcess(setup, config=config, extra_args=[
                    "--radius-server", f"{radius.host}:{radius.port}",
                    "--radius-secret-file", str(secret_file)]) as hac:
                meter = CpuMeter(hac)
                psk = run_psk(args, hac, meter)
                for method in args.methods.split(","):
                    run_method(args, radius, hac, method, meter, psk)
    return 0


def run_psk(args, hac: HacProcess, meter: CpuMeter) -> dict:
    """PSK bootstraps through the same HAC: its cost without any AAA round trip."""
    identity, psk = next(iter(hac.setup.psks.items()))

    async def psk_bootstraps(reactor):
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)

        async def one():
            await client.bootstrap(reactor, tls, hac.port, PskBootstrap(identity, psk), timeout=30)

        return await load(reactor, one, args.count, args.seconds, args.concurrency)

    figure = meter.measure(
        lambda: run_on_fresh_reactor(psk_bootstraps, limit=args.seconds * 3 + 30))
    print(json.dumps({"figure": "psk_bootstrap_rate", "path": THROUGH_HAC,
                      "concurrency": args.concurrency, **figure}), flush=True)
    return figure


def run_method(args, radius, hac: HacProcess, method: str, meter: CpuMeter, psk: dict) -> None:
    user, creds = credentials(radius, method)
    server = RadiusServer(ipaddress.ip_address(radius.host), radius.port, radius.secret)

    async def direct(reactor):
        radius_client = RadiusClient([server], Nas("bench", ipaddress.ip_address("127.0.0.1")),
                                     policy=POLICY, reactor=reactor)
        try:
            return await load(reactor, lambda: direct_auth(radius_client, method, user, creds),
                              args.count, args.seconds, args.concurrency)
        finally:
            await radius_client.stop()

    async def through_hac(reactor):
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)
        return await load(reactor, lambda: hac_auth(tls, hac.port, reactor, method, creds),
                          args.count, args.seconds, args.concurrency)

    limit = args.seconds * 3 + 30
    figures = {}
    for path, scenario in ((BASELINE, direct), (THROUGH_HAC, through_hac)):
        figures[path] = meter.measure(lambda: run_on_fresh_reactor(scenario, limit=limit))
        print(json.dumps({"figure": "eap_auth_rate", "method": method, "path": path,
                          "identity_from_mn_id": args.identity_from_mn_id,
                          "concurrency": args.concurrency, **figures[path]}), flush=True)
    ratio = figures[THROUGH_HAC]["per_second"] / figures[BASELINE]["per_second"]
    budget = os.cpu_count() * 1000 / (TARGET * figures[BASELINE]["per_second"])
    floor = figures[BASELINE]["cpu_ms"]["all"] + psk["cpu_ms"]["all"]
    print(json.dumps({"figure": "eap_relay_ratio", "method": method, "baseline": BASELINE,
                      "identity_from_mn_id": args.identity_from_mn_id,
                      "ratio": round(ratio, 2), "target": TARGET, "met": ratio >= TARGET,
                      "cores": os.cpu_count(), "cpu_budget_ms": round(budget, 3),
                      "floor_cpu_ms": round(floor, 3), "reachable": floor <= budget,
                      "hac_path_cpu_ms": figures[THROUGH_HAC]["cpu_ms"]["all"]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
