"""PostgreSQL-only store behaviour; the shared suite runs on it from tests/unit/test_store.py."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from aaa_mip6.sa import SecurityAssociation
from aaa_mip6.store import SPIExhausted, StoreUnavailable, open_store
from lab.processes import free_port

pytestmark = pytest.mark.integration

SA = SecurityAssociation(
    spi=0, suite="AES_128_CBC_SHA", mn_to_ha_ikey=b"\x01" * 20, ha_to_mn_ikey=b"\x02" * 20,
    mn_to_ha_ekey=b"\x03" * 16, ha_to_mn_ekey=b"\x04" * 16, scope=1, mn_id="mn@example.org",
    validity_end=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1))


def test_two_hac_instances_share_one_spi_space(postgres_url):
    with open_store(postgres_url, spi_source=lambda: 99) as host_a, \
            open_store(postgres_url, spi_source=lambda: 99) as host_b:
        created = host_a.create(SA, hac_instance="hac-a", home_agent=None)
        with pytest.raises(SPIExhausted):
            host_b.create(SA, hac_instance="hac-b", home_agent=None)
        assert host_b.get(99) == created


def terminate_session(store, url: str) -> None:
    backend = store._execute("test", "SELECT pg_backend_pid()")[0][0]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))


def test_reconnects_within_the_call_after_the_server_drops_the_session(postgres_url):
    with open_store(postgres_url) as store:
        record = store.create(SA, hac_instance="hac", home_agent=None)
        terminate_session(store, postgres_url)
        assert store.get(record.sa.spi) == record


def test_a_server_gone_for_good_is_unavailable_within_the_timeout(postgres_url):
    with open_store(postgres_url, timeout=1.0) as store:
        terminate_session(store, postgres_url)
        port = postgres_url.split("@127.0.0.1:")[1].split("/")[0]
        store._url = postgres_url.replace(f":{port}/", f":{free_port()}/")  # nothing there
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL"):
            store.get(1)
        assert time.monotonic() - started < 2.0


def test_a_multi_host_url_reaches_the_server_that_answers(postgres_url):
    port = postgres_url.split("@127.0.0.1:")[1].split("/")[0]
    url = postgres_url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()},127.0.0.1:{port}")
    with open_store(url) as store:
        record = store.create(SA, hac_instance="hac", home_agent=None)
        assert store.get(record.sa.spi) == record
        assert repr(store).endswith(f",127.0.0.1:{port}/{postgres_url.rsplit('/', 1)[1]}')")


def test_password_stays_out_of_repr(postgres_url):
    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    with open_store(url) as store:  # the test cluster trusts local connections
        assert "s3cret" not in repr(store)
        assert repr(store) == "PostgresStore({!r})".format(url.split("//")[1].replace(
            "postgres:s3cret@", "postgres@"))
