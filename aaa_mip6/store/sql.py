"""The SQL both backends share: schema, SPI allocation by upsert, address probing.

Every write is one autocommitted statement, so it is durable when the driver returns
and several processes (or hosts) can share the database without holding locks across
round trips; the exceptions are :meth:`SQLStore.group_commit`, one transaction around
several SAs' writes so that they share one commit (and one fsync), and an SA (or a
revocation) with its outbox row, written in one transaction so that neither exists
without the other. SPI uniqueness rests on the primary key, not on any in-process state:
``INSERT ... ON CONFLICT (spi) DO UPDATE ... WHERE <the old SA expired>`` either
takes a free SPI, takes over an expired one, or changes nothing, atomically.

SQL is written with ``?`` placeholders; a backend with another paramstyle sets
``_placeholder``. Driver errors become :class:`StoreError` carrying the driver's
error class and code only, because driver messages may quote the offending row.

A backend that can lose its connection (PostgreSQL: a primary that died, a failover)
says which errors lost it (``_lost_connection``) and sets ``_timeout``: such a call is
run again on a new connection, with backoff, until it succeeds or ``_timeout`` seconds
have passed since it began, then fails with :class:`StoreUnavailable`. Running a
statement again is safe: reads and the idempotent writes (revoke, address assignment)
trivially; the SA insert, when it was tried again and found its SPI taken, by reading
the row back: one holding this very SA (its fresh random keys, its creation time) is
this insert, committed before the connection broke, and is returned as done.
"""

from __future__ import annotations

import contextlib
import ipaddress
import operator
import random
import secrets
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone

from aaa_mip6.backoff import Backoff
from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import SPI_MAX, SPI_MIN, HomeAgent, IPAddress, SecurityAssociation
from aaa_mip6.store.base import (
    TICKET_KEY_SIZE, UNALLOCATED_SPI, AddressPoolExhausted, IPNetwork, Outbox, OutboxEntry,
    SAStore, SARecord, SPIExhausted, StoreError, StoreUnavailable,
)

SCHEMA_VERSION = 1
SPI_ATTEMPTS = 32  # each random draw hits a held SPI with probability (held SAs) / 2**28
PROBE_BATCH = 64  # home-address candidates checked per round trip
RECONNECT_BACKOFF = Backoff(0.05, 1.0, jitter=(0.5, 1.0))  # between tries on a lost connection

_SA_COLUMNS = (
    "spi", "mn_id", "suite", "scope", "mn_to_ha_ikey", "ha_to_mn_ikey", "mn_to_ha_ekey",
    "ha_to_mn_ekey", "validity_end", "home_address6", "home_address4", "revoked",
    "hac_instance", "ha_address6", "ha_address4", "ha_port", "created",
)
_SELECT_SA = f"SELECT {', '.join(_SA_COLUMNS)} FROM mip6_sa"
_INSERT_SA = (
    f"INSERT INTO mip6_sa ({', '.join(_SA_COLUMNS)}) VALUES ({', '.join('?' * len(_SA_COLUMNS))})"
    " ON CONFLICT (spi) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _SA_COLUMNS[1:])
    + " WHERE mip6_sa.validity_end <= ? RETURNING spi"
)
_OWE = (
    "INSERT INTO mip6_outbox (spi, kind, destination, claimed_by, claimed_until) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (spi) DO UPDATE SET kind = excluded.kind, "
    "destination = excluded.destination, claimed_by = excluded.claimed_by, "
    "claimed_until = excluded.claimed_until"
)
PUSH, REVOKE = "push", "revoke"


