"""The shared SA store: one PostgreSQL database for HAC processes on several hosts.

Each statement runs in autocommit, so a returned :meth:`create` is committed (durable
per the server's ``synchronous_commit``). Schema creation takes a transaction-level
advisory lock so HACs starting together do not race on ``CREATE TABLE``. Outbox claims
lock their rows with ``FOR UPDATE SKIP LOCKED``, so HACs claiming at once neither wait
for nor take each other's rows. The URL may
carry a password: it is never put into ``repr``, logs or error messages.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from aaa_mip6.errors import ConfigError
from aaa_mip6.store.base import StoreError
from aaa_mip6.store.sql import SQLStore, random_spi

CONNECT_TIMEOUT_SECONDS = 10
_SCHEMA_LOCK = 0x6D697036  # "mip6": the advisory lock key serialising schema creation


class PostgresStore(SQLStore):
    """SAs in PostgreSQL (``postgresql://user@host:port/db``), reconnecting when dropped."""

    _placeholder = "%s"
    _blob_type = "BYTEA"
    _begin_exclusive = ("BEGIN", f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
    _driver_errors = (psycopg.Error,)
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, spi_source: Callable[[], int] = random_spi):
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise ConfigError("store: not a valid PostgreSQL URL") from None
        self._url = url
        self._where = (f"{params.get('user', '')}@{params.get('host', '')}:"
                       f"{params.get('port', '')}/{params.get('dbname', '')}")
        self._connection = self._connect()
        super().__init__(spi_source=spi_source)

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._url, autocommit=True, application_name="aaa-mip6",
                                   connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as exc:
            raise StoreError(f"SA store: cannot connect to PostgreSQL {self._where} "
                             f"({self._describe(exc)})") from None

    def _cursor(self) -> psycopg.Cursor:
        if self._connection.broken or self._connection.closed:
            self._connection = self._connect()
        return self._connection.cursor()

    @staticmethod
    def _describe(exc: Exception) -> str:
        return f"{type(exc).__name__} {getattr(exc, 'sqlstate', None) or ''}".rstrip()

    def close(self) -> None:
        self._connection.close()
