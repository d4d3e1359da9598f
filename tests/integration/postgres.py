"""A real, throwaway PostgreSQL cluster for integration tests.

``postgres_server`` (session) starts one cluster per pytest run: ``initdb`` into a
temporary directory as the unprivileged ``postgres`` user (when running as root),
listening on 127.0.0.1 on a free port and on a Unix socket inside that directory;
it is stopped and deleted when the run ends. ``postgres_url`` (function) gives each
test its own fresh database as a ``postgresql://postgres@127.0.0.1:PORT/NAME`` URL.

Use from any test module or conftest with
``from tests.integration.postgres import postgres_server, postgres_url``;
every importer shares the one cluster.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.processes import free_port

SUPERUSER = "postgres"
START_ATTEMPTS = 3  # the free port found may be taken by someone else before we bind it


def _bin_dir() -> Path | None:
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda path: int(Path(path).parts[-3]))
    return Path(versions[-1]).parent if versions else None


@dataclass
class PostgresServer:
    """A running cluster; ``url(dbname)`` connects as the superuser without a password."""

    bin_dir: Path
    directory: Path
    port: int
    as_user: list[str]
    host: str = "127.0.0.1"
    _names = itertools.count(1)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bin_dir / "pg_ctl"),
                               "-D", str(self.directory / "data"), *args],
                              capture_output=True, text=True, timeout=60)

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb and start a cluster; pytest.skip when PostgreSQL is not installed."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed")
    as_user: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="aaa-mip6-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        try:
            account = pwd.getpwnam(SUPERUSER)
        except KeyError:
            shutil.rmtree(directory)
            pytest.skip("running as root but there is no 'postgres' user to run PostgreSQL")
        os.chown(directory, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", SUPERUSER, "--"]
    init = subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(directory / "data"), "-U", SUPERUSER,
         "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
        capture_output=True, text=True, timeout=120)
    if init.returncode:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr}")
    for _ in range(START_ATTEMPTS):
        server = PostgresServer(bin_dir, directory, free_port(), as_user)
        options = (f"-c listen_addresses={server.host} -c port={server.port} "
                   f"-c unix_socket_directories={directory} -c max_connections=200")
        started = server.pg_ctl("start", "-w", "-t", "60", "-l", str(directory / "log"),
                                "-o", options)
        if started.returncode == 0:
            return server
    log = (directory / "log").read_text(errors="replace")
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {log[-2000:]}")


_server: PostgresServer | None = None


@pytest.fixture(scope="session")
def postgres_server(request) -> PostgresServer:
    """One cluster per pytest run, however many modules import this fixture."""
    global _server
    if _server is None:
        _server = start_postgres()
        request.config.add_cleanup(_stop_server)
    return _server


def _stop_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database of the session's cluster, as a URL."""
    return postgres_server.create_database()
