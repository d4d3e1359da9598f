"""PostgreSQL-only store behaviour; the shared suite runs on it from tests/unit/test_store.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from aaa_mip6.sa import SecurityAssociation
from aaa_mip6.store import SPIExhausted, StoreError, open_store

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


def test_reconnects_after_the_server_drops_the_session(postgres_url):
    with open_store(postgres_url) as store:
        record = store.create(SA, hac_instance="hac", home_agent=None)
        backend = store._execute("test", "SELECT pg_backend_pid()")[0][0]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        with pytest.raises(StoreError, match="reading an SA"):
            store.get(record.sa.spi)
        assert store.get(record.sa.spi) == record


def test_password_stays_out_of_repr(postgres_url):
    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    with open_store(url) as store:  # the test cluster trusts local connections
        assert "s3cret" not in repr(store)
        assert repr(store) == "PostgresStore({!r})".format(url.split("//")[1].replace(
            "postgres:s3cret@", "postgres@"))
