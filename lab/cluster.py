"""``mip6-lab cluster`` (root): a HAC/HA cluster on replicated PostgreSQL in network
namespaces, with each part killed in turn under load, and a JSON verdict.

Every "host" is a network namespace (names ``m6cl<random>-<host>``, unique per run)
on one bridge, 198.51.100.0/24 and 2001:db8:ff::/64 (documentation addresses)::

    etcd .10   db1 .11  db2 .12    hac1 .21  hac2 .22    ha1 .31  ha2 .32    mn .41   radius .51
    etcd       Patroni + PostgreSQL  mip6-hac (both on     mip6-ha (SAs from   the MNs  FreeRADIUS
               (primary, sync       the multi-host store   the store)                   (EAP)
               standby)             URL, PSK and EAP)

Two MN populations run on the mn host, both trying hac1, then hac2 when hac1 is out of
reach. The *cycling* MNs (``lab.cluster_load``) bootstrap and register with the HA the
HAC names (round robin over ha1, ha2) in a loop: they load the HACs and the store, and
each of their SAs is checked against the store at the end. The *kept* MNs are
``mip6-load --register --keepalive 1`` with EAP-MD5, which the HACs relay to
FreeRADIUS: each bootstraps once and keeps its binding, with mip6-mn's own recovery
(several HACs, the 503's retry-after, re-registration when a restarted HA answers a
keep-alive with a Binding Error). Then, one at a time, with the load running:

1. ``postgres-primary``: kill -9 of the Patroni leader's host (Patroni and PostgreSQL);
   Patroni promotes the synchronous standby; HACs and HAs reconnect by themselves.
2. ``hac``: kill -9 of hac1; MNs go on with hac2; hac1 is started again after
   RESTART_DELAY seconds (as systemd's ``Restart=on-failure`` would).
3. ``ha``: kill -9 of ha1; started again after RESTART_DELAY seconds; it reads its SAs
   from the store again.

A fault's ``recovery_seconds`` is the time from the kill until every cycling MN has
registered again with an SA from a bootstrap that began after the kill and every kept
MN that was bound to the killed HA is registered again. The last line printed is
the verdict, one JSON object: ``acknowledged_sas_lost`` (SAs a HAC acknowledged to an
MN that are not in the store with the key the MN got), ``duplicate_spis`` (SPIs
acknowledged twice), ``mns_not_registered`` (cycling MNs without a registration after
the last fault, and kept MNs not registered at the end), ``recovery_seconds`` per
fault, the bootstrap counts (``bootstraps_503`` during the failover,
``bootstraps_hung``: none answered within the MN's timeout) and ``pass``.
``--short`` (what CI runs) uses 4 + 4 MNs and short phases.

Not here (yet): a freeDiameterd routing agent between HACs and HAs (the HAs read SAs
from the store).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aaa_mip6 import pki
from aaa_mip6.iana import MIPV6TLS_PORT, RADIUS_ACCOUNTING_PORT, RADIUS_PORT

from .common import HOA_PREFIX, MN_DOMAIN, make_files
from .netns import LabError, _run, _script, in_namespace
from .processes import stop_process
from .servers import patroni
from .servers.hac import toml_text

LAN4, LAN6 = "198.51.100.", "2001:db8:ff::"
HOSTS = {"etcd": 10, "db1": 11, "db2": 12, "hac1": 21, "hac2": 22, "ha1": 31, "ha2": 32,
         "mn": 41, "radius": 51}
HAC_PORT, HA_PORT, PG_PORT, PATRONI_PORT = 4433, MIPV6TLS_PORT, 5432, 8008
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380
RESTART_DELAY = 3.0  # seconds before a killed HAC or HA is started again
RECOVERY_TIMEOUT = 45.0  # seconds a fault may take to recover before the lab gives up
START_TIMEOUT = 20.0  # seconds for a HAC to listen


@dataclass(frozen=True)
class Plan:
    """How big and how long a run is."""

    mns: int  # cycling MNs (lab.cluster_load)
    kept: int  # MNs of mip6-load that keep their binding
    warm_up: float  # seconds of load before the first fault
    settle: float  # seconds of load after a recovery, before the next fault


SHORT = Plan(mns=4, kept=4, warm_up=3.0, settle=2.0)
FULL = Plan(mns=16, kept=16, warm_up=10.0, settle=10.0)


def v4(host: str) -> str:
    return f"{LAN4}{HOSTS[host]}"


def v6(host: str) -> str:
    return f"{LAN6}{HOSTS[host]:x}"


class ClusterLab:
    """The namespaces, the servers and the load; :meth:`close` removes them all."""

    def __init__(self, directory: Path, plan: Plan, out):
        self.directory = directory
        self.plan = plan
        self.out = out
        self.tag = f"m6cl{secrets.token_hex(3)}"
        self.namespaces: list[str] = []
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}
        self.cluster: patroni.PatroniCluster | None = None
        self.load: subprocess.Popen | None = None
        self.kept: subprocess.Popen | None = None
        self.events: list[dict] = []  # the cycling MNs'
        self.kept_events: list[dict] = []  # mip6-load's, with "w": when (Unix time)
        self.kept_report: dict = {}
        self._lock = threading.Lock()
        self.mn_ids = [f"mn{number}@{MN_DOMAIN}" for number in range(1, plan.mns + 1)]
        self.kept_ids = [f"kept{number}@{MN_DOMAIN}" for number in range(1, plan.kept + 1)]
        self.files = None
        self.radius_secret = secrets.token_hex(16)  # between the HACs and FreeRADIUS
        self.radius_password = "pw-" + secrets.token_hex(8)  # every kept MN's EAP-MD5 password

    def say(self, text: str) -> None:
        print(f"mip6-lab: {text}", file=self.out, flush=True)

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    # ------------------------------------------------------------------ wiring

    def wire(self) -> None:
        switch = self.ns("sw")
        _run("ip", "netns", "add", switch)
        self.namespaces.append(switch)
        _run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", switch, "link", "set", "br0", "up")
        for host in HOSTS:
            namespace = self.ns(host)
            _run("ip", "netns", "add", namespace)
            self.namespaces.append(namespace)
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
            _run("ip", "-n", switch, "link", "add", f"p-{host}", "type", "veth", "peer",
                 "name", "eth0", "netns", namespace)
            _run("ip", "-n", switch, "link", "set", f"p-{host}", "master", "br0", "up")
            _run("ip", "-n", namespace, "address", "add", f"{v4(host)}/24", "dev", "eth0")
            _run("ip", "-n", namespace, "address", "add", f"{v6(host)}/64", "dev", "eth0",
                 "nodad")
            _run("ip", "-n", namespace, "link", "set", "eth0", "up")

    # ------------------------------------------------------------------ servers

    def start_database(self) -> None:
        directory = self.directory / "db"
        directory.mkdir()
        directory.chmod(0o755)
        self.directory.chmod(0o755)  # the postgres user reads its files below
        etcd = patroni.Etcd(directory, v4("etcd"), ETCD_CLIENT_PORT, ETCD_PEER_PORT,
                            prefix=("ip", "netns", "exec", self.ns("etcd")))
        nodes = [patroni.PatroniNode(
            host, directory / host, v4(host), PG_PORT, PATRONI_PORT,
            prefix=("ip", "netns", "exec", self.ns(host)),
            call=lambda function, namespace=self.ns(host): in_namespace(namespace, function))
            for host in ("db1", "db2")]
        started = time.monotonic()
        self.cluster = patroni.start_cluster(directory, etcd=etcd, nodes=nodes,
                                             clients=(f"{LAN4}0/24",))
        self.say(f"etcd and PostgreSQL under Patroni up in {time.monotonic() - started:.1f} s "
                 f"(leader {self.cluster.leader().name}, synchronous standby)")

    def start_radius(self) -> None:
        """FreeRADIUS on the radius host: EAP for every kept MN (EAP-MD5, one password),
        the HACs (the whole LAN) its clients."""
        from .servers import freeradius

        directory = self.directory / "raddb"
        directory.mkdir(mode=0o700)
        freeradius.write_config(directory, v4("radius"), RADIUS_PORT, self.radius_secret,
                                self.radius_password, RADIUS_ACCOUNTING_PORT)
        pki.write_private(directory / "clients.conf", (
            f"client lan {{\n    ipaddr = {LAN4}0/24\n    secret = {self.radius_secret}\n"
            "    require_message_authenticator = yes\n    nas_type = other\n}\n").encode())
        pki.write_private(directory / "mods-config" / "files" / "authorize",
                          f'DEFAULT Cleartext-Password := "{self.radius_password}"\n'.encode())
        log_path = directory / "radius.log"
        self.commands["radius"] = [freeradius.binary(), "-f", "-d", str(directory), "-D",
                                   str(freeradius.DICTIONARY_DIR), "-n", "radiusd",
                                   "-l", str(log_path)]
        self.spawn("radius")
        if not freeradius.wait_ready(self.processes["radius"], log_path):
            raise LabError(f"FreeRADIUS did not start; see {log_path}")

    def start_servers(self) -> None:
        self.files = make_files(self.directory, self.mn_ids, (v4("hac1"), v4("hac2")))
        secret_file = self.directory / "radius.secret"
        pki.write_private(secret_file, self.radius_secret.encode() + b"\n")
        url = self.cluster.url()
        agents = [{"ip6": v6(host), "ip4": v4(host), "port": HA_PORT} for host in ("ha1", "ha2")]
        for host in ("ha1", "ha2"):
            config = self.directory / f"{host}.toml"
            # every MN comes from the mn host: lift the per-source limit on new SAs
            config.write_text(toml_text({
                "listen": [f"[{v6(host)}]:{HA_PORT}", f"{v4(host)}:{HA_PORT}"],
                "store": url, "state": str(self.directory / f"{host}.state"),
                "lookup_rate": 1000.0, "lookup_burst": 1000}))
            self.commands[host] = [_script("mip6-ha"), "--config", str(config)]
            self.spawn(host)
        for host in ("hac1", "hac2"):
            settings = {
                "listen": f"{v4(host)}:{HAC_PORT}", "instance": host,
                "tls.cert": str(self.files.server.cert_path),
                "tls.key": str(self.files.server.key_path),
                "credentials.psk_file": str(self.files.psk_file),
                "store.url": url, "store.timeout": 3.0, "store.retry_after": 2,
                "radius.servers": [f"{v4('radius')}:{RADIUS_PORT}"],
                "radius.secret_file": str(secret_file),
                "home_agents.addresses": agents, "bootstrap.hoa_prefix": HOA_PREFIX,
                "limits.rate": 1_000_000.0, "limits.burst": 1_000_000,
                "log.level": "info",
            }
            config = self.directory / f"{host}.toml"
            config.write_text(toml_text(settings))
            self.commands[host] = [_script("mip6-hac"), "--config", str(config)]
            self.spawn(host)
        for host in ("hac1", "hac2"):
            self.wait_listening(host)
        self.say(f"mip6-hac on {v4('hac1')}:{HAC_PORT} and {v4('hac2')}:{HAC_PORT}, mip6-ha on "
                 f"[{v6('ha1')}]:{HA_PORT} and [{v6('ha2')}]:{HA_PORT}; store {url}")

    def spawn(self, host: str) -> None:
        with open(self.directory / f"{host}.log", "ab") as log:
            self.processes[host] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), *self.commands[host]],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_listening(self, host: str) -> None:
        import socket

        def probe() -> bool:
            try:
                socket.create_connection((v4(host), HAC_PORT), timeout=0.5).close()
                return True
            except OSError:
                return False
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if in_namespace(self.ns(host), probe):
                return
            if self.processes[host].poll() is not None:
                break
            time.sleep(0.1)
        raise LabError(f"mip6-{host[:-1]} on {host} did not start; see {host}.log in "
                       f"{self.directory}")

    # ------------------------------------------------------------------ load

    def start_load(self) -> None:
        psk_file, password_file = self.directory / "mns.psk", self.directory / "kept.password"
        pki.write_private(psk_file, "".join(f"{mn} {self.files.psks[mn].hex()}\n"
                                            for mn in self.mn_ids).encode())
        pki.write_private(password_file, self.radius_password.encode() + b"\n")
        hacs = f"{v4('hac1')}:{HAC_PORT},{v4('hac2')}:{HAC_PORT}"
        events = self.directory / "kept-events.jsonl"
        self.kept = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("mn"), _script("mip6-load"), "--hac", hacs,
             "--ca", str(self.files.ca.cert_path), "--eap", "md5",
             "--password-file", str(password_file),
             "--mns", str(len(self.kept_ids)), "--id-pattern", f"kept{{n}}@{MN_DOMAIN}",
             "--first", "1", "--rate", "20", "--duration", "3600", "--register",
             "--keepalive", "1", "--bu-attempts", "4", "--quiet", "--events", str(events)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(self.directory / "mip6-load.log", "wb"), text=True)
        threading.Thread(target=self._follow_kept, args=(events,), daemon=True).start()
        self.load = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("mn"), sys.executable, "-m", "lab.cluster_load",
             "--hac", f"{v4('hac1')}:{HAC_PORT}", "--hac", f"{v4('hac2')}:{HAC_PORT}",
             "--ca", str(self.files.ca.cert_path), "--psk-file", str(psk_file),
             "--duration", "3600", "--register"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(self.directory / "load.log", "wb"), text=True)
        threading.Thread(target=self._read_load, daemon=True).start()
        self.say(f"{len(self.mn_ids)} MNs bootstrapping and registering in a loop, "
                 f"{len(self.kept_ids)} mip6-load MNs keeping their bindings, on "
                 f"{self.ns('mn')}")

    def _read_load(self) -> None:
        for line in self.load.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def _follow_kept(self, path: Path) -> None:
        """mip6-load's events as it writes them; each gets ``w``, its Unix time, from the
        run's start, taken when the first event shows (within a poll: 0.1 s)."""
        offset = None
        position = 0
        while self.kept is not None and self.kept.poll() is None:
            time.sleep(0.1)
            try:
                with open(path, "rb") as events:
                    events.seek(position)
                    data = events.read()
            except OSError:
                continue
            complete = data[:data.rfind(b"\n") + 1]
            position += len(complete)
            for line in complete.decode().splitlines():
                event = json.loads(line)
                if offset is None:
                    offset = time.time() - event["t"]
                event["w"] = offset + event["t"]
                with self._lock:
                    self.kept_events.append(event)

    def kept_at(self, host: str, before: float) -> set[str]:
        """The kept MNs whose binding was last acknowledged by ``host`` before ``before``."""
        bound: dict[str, str] = {}
        with self._lock:
            for event in self.kept_events:
                if (event["w"] < before and event["status"] == "ok"
                        and event["step"] in ("register", "reregister") and event["ha"]):
                    bound[event["mn"]] = event["ha"]
        return {mn for mn, ha in bound.items() if v6(host) in ha or v4(host) in ha}

    def kept_registered_after(self, mns: set[str], since: float) -> float | None:
        """When every MN of ``mns`` was registered again after ``since`` (None: not yet)."""
        first: dict[str, float] = {}
        with self._lock:
            for event in self.kept_events:
                if (event["mn"] in mns and event["w"] > since and event["status"] == "ok"
                        and event["step"] in ("register", "reregister")):
                    first.setdefault(event["mn"], event["w"])
        if len(first) < len(mns):
            return None
        return max(first.values(), default=since)

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.events)

    def stop_load(self) -> None:
        if self.load is not None and self.load.poll() is None:
            self.load.stdin.close()  # the load stops at its end of input
            try:
                self.load.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_process(self.load)
        if self.kept is not None and self.kept.poll() is None:
            self.kept.terminate()  # mip6-load ends the run with its report
            try:
                out, _ = self.kept.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                stop_process(self.kept)
                out = ""
            lines = out.strip().splitlines()
            try:
                self.kept_report = json.loads(lines[-1]) if lines else {}
            except ValueError:
                self.kept_report = {}

    def recovered_at(self, since: float, kept: frozenset[str] = frozenset()) -> float | None:
        """When every cycling MN had registered with an SA from a bootstrap begun after
        ``since`` and every MN of ``kept`` was registered again."""
        first: dict[str, float] = {}
        for event in self.snapshot():
            if event["event"] == "registered" and event["started"] > since:
                first.setdefault(event["mn"], event["t"])
        if len(first) < len(self.mn_ids):
            return None
        kept_done = self.kept_registered_after(set(kept), since)
        return None if kept_done is None else max(*first.values(), kept_done)

    def wait_recovered(self, since: float, kept: frozenset[str] = frozenset()) -> float | None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            done = self.recovered_at(since, kept)
            if done is not None:
                return round(done - since, 2)
            time.sleep(0.2)
        return None

    def wait_load_running(self) -> None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while (self.recovered_at(0) is None
               or self.kept_registered_after(set(self.kept_ids), 0) is None):
            if time.monotonic() > deadline:
                raise LabError(f"the MNs did not all register within {RECOVERY_TIMEOUT:g} s; "
                               f"see the logs in {self.directory}")
            time.sleep(0.2)

    # ------------------------------------------------------------------ faults

    def kill_database_primary(self) -> str:
        leader = self.cluster.leader()
        if leader is None:
            raise LabError("no PostgreSQL leader to kill")
        leader.kill()
        self.kill_namespace(leader.name)  # whatever else ran on that host
        return leader.name

    def kill_namespace(self, host: str) -> None:
        listed = subprocess.run(["ip", "netns", "pids", self.ns(host)], capture_output=True,
                                text=True, check=False).stdout.split()
        for pid in listed:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    def kill_and_restart(self, host: str) -> None:
        process = self.processes[host]
        process.kill()
        process.wait()
        timer = threading.Timer(RESTART_DELAY, self.spawn, args=(host,))
        timer.daemon = True
        timer.start()

    # ------------------------------------------------------------------ verdict

    def stored(self, acks: list[dict]) -> int:
        """How many acknowledged SAs are missing from the store (or hold another key)."""
        from aaa_mip6.store import open_store

        from .cluster_load import key_digest

        def check() -> int:
            lost = 0
            with open_store(self.cluster.url()) as store:
                for ack in acks:
                    record = store.get(ack["spi"])
                    if record is None or (record.sa.mn_id, key_digest(
                            record.sa.mn_to_ha_ikey)) != (ack["mn"], ack["key"]):
                        lost += 1
            return lost
        return in_namespace(self.ns("hac2"), check)

    def close(self) -> None:
        self.stop_load()
        for process in self.processes.values():
            stop_process(process)
        if self.cluster is not None:
            self.cluster.stop()
        for namespace in self.namespaces:
            if namespace != self.ns("sw"):
                self.kill_namespace(namespace.removeprefix(f"{self.tag}-"))
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _check_ready() -> None:
    if os.geteuid() != 0:
        raise LabError("cluster needs root (network namespaces, PostgreSQL as postgres)")
    if shutil.which("ip") is None:
        raise LabError("cluster needs the ip command (iproute2)")
    problem = patroni.missing()
    if problem:
        raise LabError(f"cluster needs Patroni and etcd: {problem}")


