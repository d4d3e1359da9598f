"""Two HAC hosts and a database host, each in a network namespace of its own, joined by
veth links: the HACs bootstrap MNs at once on one PostgreSQL across the links, and no
SPI is issued twice (root: network namespaces).

    ns "a": mip6-hac + MNs --veth-- ns "db": PostgreSQL --veth-- ns "b": mip6-hac + MNs
    2001:db8:fa::2          2001:db8:fa::1 | 2001:db8:fb::1          2001:db8:fb::2

Each HAC listens on its namespace's loopback; its MNs run in the same namespace, so
nothing of the test touches the host's own addresses.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab.processes import stop_process
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids
from tests.integration.postgres import SUPERUSER, PostgresServer, _bin_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

DB_PORT = 5432  # inside the database namespace, which nobody else uses
HAC_PORT = 4433  # inside each HAC namespace
BOOTSTRAPS = 40  # per HAC, all at once
LINKS = {"a": ("2001:db8:fa::1", "2001:db8:fa::2"), "b": ("2001:db8:fb::1", "2001:db8:fb::2")}
REPO = Path(__file__).resolve().parents[2]

# Run in a HAC namespace: wait for the HAC, bootstrap every MN at once, print the SPIs.
MNS = """
import json, socket, sys, time
from lab.reactors import run_on_fresh_reactor
from mn import client
from mn.bootstrap import PskBootstrap
from aaa_mip6.twisted.tls import ClientTLS
from twisted.internet import defer
ca, port, count, psks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit("the HAC did not listen")
        time.sleep(0.1)
async def scenario(reactor):
    tls = ClientTLS("127.0.0.1", ca)
    names = sorted(psks)
    calls = [client.bootstrap(reactor, tls, port, PskBootstrap(names[n % len(names)],
                                                               bytes.fromhex(psks[names[n % len(names)]])))
             for n in range(count)]
    return [sa.spi for sa, _ in await defer.gatherResults(calls, consumeErrors=True)]
print(json.dumps(run_on_fresh_reactor(scenario, 120)))
"""

COUNT_SPIS = """
import json, sys, psycopg
with psycopg.connect(sys.argv[1]) as connection:
    print(json.dumps(connection.execute("SELECT spi, COUNT(*) FROM mip6_sa GROUP BY spi").fetchall()))
"""


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def in_namespace(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


class Hosts:
    """The three namespaces and their links, named with a random suffix (other test runs
    on this machine make namespaces too); :meth:`close` deletes them, links and all."""

    def __init__(self):
        suffix = secrets.token_hex(3)
        self.names = {role: f"mip6c-{role}-{suffix}" for role in ("db", "a", "b")}
        self.created: list[str] = []

    def __enter__(self) -> Hosts:
        try:
            for name in self.names.values():
                run("ip", "netns", "add", name)
                self.created.append(name)
                run(*in_namespace(name, "ip", "link", "set", "lo", "up"))
            db = self.names["db"]
            for role, (db_address, hac_address) in LINKS.items():
                hac = self.names[role]
                run("ip", "link", "add", f"to-{role}", "netns", db, "type", "veth", "peer",
                    "name", "to-db", "netns", hac)
                for namespace, device, address in ((db, f"to-{role}", db_address),
                                                   (hac, "to-db", hac_address)):
                    run(*in_namespace(namespace, "ip", "addr", "add", f"{address}/64",
                                      "dev", device, "nodad"))
                    run(*in_namespace(namespace, "ip", "link", "set", device, "up"))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for name in self.created:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
        self.created.clear()

    def __exit__(self, *exc_info) -> None:
        self.close()


def start_database(namespace: str, directory: Path) -> PostgresServer:
    """A PostgreSQL cluster in ``namespace`` on both link addresses, trusting 2001:db8::/32."""
    bin_dir = _bin_dir()
    assert bin_dir is not None, "PostgreSQL server binaries are not installed"
    account = pwd.getpwnam(SUPERUSER)
    os.chown(directory, account.pw_uid, account.pw_gid)
    as_user = in_namespace(namespace, "runuser", "-u", SUPERUSER, "--")
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(directory / "data"), "-U",
                    SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                   check=True, capture_output=True, timeout=120)
    with open(directory / "data" / "pg_hba.conf", "a") as hba:
        hba.write("host all all 2001:db8::/32 trust\n")
    server = PostgresServer(bin_dir, directory, DB_PORT, as_user, host=LINKS["a"][0])
    addresses = ",".join(db_address for db_address, _ in LINKS.values())
    started = server.pg_ctl("start", "-w", "-t", "60", "-l", str(directory / "log"), "-o",
                            f"-c listen_addresses={addresses} -c port={DB_PORT} "
                            f"-c unix_socket_directories={directory}")
    assert started.returncode == 0, (directory / "log").read_text(errors="replace")[-2000:]
    return server


def database_url(role: str) -> str:
    return f"postgresql://{SUPERUSER}@[{LINKS[role][0]}]:{DB_PORT}/postgres"


def test_hacs_on_two_hosts_never_issue_one_spi_twice(tmp_path):
    database_dir = Path(tempfile.mkdtemp(prefix="aaa-mip6-pg-netns-"))
    with Hosts() as hosts:
        database = start_database(hosts.names["db"], database_dir)
        hacs, clients = [], []
        try:
            for role in ("a", "b"):
                setup = make_setup(tmp_path / role, identities=mn_ids(8),
                                   store_url=database_url(role))
                hac = HacProcess(setup, config={**TEST_CONFIG, "instance": f"hac-{role}"})
                with open(hac.log_path, "ab") as log:
                    hacs.append(subprocess.Popen(
                        in_namespace(hosts.names[role], *hac.command(HAC_PORT)), stdout=log,
                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
                psks = json.dumps({nai: key.hex() for nai, key in setup.psks.items()})
                clients.append(subprocess.Popen(
                    in_namespace(hosts.names[role], sys.executable, "-c", MNS,
                                 str(setup.ca.cert_path), str(HAC_PORT), str(BOOTSTRAPS), psks),
                    cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            outputs = [mns.communicate(timeout=150) for mns in clients]
            stored = json.loads(subprocess.run(
                in_namespace(hosts.names["a"], sys.executable, "-c", COUNT_SPIS,
                             database_url("a")),
                check=True, capture_output=True, text=True, timeout=30).stdout)
        finally:
            for process in (*clients, *hacs):
                if process.poll() is None:
                    stop_process(process)
            database.stop()
            shutil.rmtree(database_dir, ignore_errors=True)
    logs = [(tmp_path / role / "hac.log").read_text(errors="replace")[-1500:]
            for role in ("a", "b")]
    assert all(mns.returncode == 0 for mns in clients), (outputs, logs)
    spis = [spi for out, _ in outputs for spi in json.loads(out)]
    assert len(spis) == 2 * BOOTSTRAPS and len(set(spis)) == len(spis)
    assert sorted(spi for spi, _ in stored) == sorted(spis)
    assert all(count == 1 for _, count in stored)
