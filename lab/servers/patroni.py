"""A replicated PostgreSQL for the failover test and ``mip6-lab cluster``: etcd, and two
PostgreSQL servers managed by Patroni (a primary and a synchronous standby).

:func:`start_cluster` writes the configurations into a directory, starts one etcd and
one Patroni per node, and returns once a leader and a synchronous standby stream (the
standby has confirmed a commit). Everything PostgreSQL runs as the ``postgres`` user
when we are root (initdb refuses root), as ``tests/integration/postgres.py`` does.
The settings failover needs (docs/operations.md):

- ``synchronous_mode: true``: Patroni names the standby in ``synchronous_standby_names``
  and promotes only a synchronous standby, so a promoted server holds every
  acknowledged commit. Not ``synchronous_mode_strict``: once the old primary is gone,
  the survivor accepts writes alone rather than blocking every bootstrap.
- ``synchronous_commit: "on"``: a commit returns after the standby flushed its WAL.
- ``use_slots: true``: a physical replication slot per member keeps the WAL a standby
  still needs.

``ttl``/``loop_wait``/``retry_timeout`` are small (8/1/3 s) so a failover takes seconds:
a test's and a lab's numbers, not production's (Patroni's defaults are 30/10/10).
Each command can be run through a ``prefix`` (``ip netns exec NS``) and each HTTP call
through ``call`` (a function that runs its argument in the node's network namespace),
so the lab puts every server on its own namespace "host" with the same code.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..processes import POLL_INTERVAL, stop_process

POSTGRES_USER = "postgres"
DATABASE = "mip6"
READY_TIMEOUT = 60.0  # seconds for the leader and a synchronous standby
TTL, LOOP_WAIT, RETRY_TIMEOUT = 8, 1, 3  # Patroni's leader lease and loop, in seconds


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda path: int(path.parts[-3]))
    return versions[-1].parent if versions else None


def missing() -> str | None:
    """What this machine lacks to run the cluster (a sentence), or None."""
    for program in ("patroni", "etcd"):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: patroni, etcd-server)"
    if postgres_bin_dir() is None:
        return "the PostgreSQL server (/usr/lib/postgresql/*/bin) is not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            return "running as root but there is no 'postgres' user to run PostgreSQL"
    return None


def _direct(function: Callable):
    return function()


@dataclass
class Etcd:
    """One etcd member: clients on ``host:client_port``."""

    directory: Path
    host: str
    client_port: int
    peer_port: int
    prefix: Sequence[str] = ()
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    def start(self) -> None:
        peer = f"http://{self.host}:{self.peer_port}"
        client = f"http://{self.endpoint}"
        with open(self.directory / "etcd.log", "wb") as log:
            self.process = subprocess.Popen(
                [*self.prefix, "etcd", "--name", "etcd0",
                 "--data-dir", str(self.directory / "etcd"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"etcd0={peer}", "--initial-cluster-state", "new"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@dataclass
class PatroniNode:
    """One PostgreSQL server and the Patroni that manages it."""

    name: str
    directory: Path
    host: str
    pg_port: int
    rest_port: int
    prefix: Sequence[str] = ()
    call: Callable = _direct
    process: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def config_path(self) -> Path:
        return self.directory / "patroni.yml"

    @property
    def log_path(self) -> Path:
        return self.directory / "patroni.log"

    def config(self, scope: str, etcd: Etcd, bin_dir: Path, clients: Sequence[str]) -> dict:
        """Patroni's configuration for this node (written as JSON, which YAML reads)."""
        trusted = [f"host all all {client} trust" for client in clients]
        return {
            "scope": scope,
            "name": self.name,
            "restapi": {"listen": f"{self.host}:{self.rest_port}",
                        "connect_address": f"{self.host}:{self.rest_port}"},
            "etcd3": {"hosts": [etcd.endpoint]},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_slots": True,
                        "parameters": {
                            "synchronous_commit": "on",
                            "wal_level": "replica", "hot_standby": "on",
                            "max_wal_senders": 10, "max_replication_slots": 10,
                            "wal_log_hints": "on", "max_connections": 200,
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}, "no-instructions"],
                "pg_hba": ["local all all trust",
                           *[f"host replication all {client} trust" for client in clients],
                           *trusted],
            },
            "postgresql": {
                "listen": f"{self.host}:{self.pg_port}",
                "connect_address": f"{self.host}:{self.pg_port}",
                "data_dir": str(self.data_dir),
                "bin_dir": str(bin_dir),
                "pgpass": str(self.directory / "pgpass"),
                "authentication": {"superuser": {"username": POSTGRES_USER},
                                   "replication": {"username": "replicator"}},
                "parameters": {"unix_socket_directories": str(self.directory)},
            },
            "watchdog": {"mode": "off"},
        }

    def start(self, as_user: Sequence[str]) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.prefix, *as_user, "patroni", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def status(self) -> dict | None:
        """This node's view of the cluster (Patroni's ``GET /cluster``), None if it is down."""
        url = f"http://{self.host}:{self.rest_port}/cluster"

        def get():
            with urllib.request.urlopen(url, timeout=2) as answer:
                return json.loads(answer.read())
        try:
            return self.call(get)
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """kill -9 of Patroni and its PostgreSQL, as when the host dies."""
        postmaster = _postmaster_pid(self.data_dir)
        if self.process is not None:
            _kill_group(self.process)
            self.process = None
        if postmaster is not None:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Stop Patroni (it stops its PostgreSQL), or kill both after a while."""
        if self.process is not None:
            stop_process(self.process, timeout=15)
            self.process = None
        self.kill()  # whatever is left of the server


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@dataclass
class PatroniCluster:
    """etcd and the Patroni nodes; :meth:`url` is the HAC's multi-host store URL."""

    directory: Path
    scope: str
    etcd: Etcd
    nodes: list[PatroniNode]
    as_user: list[str] = field(default_factory=list)

    def url(self, dbname: str = DATABASE) -> str:
        hosts = ",".join(f"{node.host}:{node.pg_port}" for node in self.nodes)
        return f"postgresql://{POSTGRES_USER}@{hosts}/{dbname}?target_session_attrs=read-write"

    def node_url(self, node: PatroniNode, dbname: str = DATABASE) -> str:
        return f"postgresql://{POSTGRES_USER}@{node.host}:{node.pg_port}/{dbname}"

    def members(self) -> dict[str, dict]:
        """Name -> member (role, state, lag) as the first node that answers sees them."""
        for node in self.nodes:
            if node.process is None:
                continue
            status = node.status()
            if status is not None:
                return {member["name"]: member for member in status.get("members", [])}
        return {}

    def leader(self) -> PatroniNode | None:
        names = [name for name, member in self.members().items()
                 if member.get("role") == "leader" and member.get("state") == "running"]
        return next((node for node in self.nodes if node.name in names), None)

    def wait(self, ready: Callable[[dict[str, dict]], bool], timeout: float, what: str) -> float:
        """Seconds until ``ready(members)`` holds; RuntimeError naming ``what`` after
        ``timeout``."""
        started = time.monotonic()
        members: dict = {}
        while time.monotonic() - started < timeout:
            members = self.members()
            if ready(members):
                return time.monotonic() - started
            time.sleep(POLL_INTERVAL * 4)
        raise RuntimeError(f"Patroni: {what} not within {timeout:g} s; members {members}; "
                           f"logs in {self.directory}")

    def wait_synchronous(self, timeout: float = READY_TIMEOUT) -> float:
        """Until a leader runs and a synchronous standby streams."""
        return self.wait(lambda members: _has_role(members, "leader", "running")
                         and _has_role(members, "sync_standby", "streaming", "running"),
                         timeout, "a leader and a synchronous standby")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.etcd.stop()