def run_cluster(directory: Path, plan: Plan, out) -> dict:
    """The whole run; the verdict (also printed as the last line by the caller)."""
    _check_ready()
    lab = ClusterLab(directory, plan, out)
    recovery: dict[str, float | None] = {}
    try:
        lab.wire()
        lab.say(f"namespaces {lab.tag}-{{{','.join(HOSTS)},sw}}; files in {directory}")
        lab.start_database()
        lab.start_radius()
        lab.start_servers()
        lab.start_load()
        lab.wait_load_running()
        time.sleep(plan.warm_up)
        faults = (
            ("postgres-primary", lab.kill_database_primary, None),
            ("hac", lambda: (lab.kill_and_restart("hac1"), "hac1")[1], None),
            ("ha", lambda: (lab.kill_and_restart("ha1"), "ha1")[1], "ha1"),
        )
        for name, kill, home_agent in faults:
            killed_at = time.time()
            bound = lab.kept_at(home_agent, killed_at) if home_agent else set()
            victim = kill()
            seconds = lab.wait_recovered(killed_at, frozenset(bound))
            recovery[name] = seconds
            lab.say(f"fault {name}: kill -9 {victim}; "
                    + (f"every MN registered again after {seconds:.1f} s" if seconds is not None
                       else f"not recovered within {RECOVERY_TIMEOUT:g} s"))
            if seconds is None:
                break
            time.sleep(plan.settle)
        last_fault = killed_at
        time.sleep(1.0)
        lab.stop_load()
        events = lab.snapshot()
        acks = [event for event in events if event["event"] == "ack"]
        lost = lab.stored(acks)
    finally:
        lab.close()
    failures = [event for event in events if event["event"] == "fail"]
    registered_after = {event["mn"] for event in events
                        if event["event"] == "registered" and event["started"] > last_fault}
    kept = lab.kept_report
    verdict = {
        "acknowledged_sas_lost": lost,
        "duplicate_spis": sum(count > 1 for count in Counter(a["spi"] for a in acks).values()),
        "mns_not_registered": (len(set(lab.mn_ids) - registered_after)
                               + kept.get("mns_not_registered", plan.kept)),
        "recovery_seconds": recovery,
        "mns": plan.mns,
        "kept_mns": plan.kept,
        "mip6_load": {key: kept.get(key) for key in ("ok", "failed", "registered_at_end")},
        "sas_acknowledged": len(acks),
        "registrations": sum(event["event"] == "registered" for event in events),
        "bootstraps_failed": dict(Counter(str(event["status"] or event["reason"])
                                          for event in failures)),
        "bootstraps_503": sum(event["status"] == 503 for event in failures),
        "bootstraps_hung": sum(event["reason"] == "timeout" for event in failures),
    }
    verdict["pass"] = (lost == 0 and verdict["duplicate_spis"] == 0
                       and verdict["mns_not_registered"] == 0
                       and verdict["bootstraps_hung"] == 0
                       and len(recovery) == 3 and None not in recovery.values())
    return verdict
