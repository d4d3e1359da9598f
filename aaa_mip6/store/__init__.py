"""Durable SA stores, chosen by URL: ``sqlite:///abs/path.db`` or ``postgresql://...``."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from aaa_mip6.errors import ConfigError
from aaa_mip6.store.base import (
    TICKET_KEY_SIZE, UNALLOCATED_SPI, AddressPoolExhausted, Outbox, OutboxEntry, SARecord,
    SAStore, SPIExhausted, StoreError, StoreUnavailable,
)

__all__ = [
    "TICKET_KEY_SIZE", "UNALLOCATED_SPI", "AddressPoolExhausted", "Outbox", "OutboxEntry",
    "SARecord", "SAStore", "SPIExhausted", "StoreError", "StoreUnavailable", "open_store",
]


def open_store(url: str, *, timeout: float | None = None, **options) -> SAStore:
    """Open (and on first use create) the store at ``url``; bad URLs raise ConfigError.

    ``timeout`` bounds each PostgreSQL call, its tries on new connections after a lost
    one included (default ``postgres.DEFAULT_TIMEOUT``; a SQLite file loses no
    connection). ``options`` go to the backend (``spi_source``: a zero-argument callable
    returning SPIs to try, for tests). Blocks while connecting and creating the schema.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError("store: a SQLite URL is sqlite:///absolute/path.db (three slashes)")
        if parts.query or parts.fragment:
            raise ConfigError("store: a SQLite URL takes no query or fragment")
        from aaa_mip6.store.sqlite import SQLiteStore
        return SQLiteStore("/" + unquote(parts.path).lstrip("/"), **options)
    if scheme in ("postgresql", "postgres") and url[len(scheme):].startswith("://"):
        from aaa_mip6.store.postgres import PostgresStore
        if timeout is not None:
            options["timeout"] = timeout
        return PostgresStore(url, **options)
    raise ConfigError("store: the URL must start with sqlite:/// or postgresql://")
