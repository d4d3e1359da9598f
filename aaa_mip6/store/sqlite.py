"""The default SA store: one SQLite file shared by the HAC processes of one host.

WAL lets readers run beside the single writer; ``synchronous=FULL`` fsyncs the WAL
on every commit, so a returned :meth:`create` survives kill -9 and power loss; the
busy timeout makes concurrent writers in other processes wait instead of failing.
The database holds SA keys, so it and its -wal/-shm files are 0600 (SQLite gives
those the main file's mode).

Many stores may open one fresh file at once (HACs starting together, threads of one
process), which the docs promise is safe. Each opens it holding an exclusive flock on
the database's directory (processes and threads alike wait for it in the kernel), for
two reasons:

- Switching a new database to WAL upgrades the switching statement's read lock to a
  write lock, and SQLite refuses that upgrade at once with SQLITE_BUSY, without its
  busy handler (waiting could deadlock), when another connection is switching too.
  One at a time, the first switches and the others find the WAL header.
- POSIX locks belong to a process: closing any descriptor of the database file drops
  every lock this process's SQLite connections hold on it. The file is created (0600)
  and its descriptor closed before this process's next connection can lock it; an
  existing file is chmod-ed by path, never opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from aaa_mip6.errors import ConfigError
from aaa_mip6.store.sql import SQLStore, random_spi

BUSY_TIMEOUT_SECONDS = 30.0


@contextlib.contextmanager
def _opening(directory: Path) -> Iterator[None]:
    """Hold the exclusive flock on ``directory`` that every store opening a database in
    it takes (module docstring); it never touches SQLite's locks on the file itself."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _make_private(path: Path) -> None:
    """Create the database file 0600 (or tighten an existing one) before SQLite opens it."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            os.chmod(sidecar, 0o600)


class SQLiteStore(SQLStore):
    """SAs in a SQLite file (``sqlite:///abs/path.db``)."""

    _begin_exclusive = ("BEGIN IMMEDIATE",)
    _begin_write = "BEGIN IMMEDIATE"  # the write lock at once: no deadlock upgrading a read
    _driver_errors = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike, *, spi_source: Callable[[], int] = random_spi):
        self.path = Path(path)
        if not self.path.is_absolute():
            raise ConfigError(f"store: SQLite path {str(path)!r} is not absolute")
        if not self.path.parent.is_dir():
            raise ConfigError(f"store: directory {str(self.path.parent)!r} does not exist")
        try:
            with _opening(self.path.parent):
                _make_private(self.path)
                self._connection = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                    check_same_thread=False)
                mode = self._connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._connection.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"store: cannot open SQLite database {str(self.path)!r}: "
                              f"{exc.strerror if isinstance(exc, OSError) else self._describe(exc)}"
                              ) from None
        if mode != "wal":
            raise ConfigError(f"store: {str(self.path)!r} does not support WAL mode")
        super().__init__(spi_source=spi_source)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _cursor(self) -> sqlite3.Cursor:
        return self._connection.cursor()

    @staticmethod
    def _describe(exc: Exception) -> str:
        return f"{type(exc).__name__} {getattr(exc, 'sqlite_errorname', '')}".rstrip()

    def close(self) -> None:
        self._connection.close()
