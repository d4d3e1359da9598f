"""Where the HA gets its SAs, and where it keeps its sequence-number high-water marks.

:class:`SASource` is the one interface for every way SAs reach the HA: the HAC's store
when the two are co-located (:class:`StoreSASource`), or the HAC over Diameter
(:class:`ha.diameter_source.DiameterSASource`). The HA core never
calls a source itself (it is sans-I/O): on an unknown SPI it emits ``FetchSA`` and the
shell answers with whatever :meth:`SASource.lookup` returns — a value or a Deferred.
A source that learns of new or revoked SAs on its own (Diameter pushes) reports them
through :attr:`SASource.on_change`; a source that cannot (the store) is re-read by the
shell for every SA the core holds, every ``sa_refresh`` seconds.

:class:`SequenceLedger` is the HA's own small SQLite file (0600). It persists, per SA,
a *floor* for inbound sequence numbers (no packet above it has been accepted) and a
*ceiling* for outbound ones (no packet at or above it has been sent). The core reserves
ahead in blocks, so a write happens once per block, always before the packet that
needed it takes effect; a clean shutdown writes the exact values. After a restart the
reloaded SA rejects every inbound number at or below the floor and sends from the
ceiling on, so neither old MN packets nor the MN's replay window bite. The shell purges
the rows of SAs past their validity end every ``ledger_purge_interval`` seconds.
"""

from __future__ import annotations

import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from twisted.internet import defer, threads

from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import SecurityAssociation
from aaa_mip6.store import SAStore


class SASource(ABC):
    """The SAs the HA may use, by SPI (RFC 6618 §4.3: they come from the HAC)."""

    on_change: Callable[[SecurityAssociation], None] | None = None
    """Set by the shell; a source calls it with an SA that appeared or changed (revoked)."""

    @abstractmethod
    def lookup(self, spi: int) -> SecurityAssociation | None | defer.Deferred:
        """The SA with ``spi`` (revoked and expired ones too), None if there is none.

        May return a Deferred firing with the same; the shell accepts both shapes.
        """

    def close(self) -> None:
        """Release what the source holds."""


class StoreSASource(SASource):
    """SAs read from the HAC's store (co-located HA and HAC).

    SQLite answers in microseconds and is read on the calling thread; with
    ``in_thread`` (PostgreSQL) every lookup runs in the reactor's thread pool.
    Revocation shows up at the next refresh (see the module docstring).
    """

    def __init__(self, store: SAStore, *, in_thread: bool = False):
        self.store = store
        self.in_thread = in_thread

    def __repr__(self) -> str:
        return f"StoreSASource({self.store!r})"

    def _read(self, spi: int) -> SecurityAssociation | None:
        record = self.store.get(spi)
        return None if record is None else record.sa

    def lookup(self, spi: int) -> defer.Deferred:
        if self.in_thread:
            return threads.deferToThread(self._read, spi)
        return defer.maybeDeferred(self._read, spi)

    def close(self) -> None:
        self.store.close()


class SequenceLedger:
    """Per-SA inbound floor and outbound ceiling in a SQLite file the HA owns (mode 0600).

    A row is tied to the SA's validity end as well as its SPI, so an SPI the HAC hands
    out again after the old SA expired starts afresh.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(f"state: directory {str(self.path.parent)!r} does not exist")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ha_sequence (spi INTEGER PRIMARY KEY, "
                "validity_end REAL NOT NULL, inbound_floor INTEGER NOT NULL, "
                "outbound_next INTEGER NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"state: cannot open {str(self.path)!r}: {type(exc).__name__}"
            ) from None

    def __repr__(self) -> str:
        return f"SequenceLedger({str(self.path)!r})"

    def load(self, spi: int, validity_end: float) -> tuple[int, int] | None:
        """(inbound floor, outbound next) saved for this SA, None if it was never used here."""
        row = self._db.execute(
            "SELECT inbound_floor, outbound_next FROM ha_sequence "
            "WHERE spi = ? AND validity_end = ?",
            (spi, validity_end),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def save(self, spi: int, validity_end: float, inbound_floor: int, outbound_next: int) -> None:
        """Durably record the marks (fsync'd before this returns)."""
        self._db.execute(
            "INSERT OR REPLACE INTO ha_sequence VALUES (?, ?, ?, ?)",
            (spi, validity_end, inbound_floor, outbound_next),
        )

    def purge(self, before: float) -> int:
        """Forget SAs whose validity ended before ``before``; return how many."""
        return self._db.execute("DELETE FROM ha_sequence WHERE validity_end < ?", (before,)).rowcount

    def close(self) -> None:
        self._db.close()