def _has_role(members: dict[str, dict], role: str, *states: str) -> bool:
    return any(member.get("role") == role and member.get("state") in states
               for member in members.values())


def start_cluster(directory: Path, *, etcd: Etcd, nodes: list[PatroniNode],
                  clients: Sequence[str] = ("127.0.0.1/32",),
                  timeout: float = READY_TIMEOUT) -> PatroniCluster:
    """Write the configurations, start etcd and the nodes (the first bootstraps the
    cluster, the others clone it), create the database :data:`DATABASE`, and return once
    the standby is synchronous. ``clients`` are the networks trusted in ``pg_hba.conf``.
    RuntimeError (with what the logs say) when it does not come up; nothing is left running.
    """
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    bin_dir = postgres_bin_dir()
    as_user = ["runuser", "-u", POSTGRES_USER, "--"] if os.geteuid() == 0 else []
    account = pwd.getpwnam(POSTGRES_USER) if as_user else None
    scope = f"mip6-{directory.name}"
    cluster = PatroniCluster(directory, scope, etcd, nodes, as_user)
    try:
        etcd.start()
        for node in nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text(json.dumps(node.config(scope, etcd, bin_dir, clients)))
            if account is not None:
                for path in (node.directory, node.config_path):
                    os.chown(path, account.pw_uid, account.pw_gid)
            node.directory.chmod(0o700)
        nodes[0].start(as_user)
        cluster.wait(lambda members: _has_role(members, "leader", "running"), timeout,
                     "the first node as leader")
        for node in nodes[1:]:
            node.start(as_user)
        cluster.wait_synchronous(timeout)
        _create_database(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _create_database(cluster: PatroniCluster) -> None:
    import psycopg

    leader = cluster.leader()

    def create() -> None:
        with psycopg.connect(cluster.node_url(leader, "postgres"), autocommit=True,
                             connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')
    leader.call(create)
