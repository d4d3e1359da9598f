"""The store's rules for a lost connection (aaa_mip6.store.sql), without a database server.

A SQLite store stands in for PostgreSQL: its cursor is wrapped so chosen statements
"lose the connection" (raise after, or instead of, running), and the store is told such
errors lost it and given a time bound, as PostgresStore is. The real failover (Patroni,
kill -9 of the primary) is tests/integration/test_store_failover.py.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest

from aaa_mip6.errors import StoreError, StoreUnavailable
from aaa_mip6.sa import SecurityAssociation
from aaa_mip6.store.postgres import _where
from aaa_mip6.store.sqlite import SQLiteStore

TIMEOUT = 1.0


class _Cursor:
    """A cursor whose statements starting with ``prefix`` fail ``failures`` times, each
    after running (``committed``: the reply was lost) or before (the request was)."""

    def __init__(self, cursor, plan: dict):
        self._cursor = cursor
        self._plan = plan

    def execute(self, text, params=()):
        plan = self._plan
        failing = text.startswith(plan["prefix"]) and plan["failures"] > 0
        if failing and not plan["committed"]:
            plan["failures"] -= 1
            raise sqlite3.OperationalError("connection lost")
        result = self._cursor.execute(text, params)
        if failing:
            plan["failures"] -= 1
            raise sqlite3.OperationalError("connection lost after commit")
        return result

    def __getattr__(self, name):
        return getattr(self._cursor, name)


class FlakyStore(SQLiteStore):
    """A SQLite store that loses its "connection" as ``plan`` says; retries like PostgreSQL."""

    _timeout = TIMEOUT

    def __init__(self, path, **options):
        self.plan = {"prefix": "", "failures": 0, "committed": False}
        self.lost = 0
        super().__init__(path, **options)

    def _cursor(self):
        return _Cursor(super()._cursor(), self.plan)

    def _lost_connection(self, exc):
        self.lost += 1
        return "connection lost" in str(exc)

    def fail(self, prefix: str, failures: int, committed: bool) -> None:
        self.plan.update(prefix=prefix, failures=failures, committed=committed)


def template(mn_id: str = "mn@example.org") -> SecurityAssociation:
    return SecurityAssociation(
        spi=0, suite="AES_128_CBC_SHA", scope=1, mn_id=mn_id,
        mn_to_ha_ikey=os.urandom(20), ha_to_mn_ikey=os.urandom(20),
        mn_to_ha_ekey=os.urandom(16), ha_to_mn_ekey=os.urandom(16),
        validity_end=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1))


@pytest.fixture
def store(tmp_path):
    with FlakyStore(tmp_path / "sa.db") as opened:
        yield opened


def test_a_read_whose_connection_was_lost_is_tried_again(store):
    record = store.create(template(), hac_instance="a", home_agent=None)
    store.fail("SELECT", 2, committed=False)
    assert store.get(record.sa.spi) == record
    assert store.lost == 2


def test_an_insert_committed_before_the_reply_was_lost_is_returned_once(store):
    spis = iter([4242, 4243])
    store._spi_source = lambda: next(spis)
    store.fail("INSERT INTO mip6_sa", 1, committed=True)
    record = store.create(template(), hac_instance="a", home_agent=None)
    assert record.sa.spi == 4242  # found as ours: not a second row under another SPI
    assert [row.sa.spi for row in store.active()] == [4242]
    assert store.get(4242) == record


def test_an_spi_held_by_another_sa_is_not_taken_for_ours_after_a_lost_reply(store):
    spis = iter([4242, 4242, 4243])
    store._spi_source = lambda: next(spis)
    other = store.create(template("other@example.org"), hac_instance="a", home_agent=None)
    store.fail("INSERT INTO mip6_sa", 1, committed=False)
    ours = store.create(template(), hac_instance="a", home_agent=None)
    assert (other.sa.spi, ours.sa.spi) == (4242, 4243)
    assert store.get(4242) == other and store.get(4243) == ours


def test_a_connection_lost_for_longer_than_the_bound_is_unavailable_in_time(store):
    store.fail("SELECT", 10_000, committed=False)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="reading an SA failed: connection lost"):
        store.get(1)
    assert time.monotonic() - started <= TIMEOUT + 0.5  # never a wait past the bound
    assert store.lost >= 3  # tried again with backoff meanwhile


def test_other_errors_are_not_tried_again_and_are_not_unavailable(store):
    store.plan.update(prefix="SELECT", failures=1, committed=False)
    store._lost_connection = lambda exc: False
    with pytest.raises(StoreError) as raised:
        store.get(1)
    assert not isinstance(raised.value, StoreUnavailable)
    assert raised.value.reason == "store"


def test_a_lost_connection_in_a_group_commit_fails_the_group_without_a_retry(store):
    from aaa_mip6.store.base import Outbox
    store.fail("INSERT INTO mip6_sa", 1, committed=False)
    with pytest.raises(StoreUnavailable, match="connection lost"):
        with store.group_commit() as each:
            with each():  # tried once: on a new connection it would commit alone
                store.create(template(), hac_instance="a", home_agent=None)
    assert store.lost == 1 and store.active() == []
    store.fail("INSERT INTO mip6_sa", 1, committed=False)
    with pytest.raises(StoreUnavailable, match="allocating an SPI failed: connection lost"):
        store.create(template(), hac_instance="a", home_agent=None, outbox=Outbox("ha1"))
    assert store.active() == [] and store.outbox_size() == 0  # the SA and its row, or neither


def test_unavailable_is_a_store_error_with_its_own_reason():
    assert issubclass(StoreUnavailable, StoreError)
    assert StoreUnavailable("x").reason == "store-unavailable"


@pytest.mark.parametrize(("params", "shown"), [
    ({"user": "hac", "host": "db1,db2", "port": "5432,5433", "dbname": "mip6"},
     "hac@db1:5432,db2:5433/mip6"),
    ({"user": "hac", "host": "db1,db2", "port": "5432", "dbname": "mip6"},
     "hac@db1:5432,db2:5432/mip6"),
    ({"host": "db"}, "@db:/"),
])
def test_a_multi_host_url_is_shown_host_by_host_without_secrets(params, shown):
    assert _where({**params, "password": "s3cret"}) == shown
