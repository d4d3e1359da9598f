"""Round trips to a result over a slow link: the HAC's bootstraps (first and returning MN,
PSK and EAP-MD5, with and without TCP Fast Open) against strongSwan's IKEv2 IKE_SAs, same
link, same run (docs/performance.md, section "Round trips").

Two network namespaces, the MN's (192.0.2.1) and the servers' (192.0.2.2), joined by a
link that delays every packet by ``--delay`` ms in each direction (25 by default: a round
trip takes 50 ms). The link is a pair of TUN devices, one in each namespace, and a delay
line in this process that hands each packet to the other device ``--delay`` ms after it
came: ``tc netem`` does the same in the kernel, but this machine's kernel has no netem
(CONFIG_NET_SCH_NETEM unset) and the TUN pair needs nothing but TUN. Both namespaces get
``net.ipv4.tcp_fastopen = 3``. The servers' namespace runs FreeRADIUS 3.2 on its own
127.0.0.1 (lab/servers/freeradius.py: the AAA server sits by the HAC, away from the slow
link), two ``mip6-hac`` on 192.0.2.2 (``tcp_fast_open`` on and off) and the responder
charon (PSK, and EAP-MD5 through eap-radius to the same FreeRADIUS with an ECDSA P-256
certificate); the MN's namespace runs the MN (``mn.client``) and the initiator charon
(IKE_SA only, no CHILD_SA), each charon with its own ports, vici socket and private /run.

Figures, each the median of ``--rounds`` rounds, the HACs and charon taking turns within
every round: ``latency_ms`` from the first packet (the call that connects, or vici's
initiate) to the result (the MN's machine holds its SA; charon reports the IKE_SA up), and
``round_trips`` = latency / the link's RTT, measured with ping in the same run. A *first*
bootstrap has no TLS session and no Fast Open cookie (the MN's tcp_metrics flushed); a
*returning* one follows a first one with the same ClientTLS (session ticket) and the
kernel's cookie. strongSwan resumes nothing (no RFC 5723), so its two are the same
exchange.

Usage (root: namespaces, TUN, charon's private /run; off CI; without root or a package
below it says what is missing and exits 0, so that ``make bench`` runs on):
  sudo .venv/bin/python bench/round_trips.py [--rounds 5] [--delay 25]
       [--identity-from-mn-id]
Needs the Debian packages strongswan-charon, libcharon-extra-plugins, strongswan-swanctl,
freeradius, iproute2, iputils-ping and the PyPI package vici
(.venv/bin/pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import secrets
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import emit  # noqa: E402
from bench._strongswan import PLUGINS, Charon, missing_packages  # noqa: E402
from bench._strongswan import conn as _conn  # noqa: E402

MN_ADDRESS, SERVER_ADDRESS = "192.0.2.1", "192.0.2.2"
RESPONDER_ID = "responder.bench.example"
PSK_ID = "mn@psk.bench"
HACS = (("hac-tfo-0rtt", 256, True), ("hac-tfo", 256, False), ("hac", 0, False))
"""(runner, tcp_fast_open, tls.early_data)"""


def missing() -> str | None:
    """One line naming what this machine lacks for the bench, or None."""
    problem = missing_packages(
        ("strongswan-swanctl", (PLUGINS / "libstrongswan-vici.so").exists()),
        ("freeradius", shutil.which("freeradius") or shutil.which("radiusd")),
        ("iproute2", shutil.which("ip")), ("iputils-ping", shutil.which("ping")),
        ("util-linux", shutil.which("unshare")))
    if problem is not None:
        return problem
    try:
        import vici  # noqa: F401
    except ImportError:
        return "missing the vici Python package: .venv/bin/pip install -e '.[bench]'"
    if os.geteuid() != 0:
        return "run as root: the bench makes network namespaces, TUN devices and a private /run"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; figures are medians")
    parser.add_argument("--delay", type=float, default=25.0,
                        help="one-way delay of the link in ms (the RTT is twice it)")
    parser.add_argument("--identity-from-mn-id", action="store_true",
                        help="the HACs build the EAP identity response from mn-id "
                             "(eap.identity_from_mn_id): one round trip less than Figure 5")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--drive", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(Path(args.serve), args)
    if args.drive:
        return drive(Path(args.drive), args)
    problem = missing()
    if problem:  # not an error: `make bench` runs every bench, this one needs root and more
        print(f"round_trips: skipped: {problem}", file=sys.stderr)
        return 0
    return orchestrate(args, sys.argv[1:] if argv is None else argv)


class DelayLine(threading.Thread):
    """Moves every packet between two TUN devices ``delay`` seconds after it came."""

    def __init__(self, a: int, b: int, delay: float):
        super().__init__(daemon=True)
        self.peer = {a: b, b: a}
        self.delay = delay
        self.stopping = False

    def run(self) -> None:
        waiting: list[tuple[float, int, int, bytes]] = []  # (due, order, fd out, packet)
        order = 0
        while not self.stopping:
            timeout = max(0.0, waiting[0][0] - time.monotonic()) if waiting else 0.2
            ready, _, _ = select.select(list(self.peer), [], [], timeout)
            now = time.monotonic()
            for fd in ready:
                while True:
                    try:
                        packet = os.read(fd, 65_536)
                    except BlockingIOError:
                        break
                    order += 1
                    heapq.heappush(waiting, (now + self.delay, order, self.peer[fd], packet))
            while waiting and waiting[0][0] <= time.monotonic():
                _, _, out, packet = heapq.heappop(waiting)
                try:
                    os.write(out, packet)
                except OSError:
                    pass  # a device going down as the bench ends


def orchestrate(args, argv: list[str]) -> int:
    """Namespaces, the link, the servers' side, then the MN's side; everything undone after."""
    from aaa_mip6.twisted.tun import open_tun

    tag = secrets.token_hex(3)
    namespaces = {"mn": f"mip6rtt-mn-{tag}", "server": f"mip6rtt-srv-{tag}"}
    created = []
    line = None
    with tempfile.TemporaryDirectory(prefix="round-trips-bench-") as temp:
        directory = Path(temp)
        try:
            for side, address, peer in (("mn", MN_ADDRESS, SERVER_ADDRESS),
                                        ("server", SERVER_ADDRESS, MN_ADDRESS)):
                namespace = namespaces[side]
                subprocess.run(["ip", "netns", "add", namespace], check=True)
                created.append(namespace)
                inside = ["ip", "netns", "exec", namespace]
                fd, device = open_tun(f"rtt{side[0]}{tag}")
                namespaces[side + "_fd"] = fd
                subprocess.run(["ip", "link", "set", "dev", device, "netns", namespace],
                               check=True)
                for command in (["ip", "link", "set", "lo", "up"],
                                ["ip", "address", "add", address, "peer", peer, "dev", device],
                                ["ip", "link", "set", device, "up"],
                                ["sh", "-c", "echo 3 > /proc/sys/net/ipv4/tcp_fastopen"]):
                    subprocess.run([*inside, *command], check=True)
            line = DelayLine(namespaces["mn_fd"], namespaces["server_fd"], args.delay / 1000)
            line.start()
            me = [sys.executable, os.path.abspath(__file__), *argv]
            server = subprocess.Popen(
                ["ip", "netns", "exec", namespaces["server"], *me, "--serve", str(directory)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                if server.stdout.readline().strip() != "ready":
                    raise RuntimeError("the servers did not start (see the lines above)")
                return subprocess.run(["ip", "netns", "exec", namespaces["mn"], *me,
                                       "--drive", str(directory)]).returncode
            finally:
                server.stdin.close()
                server.wait(timeout=60)
        finally:
            if line is not None:
                line.stopping = True
                line.join()
            for namespace in created:
                subprocess.run(["ip", "netns", "delete", namespace], check=False)
            for side in ("mn", "server"):
                if side + "_fd" in namespaces:
                    os.close(namespaces[side + "_fd"])


def serve(directory: Path, args) -> int:
    """The servers' namespace: FreeRADIUS, the HACs, the responder charon; their details in
    ``directory``/servers.json, "ready" on stdout, then up until stdin closes."""
    from aaa_mip6 import pki
    from lab.servers.freeradius import running_freeradius
    from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup

    with running_freeradius(directory / "radius") as radius:
        secret_file = directory / "radius.secret"
        pki.write_private(secret_file, radius.secret + b"\n")
        radius_args = ["--radius-server", f"{radius.host}:{radius.port}",
                       "--radius-secret-file", str(secret_file)]
        hacs, responder = [], None
        try:
            details = {"hacs": {}, "radius": {"user": radius.user, "password": radius.password}}
            for runner, fast_open, early_data in HACS:
                setup = make_setup(directory / runner, addresses=(SERVER_ADDRESS,))
                config = {**TEST_CONFIG, "tcp_fast_open": fast_open,
                          "tls": {"early_data": early_data},
                          "eap": {"identity_from_mn_id": args.identity_from_mn_id}}
                hac = HacProcess(setup, host=SERVER_ADDRESS, config=config,
                                 extra_args=radius_args).start()
                hacs.append(hac)
                (identity, psk), = list(setup.psks.items())[:1]
                details["hacs"][runner] = {"port": hac.port, "ca": str(setup.ca.cert_path),
                                           "identity": identity, "psk": psk.hex()}
            responder = Charon(directory / "responder", SERVER_ADDRESS, radius).start()
            details["ikev2"] = configure_responder(responder, directory, radius)
            pki.write_private(directory / "servers.json", json.dumps(details).encode())
            print("ready", flush=True)
            sys.stdin.read()
        finally:
            if responder is not None:
                responder.stop()
            for hac in hacs:
                hac.stop()
    return 0


def drive(directory: Path, args) -> int:
    """The MN's namespace: the link's RTT, then the rounds; one JSON line per figure."""
    details = json.loads((directory / "servers.json").read_text())
    rtt = measured_rtt()
    emit("link", rtt_ms=round(rtt, 2), one_way_delay_ms=args.delay,
         link="TUN pair and a delay line (no netem in this kernel)")
    initiator = Charon(directory / "initiator", MN_ADDRESS).start()
    try:
        strongswan = Initiator(initiator, details["ikev2"], details["radius"])
        samples: dict[tuple, list[float]] = {}
        for _ in range(args.rounds):
            for runner, *_settings in HACS:
                for method in ("psk", "eap-md5"):
                    pair = hac_pair(details["hacs"][runner], method, details["radius"])
                    for when, seconds in zip(("first", "returning"), pair):
                        samples.setdefault((runner, method, when), []).append(seconds)
            for method in ("psk", "eap-md5"):
                for when in ("first", "returning"):
                    samples.setdefault(("charon", method, when), []).append(
                        strongswan.initiate(method))
    finally:
        initiator.stop()
    medians = {key: statistics.median(latencies) * 1000 for key, latencies in samples.items()}
    for (runner, method, when), latency in medians.items():
        emit("round_trips", runner=runner, method=method, bootstrap=when,
             identity_from_mn_id=None if runner == "charon" else args.identity_from_mn_id,
             latency_ms=round(latency, 1), round_trips=round(latency / rtt, 2),
             rounds=len(samples[runner, method, when]), rtt_ms=round(rtt, 2))
    for (runner, method, when), latency in medians.items():
        if runner != "charon":  # the baseline: strongSwan's IKE_SA, same method, same run
            emit("round_trips_vs_ikev2", runner=runner, method=method, bootstrap=when,
                 identity_from_mn_id=args.identity_from_mn_id,
                 ratio=round(latency / medians["charon", method, when], 2))
    return 0


def measured_rtt() -> float:
    """The link's round trip time in ms: ping's average over ten echoes."""
    done = subprocess.run(["ping", "-n", "-q", "-c", "10", "-i", "0.2", SERVER_ADDRESS],
                          capture_output=True, text=True, check=True)
    return float(re.search(r"= [\d.]+/([\d.]+)/", done.stdout).group(1))


def hac_pair(hac: dict, method: str, radius: dict) -> tuple[float, float]:
    """Seconds of a first bootstrap (no session, no cookie) and of a returning one."""
    from aaa_mip6.twisted.tls import ClientTLS

    subprocess.run(["ip", "tcp_metrics", "flush", "all"], check=True)  # Fast Open cookies
    tls = ClientTLS(SERVER_ADDRESS, Path(hac["ca"]))
    return timed_bootstrap(hac, tls, method, radius), timed_bootstrap(hac, tls, method, radius)


def timed_bootstrap(hac: dict, tls, method: str, radius: dict) -> float:
    """Seconds from the call that connects to the machine holding its result."""
    from lab.reactors import run_on_fresh_reactor
    from mn import client
    from mn.bootstrap import EapBootstrap, PskBootstrap
    from mn.eap import EapCredentials
    from mn.eap.peer import EapPeer

    if method == "psk":
        machine = timed(PskBootstrap)(hac["identity"], bytes.fromhex(hac["psk"]))
    else:
        credentials = EapCredentials(radius["user"], radius["password"])
        machine = timed(EapBootstrap)(radius["user"], EapPeer("md5", credentials))

    async def scenario(reactor):
        machine.begun = time.perf_counter()
        await client.bootstrap(reactor, tls, hac["port"], machine, timeout=30)

    run_on_fresh_reactor(scenario, limit=40)
    return machine.done - machine.begun


def timed(machine_class):
    """``machine_class`` noting when its result is there (the MN has its SA)."""

    class Timed(machine_class):
        begun = done = 0.0

        def receive(self, data: bytes) -> bytes:
            request = super().receive(data)
            if self.result is not None and not self.done:
                self.done = time.perf_counter()
            return request

    return Timed


def configure_responder(responder: Charon, directory: Path, radius) -> dict:
    """The responder's key, certificate and connections ``psk`` and ``eap-md5``; what the
    initiator needs to reach them."""
    from cryptography.hazmat.primitives import serialization

    from aaa_mip6 import pki

    ca = pki.make_ca(directory / "ikev2", common_name="bench IKEv2 CA")
    cert = pki.make_cert(directory / "ikev2", ca, "responder", dns_names=(RESPONDER_ID,))
    psk = secrets.token_bytes(16)
    vici = responder.session()
    try:
        session = vici.session
        session.load_key({"type": "any", "data": cert.key_path.read_bytes()})
        session.load_shared({"type": "IKE", "data": psk})
        signed = {"auth": "pubkey", "id": RESPONDER_ID,
                  "certs": [cert.cert.public_bytes(serialization.Encoding.PEM)]}
        ends = (SERVER_ADDRESS, MN_ADDRESS)
        session.load_conn({"psk": _conn(*ends, {"auth": "psk", "id": RESPONDER_ID},
                                        {"auth": "psk", "id": PSK_ID})})
        session.load_conn({"eap-md5": _conn(*ends, signed,
                                            {"auth": "eap-radius", "id": radius.user})})
    finally:
        vici.close()
    return {"port": responder.port, "ca": str(ca.cert_path), "psk": psk.hex()}


class Initiator:
    """The initiator charon's connections ``psk`` and ``eap-md5`` to the responder."""

    def __init__(self, initiator: Charon, responder: dict, radius: dict):
        self._vici = initiator.session()
        self.session = self._vici.session
        self.session.load_cert({"type": "X509", "flag": "CA",
                                "data": Path(responder["ca"]).read_bytes()})
        self.session.load_shared({"type": "IKE", "data": bytes.fromhex(responder["psk"])})
        self.session.load_shared({"type": "EAP", "data": radius["password"],
                                  "owners": [radius["user"]]})
        ends = (MN_ADDRESS, SERVER_ADDRESS)
        self.session.load_conn({"psk": _conn(*ends, {"auth": "psk", "id": PSK_ID},
                                             {"auth": "psk", "id": RESPONDER_ID},
                                             responder["port"])})
        self.session.load_conn({"eap-md5": _conn(*ends,
                                                 {"auth": "eap-md5", "id": radius["user"]},
                                                 {"auth": "pubkey", "id": RESPONDER_ID},
                                                 responder["port"])})

    def initiate(self, name: str) -> float:
        """Seconds from vici's initiate to the IKE_SA up; then it is closed again."""
        begun = time.perf_counter()
        for _ in self.session.initiate({"ike": name, "timeout": "10000",
                                        "init-limits": "no"}):
            pass
        elapsed = time.perf_counter() - begun
        for _ in self.session.terminate({"ike": name, "timeout": "10000"}):
            pass
        return elapsed


if __name__ == "__main__":
    sys.exit(main())