def _schema(blob: str) -> tuple[str, ...]:
    return (
        "CREATE TABLE IF NOT EXISTS mip6_schema (version INTEGER NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS mip6_sa (
            spi INTEGER PRIMARY KEY CHECK (spi BETWEEN {SPI_MIN} AND {SPI_MAX}),
            mn_id TEXT NOT NULL,
            suite TEXT NOT NULL,
            scope INTEGER NOT NULL,
            mn_to_ha_ikey {blob} NOT NULL,
            ha_to_mn_ikey {blob} NOT NULL,
            mn_to_ha_ekey {blob} NOT NULL,
            ha_to_mn_ekey {blob} NOT NULL,
            validity_end BIGINT NOT NULL,
            home_address6 TEXT,
            home_address4 TEXT,
            revoked INTEGER NOT NULL,
            hac_instance TEXT NOT NULL,
            ha_address6 TEXT,
            ha_address4 TEXT,
            ha_port INTEGER,
            created BIGINT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS mip6_sa_validity_end ON mip6_sa (validity_end)",
        """CREATE TABLE IF NOT EXISTS mip6_home_address (
            prefix TEXT NOT NULL,
            mn_id TEXT NOT NULL,
            address TEXT NOT NULL UNIQUE,
            PRIMARY KEY (prefix, mn_id))""",
        # what is owed to HAs (SA delivery): one push or revocation per SPI
        """CREATE TABLE IF NOT EXISTS mip6_outbox (
            spi INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            destination TEXT NOT NULL,
            claimed_by TEXT,
            claimed_until BIGINT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS mip6_outbox_claim ON mip6_outbox (destination, claimed_until)",
        # which HAC can reach which HA (SA delivery), for the HA choice of every HAC
        """CREATE TABLE IF NOT EXISTS mip6_ha_route (
            reporter TEXT NOT NULL,
            destination TEXT NOT NULL,
            reachable INTEGER NOT NULL,
            until BIGINT NOT NULL,
            PRIMARY KEY (reporter, destination))""",
        f"""CREATE TABLE IF NOT EXISTS mip6_ticket_key (
            started BIGINT PRIMARY KEY,
            secret {blob} NOT NULL)""",
    )


def random_spi() -> int:
    """A uniformly random SPI in 1..268435455 from the CSPRNG."""
    return SPI_MIN + secrets.randbelow(SPI_MAX - SPI_MIN + 1)


def _rows(cursor) -> list[tuple]:
    return cursor.fetchall() if cursor.description else []


_rowcount = operator.attrgetter("rowcount")


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None or moment.microsecond:
        raise ValueError("validity_end must be timezone-aware with whole seconds")
    return int(moment.timestamp())


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _text(address: IPAddress | None) -> str | None:
    return None if address is None else str(address)


def _address(text: str | None, family: Callable[[str], IPAddress]) -> IPAddress | None:
    return None if text is None else family(text)


def _record(row: tuple) -> SARecord:
    (spi, mn_id, suite, scope, ikey_out, ikey_in, ekey_out, ekey_in, validity_end,
     hoa6, hoa4, revoked, hac_instance, ha6, ha4, ha_port, created) = row
    sa = SecurityAssociation(
        spi=spi, suite=suite, mn_to_ha_ikey=bytes(ikey_out), ha_to_mn_ikey=bytes(ikey_in),
        mn_to_ha_ekey=bytes(ekey_out), ha_to_mn_ekey=bytes(ekey_in),
        validity_end=_utc(validity_end), scope=scope, mn_id=mn_id,
        home_address6=_address(hoa6, ipaddress.IPv6Address),
        home_address4=_address(hoa4, ipaddress.IPv4Address), revoked=bool(revoked),
    )
    home_agent = None if ha_port is None else HomeAgent(
        _address(ha6, ipaddress.IPv6Address), _address(ha4, ipaddress.IPv4Address), ha_port)
    return SARecord(sa, hac_instance, home_agent, _utc(created))


def _pool(prefix: IPNetwork | str) -> tuple[IPNetwork, int]:
    """The prefix and how many addresses it can assign, from network address + 1 on."""
    try:
        network = ipaddress.ip_network(prefix) if isinstance(prefix, str) else prefix
    except ValueError as exc:
        raise ConfigError(f"home address prefix {prefix!r}: {exc}") from None
    # IPv4: no network or broadcast address. IPv6: no subnet-router anycast address.
    count = network.num_addresses - (2 if network.version == 4 else 1)
    if count < 1:
        raise ConfigError(f"home address prefix {network}: no assignable host addresses")
    return network, count


class SQLStore(SAStore):
    """The store logic on a DB-API connection; subclasses open it and set the dialect."""

    _placeholder = "?"
    _blob_type = "BLOB"
    _begin_exclusive: tuple[str, ...]  # statements opening a transaction that excludes writers
    _begin_write = "BEGIN"  # opens a transaction that writes
    _skip_locked = ""  # what makes a claim pass over rows another claim has locked
    _driver_errors: tuple[type[Exception], ...]
    _timeout: float | None = None  # seconds a call may take, tries included (None: one try)

    def __init__(self, *, spi_source: Callable[[], int] = random_spi):
        self._lock = threading.RLock()  # held across a group commit's statements
        self._grouping: int | None = None  # the thread inside group_commit, holding the lock
        self._spi_source = spi_source
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    # -- backend hooks -------------------------------------------------------------

    @abstractmethod
    def _cursor(self):
        """A cursor on a live autocommit connection."""

    @staticmethod
    @abstractmethod
    def _describe(exc: Exception) -> str:
        """The driver error's class and code: never its message, which may quote values."""

    def _lost_connection(self, exc: Exception) -> bool:
        """Whether ``exc`` lost the connection (the next ``_cursor`` opens a new one), so
        the statement may succeed on another try."""
        return False

    # -- shared plumbing -----------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._driver_errors as exc:
            if self._lost_connection(exc):  # the HAC answers 503: asking later may work
                raise StoreUnavailable(f"SA store: {action} failed: connection lost "
                                       f"({self._describe(exc)})") from None
            raise StoreError(f"SA store: {action} failed ({self._describe(exc)})") from None

    def _sql(self, text: str) -> str:
        return text if self._placeholder == "?" else text.replace("?", self._placeholder)

    def _execute(self, action: str, text: str, params: tuple = (), *,
                 result: Callable = _rows, tries: list | None = None):
        """Run one statement in its own transaction (committed when this returns) and
        return ``result(cursor)``: the rows by default. On a lost connection, try again
        until ``_timeout`` (see the module docstring); StoreUnavailable after that.
        ``tries``, if given, gets one item per try that lost its connection."""
        # Inside this thread's group commit a lost connection took the group's transaction
        # with it: trying the statement again on a new connection would commit it alone.
        one_try = self._timeout is None or self._grouping == threading.get_ident()
        deadline = None if one_try else time.monotonic() + self._timeout
        attempt = 0
        while True:
            try:
                if not self._lock.acquire(timeout=-1 if deadline is None else
                                          max(0.0, deadline - time.monotonic())):
                    raise StoreUnavailable(f"SA store: {action}: waited {self._timeout:g} s "
                                           "for the connection")
                try:
                    cursor = self._cursor()
                    cursor.execute(self._sql(text), params)
                    return result(cursor)
                finally:
                    self._lock.release()
            except self._driver_errors as exc:
                if not self._lost_connection(exc):
                    raise StoreError(f"SA store: {action} failed ({self._describe(exc)})") \
                        from None
                error = StoreUnavailable(f"SA store: {action} failed: connection lost "
                                         f"({self._describe(exc)})")
            except StoreUnavailable as exc:
                error = exc
            if tries is not None:
                tries.append(error)
            wait = RECONNECT_BACKOFF.delay(attempt, random.random())
            if deadline is None or time.monotonic() + wait >= deadline:
                raise error from None
            time.sleep(wait)
            attempt += 1

    @contextlib.contextmanager
    def group_commit(self) -> Iterator[Callable[[], contextlib.AbstractContextManager]]:
        """One transaction (``BEGIN IMMEDIATE`` for SQLite: the write lock first) around
        the writes inside, committed as it exits; a savepoint around each ``each()``.
        Other threads' statements wait for the commit."""
        with self._lock:
            with self._errors("starting a group commit"):
                cursor = self._cursor()
                cursor.execute(self._begin_exclusive[0])
            self._grouping = threading.get_ident()
            try:
                yield self._savepoint
                with self._errors("committing SAs"):
                    cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(*self._driver_errors):
                    cursor.execute("ROLLBACK")
                raise
            finally:
                self._grouping = None

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        """One item of a group commit: undone alone if it raises."""
        with self._errors("starting a savepoint"):
            cursor = self._cursor()
            cursor.execute("SAVEPOINT one_sa")
        try:
            yield
        except BaseException:
            with self._errors("rolling back a savepoint"):
                cursor.execute("ROLLBACK TO SAVEPOINT one_sa")
                cursor.execute("RELEASE SAVEPOINT one_sa")
            raise
        with self._errors("releasing a savepoint"):
            cursor.execute("RELEASE SAVEPOINT one_sa")

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator:
        """A cursor inside one transaction, committed when the block ends, rolled back
        if it raises; inside a group commit, the group's own transaction (whose
        savepoint undoes the block if it raises)."""
        with self._lock, self._errors(action):
            cursor = self._cursor()
            if self._grouping is not None:  # this thread's: it holds the lock
                yield cursor
                return
            cursor.execute(self._begin_write)
            try:
                yield cursor
            except BaseException:
                with contextlib.suppress(*self._driver_errors):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _owe(self, cursor, spi: int, kind: str, outbox: Outbox) -> None:
        cursor.execute(self._sql(_OWE), (spi, kind, outbox.destination, outbox.claimed_by,
                                         outbox.claimed_until))

    def _create_schema(self) -> None:
        """Create the tables once, serialised across processes, and check the version."""
        with self._lock, self._errors("creating the schema"):
            cursor = self._cursor()
            for statement in self._begin_exclusive:
                cursor.execute(statement)
            try:
                for statement in _schema(self._blob_type):
                    cursor.execute(statement)
                cursor.execute("SELECT version FROM mip6_schema")
                versions = [version for (version,) in cursor.fetchall()]
                if not versions:
                    cursor.execute(self._sql("INSERT INTO mip6_schema (version) VALUES (?)"),
                                   (SCHEMA_VERSION,))
                elif max(versions) > SCHEMA_VERSION:
                    raise StoreError(f"SA store: schema version {max(versions)} is newer than "
                                     f"this software's {SCHEMA_VERSION}")
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

    # -- SAs -----------------------------------------------------------------------

    def create(self, template: SecurityAssociation, *, hac_instance: str,
               home_agent: HomeAgent | None, outbox: Outbox | None = None) -> SARecord:
        if template.spi != UNALLOCATED_SPI:
            raise ValueError("the store allocates the SPI: pass a template with spi=0")
        if any("\x00" in text for text in (template.mn_id, template.suite, hac_instance)):
            raise ValueError("mn_id, suite and hac_instance must not contain NUL")
        now = int(time.time())
        ha6, ha4, ha_port = ((None, None, None) if home_agent is None else
                             (home_agent.address6, home_agent.address4, home_agent.port))
        values = (
            template.mn_id, template.suite, template.scope, template.mn_to_ha_ikey,
            template.ha_to_mn_ikey, template.mn_to_ha_ekey, template.ha_to_mn_ekey,
            _epoch(template.validity_end), _text(template.home_address6),
            _text(template.home_address4), int(template.revoked), hac_instance,
            _text(ha6), _text(ha4), ha_port, now,
        )
        if outbox is None:
            for _ in range(SPI_ATTEMPTS):
                spi = self._spi_source()
                record = SARecord(template.replace(spi=spi), hac_instance, home_agent, _utc(now))
                lost: list = []
                if self._execute("allocating an SPI", _INSERT_SA, (spi, *values, now),
                                 tries=lost):
                    return record
                if lost and self.get(spi) == record:  # our own insert, before the connection broke
                    return record
        else:  # one transaction, not tried again: a lost connection undoes both rows
            with self._transaction("allocating an SPI") as cursor:
                for _ in range(SPI_ATTEMPTS):
                    spi = self._spi_source()
                    cursor.execute(self._sql(_INSERT_SA), (spi, *values, now))
                    if _rows(cursor):
                        self._owe(cursor, spi, PUSH, outbox)
                        return SARecord(template.replace(spi=spi), hac_instance, home_agent,
                                        _utc(now))
        raise SPIExhausted(f"SA store: no free SPI found in {SPI_ATTEMPTS} random draws")

    def get(self, spi: int) -> SARecord | None:
        if not SPI_MIN <= spi <= SPI_MAX:
            return None
        rows = self._execute("reading an SA", f"{_SELECT_SA} WHERE spi = ?", (spi,))
        return _record(rows[0]) if rows else None

    def revoke(self, spi: int, *, outbox: Outbox | None = None) -> bool:
        if not SPI_MIN <= spi <= SPI_MAX:
            return False
        revoking = "UPDATE mip6_sa SET revoked = 1 WHERE spi = ?"
        if outbox is None:
            return self._execute("revoking an SA", revoking, (spi,), result=_rowcount) > 0
        with self._transaction("revoking an SA") as cursor:
            cursor.execute(self._sql(revoking), (spi,))
            if cursor.rowcount < 1:
                return False
            self._owe(cursor, spi, REVOKE, outbox)
            return True

    # -- the outbox of SA delivery ------------------------------------------------------

    def claim_outbox(self, claimer: str, destinations: Iterable[str], until: int,
                     limit: int) -> list[OutboxEntry]:
        destinations = sorted(set(destinations))
        if not destinations or limit < 1:
            return []
        claimed = dict(self._execute(
            "claiming owed SA messages",
            "UPDATE mip6_outbox SET claimed_by = ?, claimed_until = ? WHERE spi IN ("
            "SELECT spi FROM mip6_outbox WHERE destination IN "
            f"({', '.join('?' * len(destinations))}) AND claimed_until <= ? "
            f"ORDER BY claimed_until LIMIT ?{self._skip_locked}) RETURNING spi, kind",
            (claimer, until, *destinations, int(time.time()), limit)))
        if not claimed:
            return []
        records = {row[0]: _record(row) for row in self._execute(
            "reading owed SAs",
            f"{_SELECT_SA} WHERE spi IN ({', '.join('?' * len(claimed))})", tuple(claimed))}
        entries, stale = [], []
        for spi, kind in sorted(claimed.items()):
            record = records.get(spi)
            if record is None or record.sa.revoked != (kind == REVOKE):
                stale.append(spi)
            else:
                entries.append(OutboxEntry(record, kind == REVOKE))
        if stale:
            self._execute("dropping stale SA messages",
                          f"DELETE FROM mip6_outbox WHERE claimed_by = ? AND spi IN "
                          f"({', '.join('?' * len(stale))})", (claimer, *stale))
        return entries

    def renew_outbox(self, claimer: str, spis: Iterable[int], until: int) -> int:
        spis = sorted(set(spis))
        if not spis:
            return 0
        return self._execute("renewing claims",
                             "UPDATE mip6_outbox SET claimed_until = ? WHERE claimed_by = ? AND "
                             f"spi IN ({', '.join('?' * len(spis))})",
                             (until, claimer, *spis), result=_rowcount)

    def release_outbox(self, claimer: str, spi: int | None = None) -> None:
        which = "" if spi is None else " AND spi = ?"
        self._execute("releasing claims",
                      "UPDATE mip6_outbox SET claimed_by = NULL, claimed_until = 0 "
                      f"WHERE claimed_by = ?{which}",
                      (claimer,) if spi is None else (claimer, spi), result=_rowcount)

    def outbox_done(self, claimer: str, done: Iterable[tuple[int, bool]]) -> int:
        done = sorted(set(done))
        if not done:
            return 0
        return self._execute(
            "forgetting delivered SA messages",
            "DELETE FROM mip6_outbox WHERE claimed_by = ? AND ("
            + " OR ".join(["(spi = ? AND kind = ?)"] * len(done)) + ")",
            (claimer, *(value for spi, revoke in done
                        for value in (spi, REVOKE if revoke else PUSH))), result=_rowcount)

    def outbox_size(self) -> int:
        return self._execute("counting owed SA messages", "SELECT COUNT(*) FROM mip6_outbox")[0][0]

    # -- what every HAC shares besides SAs -------------------------------------------------

    def ticket_key(self, started: int, lifetime: int) -> bytes:
        reading = "SELECT secret FROM mip6_ticket_key WHERE started = ?"
        rows = self._execute("reading a ticket key", reading, (started,))
        if rows:  # the usual case: another HAC (or this one) made it; no write
            return bytes(rows[0][0])
        self._execute("storing a ticket key",
                      "INSERT INTO mip6_ticket_key (started, secret) VALUES (?, ?) "
                      "ON CONFLICT (started) DO NOTHING",
                      (started, secrets.token_bytes(TICKET_KEY_SIZE)), result=_rowcount)
        self._execute("deleting old ticket keys",
                      "DELETE FROM mip6_ticket_key WHERE started < ?", (started - lifetime,),
                      result=_rowcount)
        return bytes(self._execute("reading a ticket key", reading, (started,))[0][0])

    def report_routes(self, reporter: str, reachable: dict[str, bool], until: int) -> None:
        if not reachable:
            return
        self._execute(
            "reporting routes to HAs",
            "INSERT INTO mip6_ha_route (reporter, destination, reachable, until) VALUES "
            + ", ".join(["(?, ?, ?, ?)"] * len(reachable))
            + " ON CONFLICT (reporter, destination) DO UPDATE SET "
            "reachable = excluded.reachable, until = excluded.until",
            tuple(value for destination, up in sorted(reachable.items())
                  for value in (reporter, destination, int(up), until)), result=_rowcount)

    def unreachable(self) -> set[str]:
        rows = self._execute("reading routes to HAs",
                             "SELECT destination FROM mip6_ha_route WHERE until > ? "
                             "GROUP BY destination HAVING MAX(reachable) = 0",
                             (int(time.time()),))
        return {destination for (destination,) in rows}

    def home_agent_load(self) -> dict[HomeAgent, int]:
        rows = self._execute(
            "counting SAs per HA",
            "SELECT ha_address6, ha_address4, ha_port, COUNT(*) FROM mip6_sa WHERE revoked = 0"
            " AND validity_end > ? AND ha_port IS NOT NULL"
            " GROUP BY ha_address6, ha_address4, ha_port", (int(time.time()),))
        return {HomeAgent(_address(ha6, ipaddress.IPv6Address),
                          _address(ha4, ipaddress.IPv4Address), port): count
                for ha6, ha4, port, count in rows}

    def active(self) -> list[SARecord]:
        rows = self._execute(
            "listing SAs", f"{_SELECT_SA} WHERE revoked = 0 AND validity_end > ? ORDER BY spi",
            (int(time.time()),))
        return [_record(row) for row in rows]

    def count_active(self) -> int:
        [(count,)] = self._execute(
            "counting SAs", "SELECT COUNT(*) FROM mip6_sa WHERE revoked = 0 AND validity_end > ?",
            (int(time.time()),))
        return count

    def purge_expired(self) -> list[SARecord]:
        rows = self._execute("purging SAs", "DELETE FROM mip6_sa WHERE validity_end <= ? "
                             f"RETURNING {', '.join(_SA_COLUMNS)}", (int(time.time()),))
        if rows:  # nothing more is owed for a purged SA
            self._execute("purging owed SA messages", "DELETE FROM mip6_outbox WHERE spi NOT "
                          "IN (SELECT spi FROM mip6_sa)", result=_rowcount)
        return [_record(row) for row in rows]

    # -- home addresses ------------------------------------------------------------

    def _assigned(self, mn_id: str, prefix: str) -> str | None:
        rows = self._execute(
            "reading a home address",
            "SELECT address FROM mip6_home_address WHERE prefix = ? AND mn_id = ?",
            (prefix, mn_id))
        return rows[0][0] if rows else None

    def home_address(self, mn_id: str, prefix: IPNetwork | str, *,
                     exclude: Iterable[IPAddress] = ()) -> IPAddress:
        network, count = _pool(prefix)
        key = str(network)
        known = self._assigned(mn_id, key)
        if known is not None:
            return ipaddress.ip_address(known)
        excluded = {str(ipaddress.ip_address(address)) for address in exclude}
        # Linear probing from a random offset visits every address once, so a full
        # pool is detected exactly and a sparse one costs one round trip.
        start = secrets.randbelow(count)
        for batch_start in range(0, count, PROBE_BATCH):
            batch = [str(network.network_address + 1 + (start + offset) % count)
                     for offset in range(batch_start, min(batch_start + PROBE_BATCH, count))]
            taken = {address for (address,) in self._execute(
                "reading home addresses",
                f"SELECT address FROM mip6_home_address WHERE address IN "
                f"({', '.join('?' * len(batch))})", tuple(batch))}
            for address in batch:
                if address in taken or address in excluded:
                    continue
                if self._execute(
                        "assigning a home address",
                        "INSERT INTO mip6_home_address (prefix, mn_id, address) VALUES (?, ?, ?)"
                        " ON CONFLICT DO NOTHING RETURNING address", (key, mn_id, address)):
                    return ipaddress.ip_address(address)
                known = self._assigned(mn_id, key)  # another process may have just served it
                if known is not None:
                    return ipaddress.ip_address(known)
        raise AddressPoolExhausted(
            f"SA store: every address of home prefix {network} is assigned")
