"""The shared SA store: one PostgreSQL database for HAC processes on several hosts.

Each statement runs in autocommit, so a returned :meth:`create` is committed (durable
per the server's ``synchronous_commit``). Schema creation takes a transaction-level
advisory lock so HACs starting together do not race on ``CREATE TABLE``. Outbox claims
lock their rows with ``FOR UPDATE SKIP LOCKED``, so HACs claiming at once neither wait
for nor take each other's rows. The URL may
carry a password: it is never put into ``repr``, logs or error messages.

Failover: the URL may name several hosts (``postgresql://u@db1:5432,db2:5432/mip6``);
libpq tries them in order and, unless the URL says otherwise, only keeps a server that
accepts writes (``target_session_attrs=read-write``), so after Patroni promotes a
standby the next connection finds the new primary. A call whose connection is lost
(the primary died, was demoted, or is unreachable) is tried again on a new connection
until ``timeout`` seconds have passed since it began, then fails with
:class:`StoreUnavailable`. TCP keepalives and ``tcp_user_timeout`` make a silent peer
(a host that vanished) a lost connection within seconds rather than the kernel's
minutes. A call is never cancelled from the client side: a commit cancelled while it
waits for the synchronous standby is reported as committed with only a warning, so
the bound is kept by giving up the connection, never the statement.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from aaa_mip6.errors import ConfigError
from aaa_mip6.store.base import StoreUnavailable
from aaa_mip6.store.sql import SQLStore, random_spi

DEFAULT_TIMEOUT = 5.0  # seconds one store call may take, its tries on new connections included
# libpq settings a URL may override: per host connect time, writable servers only, and a
# dead peer noticed within about 10 s (keepalives when idle, tcp_user_timeout when sending)
CONNECTION_DEFAULTS = {
    "connect_timeout": "3",
    "target_session_attrs": "read-write",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}
# SQLSTATEs after which another connection may succeed: class 08 (connection exception),
# the server shutting down or crashing or still starting, and a read-only server (a
# demoted primary, or a standby)
_RECONNECT_CLASSES = ("08",)
_RECONNECT_STATES = frozenset({"57P01", "57P02", "57P03", "25006"})
_SCHEMA_LOCK = 0x6D697036  # "mip6": the advisory lock key serialising schema creation


def _where(params: dict) -> str:
    """``user@host:port,host:port/db``: what the logs may say about a URL (no password)."""
    hosts = params.get("host", "").split(",")
    ports = params.get("port", "").split(",")
    if len(ports) == 1:  # libpq: one port serves every host
        ports *= len(hosts)
    servers = ",".join(f"{host}:{port}" for host, port in zip(hosts, ports))
    return f"{params.get('user', '')}@{servers}/{params.get('dbname', '')}"


class PostgresStore(SQLStore):
    """SAs in PostgreSQL (``postgresql://user@host:port[,host:port...]/db``), reconnecting
    (to whichever server is the primary) when dropped."""

    _placeholder = "%s"
    _blob_type = "BYTEA"
    _begin_exclusive = ("BEGIN", f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
    _driver_errors = (psycopg.Error,)
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, spi_source: Callable[[], int] = random_spi,
                 timeout: float = DEFAULT_TIMEOUT):
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise ConfigError("store: not a valid PostgreSQL URL") from None
        if not timeout > 0:
            raise ConfigError("store: the timeout must be a positive number of seconds")
        self._url = url
        self._options = {key: value for key, value in CONNECTION_DEFAULTS.items()
                         if key not in params}
        self._where = _where(params)
        self._timeout = timeout
        self._connection = self._connect()
        super().__init__(spi_source=spi_source)

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._url, autocommit=True, application_name="aaa-mip6",
                                   **self._options)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"SA store: cannot connect to PostgreSQL {self._where}"
                                   f" ({self._describe(exc)})") from None

    def _cursor(self) -> psycopg.Cursor:
        if self._connection.broken or self._connection.closed:
            self._connection = self._connect()
        return self._connection.cursor()

    def _lost_connection(self, exc: Exception) -> bool:
        sqlstate = getattr(exc, "sqlstate", None) or ""
        lost = (self._connection.broken or self._connection.closed
                or sqlstate.startswith(_RECONNECT_CLASSES) or sqlstate in _RECONNECT_STATES)
        if lost:
            self._connection.close()  # a read-only server's connection is fine but useless
        return lost

    @staticmethod
    def _describe(exc: Exception) -> str:
        return f"{type(exc).__name__} {getattr(exc, 'sqlstate', None) or ''}".rstrip()

    def close(self) -> None:
        self._connection.close()
