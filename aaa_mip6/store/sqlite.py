"""The default SA store: one SQLite file shared by the HAC processes of one host.

WAL lets readers run beside the single writer; ``synchronous=FULL`` fsyncs the WAL
on every commit, so a returned :meth:`create` survives kill -9 and power loss; the
busy timeout makes concurrent writers in other processes wait instead of failing.
The database holds SA keys, so it and its -wal/-shm files are 0600 (SQLite gives
those the main file's mode).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from aaa_mip6.errors import ConfigError
from aaa_mip6.store.sql import SQLStore, random_spi

BUSY_TIMEOUT_SECONDS = 30.0


def _make_private(path: Path) -> None:
    """Create the database file 0600 (or tighten an existing one) before SQLite opens it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            os.chmod(sidecar, 0o600)


class SQLiteStore(SQLStore):
    """SAs in a SQLite file (``sqlite:///abs/path.db``)."""

    _begin_exclusive = ("BEGIN IMMEDIATE",)
    _driver_errors = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike, *, spi_source: Callable[[], int] = random_spi):
        self.path = Path(path)
        if not self.path.is_absolute():
            raise ConfigError(f"store: SQLite path {str(path)!r} is not absolute")
        if not self.path.parent.is_dir():
            raise ConfigError(f"store: directory {str(self.path.parent)!r} does not exist")
        try:
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
