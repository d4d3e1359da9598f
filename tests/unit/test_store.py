"""The SA store suite, run on SQLite and (marked integration) on a real PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import fcntl
import ipaddress
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import SPI_MAX, SPI_MIN, HomeAgent, SecurityAssociation
from aaa_mip6.store import (
    TICKET_KEY_SIZE, AddressPoolExhausted, Outbox, OutboxEntry, SARecord, SPIExhausted,
    StoreError, open_store,
)
from aaa_mip6.store.sql import SCHEMA_VERSION, random_spi
from lab.processes import free_port
from tests.integration.postgres import postgres_server, postgres_url  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
KEYS = dict(mn_to_ha_ikey=b"\x11" * 20, ha_to_mn_ikey=b"\x22" * 20,
            mn_to_ha_ekey=b"\x33" * 16, ha_to_mn_ekey=b"\x44" * 16)
HA = HomeAgent(ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv4Address("192.0.2.1"), 7872)

# A child process that opens the store, waits for "go" on stdin, then creates SAs
# (printing each SPI as soon as create returns) or asks for home addresses.
WORKER = """
import sys
import threading
from datetime import datetime, timedelta, timezone
from aaa_mip6.sa import SecurityAssociation
from aaa_mip6.store import open_store
url, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(url)
template = SecurityAssociation(
    spi=0, suite="AES_128_CBC_SHA", mn_to_ha_ikey=b"i" * 20, ha_to_mn_ikey=b"j" * 20,
    mn_to_ha_ekey=b"e" * 16, ha_to_mn_ekey=b"f" * 16, scope=1, mn_id="worker@example.org",
    validity_end=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1))
print("ready", flush=True)
sys.stdin.readline()
for n in range(count):
    if mode == "sa":
        print(store.create(template, hac_instance="worker", home_agent=None).sa.spi, flush=True)
    else:
        print(f"mn{n}", store.home_address(f"mn{n}@example.org", mode), flush=True)
"""


def start_workers(url: str, mode: str, count: int, processes: int) -> list[subprocess.Popen]:
    """Start the workers and release them together once all have opened the store."""
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, url, mode, str(count)],
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for _ in range(processes)]
    for worker in workers:
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    return workers


def finish(worker: subprocess.Popen) -> list[str]:
    out, _ = worker.communicate(timeout=240)
    assert worker.returncode == 0
    return out.split()


def template(**changes) -> SecurityAssociation:
    values = dict(spi=0, suite="AES_128_CBC_SHA", scope=1, mn_id="mn@example.org",
                  validity_end=hours_from_now(1), **KEYS)
    values.update(changes)
    return SecurityAssociation(**values)


def hours_from_now(hours: float) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=hours)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/sa.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    with open_store(store_url) as opened:
        yield opened


# -- SAs -------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=40)
keys = st.binary(max_size=32)
optional_ip6 = st.none() | st.ip_addresses(v=6)
optional_ip4 = st.none() | st.ip_addresses(v=4)
templates = st.builds(
    SecurityAssociation, spi=st.just(0), suite=texts, mn_to_ha_ikey=keys,
    ha_to_mn_ikey=keys, mn_to_ha_ekey=keys, ha_to_mn_ekey=keys,
    validity_end=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1),
                              timezones=st.just(timezone.utc)).map(
                                  lambda moment: moment.replace(microsecond=0)),
    scope=st.sampled_from([0, 1]), mn_id=texts, home_address6=optional_ip6,
    home_address4=optional_ip4, revoked=st.booleans())
home_agents = st.none() | st.builds(HomeAgent, optional_ip6, optional_ip4,
                                    st.integers(0, 65535))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sa=templates, hac_instance=texts, home_agent=home_agents)
def test_every_field_round_trips(store, sa, hac_instance, home_agent):
    record = store.create(sa, hac_instance=hac_instance, home_agent=home_agent)
    assert SPI_MIN <= record.sa.spi <= SPI_MAX
    assert record.sa == sa.replace(spi=record.sa.spi)
    assert store.get(record.sa.spi) == record
    assert record.created.tzinfo is not None


def test_record_survives_reopening(store_url):
    with open_store(store_url) as first:
        record = first.create(template(home_address6=ipaddress.IPv6Address("2001:db8:1::5")),
                              hac_instance="hac-a", home_agent=HA)
    with open_store(store_url) as second:
        assert second.get(record.sa.spi) == record
        assert second.get(record.sa.spi).home_agent == HA


def test_template_must_leave_spi_to_the_store(store):
    with pytest.raises(ValueError, match="spi=0"):
        store.create(template(spi=5), hac_instance="hac", home_agent=None)


@pytest.mark.parametrize("validity_end", [datetime(2030, 1, 1),
                                          datetime(2030, 1, 1, 0, 0, 0, 5, timezone.utc)])
def test_validity_end_must_be_aware_whole_seconds(store, validity_end):
    with pytest.raises(ValueError, match="validity_end"):
        store.create(template(validity_end=validity_end), hac_instance="hac", home_agent=None)


def test_nul_in_text_is_refused_on_every_backend(store):
    with pytest.raises(ValueError, match="NUL"):
        store.create(template(mn_id="mn\x00@example.org"), hac_instance="a", home_agent=None)


@pytest.mark.parametrize("spi", [12345, 0, -1, SPI_MAX + 1, 2**70])
def test_unknown_spi_reads_none_and_revokes_nothing(store, spi):
    assert store.get(spi) is None
    assert store.revoke(spi) is False


def test_one_store_is_safe_to_share_between_threads(store):
    def create_some(_) -> list[int]:
        return [store.create(template(), hac_instance="a", home_agent=None).sa.spi
                for _ in range(50)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        spis = [spi for batch in pool.map(create_some, range(4)) for spi in batch]
    assert len(set(spis)) == 200
    assert sorted(record.sa.spi for record in store.active()) == sorted(spis)


def test_live_spi_is_never_reused_even_when_revoked(store_url):
    with open_store(store_url, spi_source=lambda: 4242) as store:
        first = store.create(template(mn_id="first@example.org"), hac_instance="a",
                             home_agent=None)
        assert first.sa.spi == 4242
        with pytest.raises(SPIExhausted):
            store.create(template(mn_id="second@example.org"), hac_instance="a",
                         home_agent=None)
        assert store.revoke(4242)
        with pytest.raises(SPIExhausted):
            store.create(template(mn_id="second@example.org"), hac_instance="a",
                         home_agent=None)
        assert store.get(4242).sa.mn_id == "first@example.org"


def test_expired_spi_is_reused(store_url):
    with open_store(store_url, spi_source=lambda: 77) as store:
        store.create(template(mn_id="old@example.org", validity_end=hours_from_now(-1),
                              revoked=True), hac_instance="a", home_agent=HA)
        new = store.create(template(mn_id="new@example.org"), hac_instance="b",
                           home_agent=None)
        assert new.sa.spi == 77
        assert store.get(77) == new


def test_spi_outside_range_is_refused_without_leaking_keys(store_url):
    with open_store(store_url, spi_source=lambda: 0) as store:
        with pytest.raises(StoreError) as caught:
            store.create(template(), hac_instance="a", home_agent=None)
    text = str(caught.value)
    assert "allocating an SPI" in text
    assert all(key.hex() not in text and repr(key)[2:10] not in text for key in KEYS.values())
    assert caught.value.__suppress_context__  # the driver's message may quote the row


def test_random_spis_stay_in_range():
    spis = [random_spi() for _ in range(2000)]
    assert min(spis) >= SPI_MIN and max(spis) <= SPI_MAX
    assert len(set(spis)) > 1990


def test_revoke_hides_from_active(store):
    kept = store.create(template(), hac_instance="a", home_agent=None)
    revoked = store.create(template(), hac_instance="a", home_agent=None)
    assert store.revoke(revoked.sa.spi)
    assert store.get(revoked.sa.spi).sa.revoked
    assert [record.sa.spi for record in store.active()] == [kept.sa.spi]
    assert store.count_active() == 1


def test_purge_removes_only_expired(store):
    live = store.create(template(), hac_instance="a", home_agent=None)
    expired = [store.create(template(validity_end=hours_from_now(-2)), hac_instance="a",
                            home_agent=None) for _ in range(3)]
    assert [record.sa.spi for record in store.active()] == [live.sa.spi]
    assert store.count_active() == 1  # expired ones, not yet purged, are not active
    assert sorted(store.purge_expired(), key=lambda record: record.sa.spi) == sorted(
        expired, key=lambda record: record.sa.spi)
    assert all(store.get(record.sa.spi) is None for record in expired)
    assert store.get(live.sa.spi) == live
    assert store.purge_expired() == []


def test_schema_version_is_recorded_and_reopen_is_idempotent(store_url):
    for _ in range(2):
        with open_store(store_url) as store:
            assert store._execute("test", "SELECT version FROM mip6_schema") == [
                (SCHEMA_VERSION,)]
    with open_store(store_url) as store:
        store._execute("test", "UPDATE mip6_schema SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer"):
        open_store(store_url)


def test_first_use_by_many_at_once_creates_the_schema_once(store_url):
    start = threading.Barrier(6)

    def open_and_create() -> int:
        start.wait()
        with open_store(store_url) as store:
            return store.create(template(), hac_instance="a", home_agent=None).sa.spi

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        spis = list(pool.map(lambda _: open_and_create(), range(6)))
    with open_store(store_url) as store:
        assert sorted(record.sa.spi for record in store.active()) == sorted(spis)
        assert store._execute("test", "SELECT version FROM mip6_schema") == [(SCHEMA_VERSION,)]


def test_concurrent_processes_allocate_distinct_spis(store_url):
    processes, each = 4, 2500
    open_store(store_url).close()  # the schema exists before the race starts
    workers = start_workers(store_url, "sa", each, processes)
    spis = [int(spi) for worker in workers for spi in finish(worker)]
    assert len(spis) == processes * each
    assert len(set(spis)) == len(spis)
    assert all(SPI_MIN <= spi <= SPI_MAX for spi in spis)
    with open_store(store_url) as store:
        assert len(store.active()) == len(spis)


def test_acknowledged_sas_survive_kill_9(store_url):
    open_store(store_url).close()
    (worker,) = start_workers(store_url, "sa", 1_000_000, 1)
    acknowledged = [int(worker.stdout.readline()) for _ in range(300)]
    os.kill(worker.pid, signal.SIGKILL)
    rest, _ = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    acknowledged += [int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    with open_store(store_url) as store:
        assert all(store.get(spi) is not None for spi in acknowledged)
        fresh = [store.create(template(), hac_instance="restarted", home_agent=None).sa.spi
                 for _ in range(300)]
    assert not set(fresh) & set(acknowledged)


# -- home addresses --------------------------------------------------------------

def test_home_address_is_stable_per_mn(store_url):
    with open_store(store_url) as store:
        first = store.home_address("a@example.org", "2001:db8:1::/64")
        assert store.home_address("a@example.org", "2001:db8:1::/64") == first
    with open_store(store_url) as store:
        assert store.home_address("a@example.org",
                                  ipaddress.IPv6Network("2001:db8:1::/64")) == first
    assert first in ipaddress.IPv6Network("2001:db8:1::/64")


def test_ipv6_pool_skips_subnet_router_anycast_and_exhausts(store):
    prefix = ipaddress.IPv6Network("2001:db8:2::/126")
    given_out = {store.home_address(f"mn{n}", prefix) for n in range(3)}
    assert given_out == {prefix.network_address + n for n in (1, 2, 3)}
    with pytest.raises(AddressPoolExhausted, match="2001:db8:2::/126"):
        store.home_address("mn3", prefix)


def test_ipv4_pool_skips_network_and_broadcast_and_exhausts(store):
    prefix = ipaddress.IPv4Network("192.0.2.0/29")
    given_out = {store.home_address(f"mn{n}", prefix) for n in range(6)}
    assert given_out == set(prefix.hosts())
    with pytest.raises(AddressPoolExhausted, match="192.0.2.0/29"):
        store.home_address("mn6", prefix)
    assert store.home_address("mn0", prefix) in given_out  # a known MN still gets its own


def test_excluded_addresses_are_never_given(store):
    prefix = ipaddress.IPv4Network("198.51.100.0/30")
    ha = ipaddress.IPv4Address("198.51.100.1")
    assert store.home_address("mn", prefix, exclude=[ha]) == ipaddress.IPv4Address(
        "198.51.100.2")
    with pytest.raises(AddressPoolExhausted):
        store.home_address("other", prefix, exclude=[ha])


def test_overlapping_prefixes_never_share_an_address(store):
    wide = store.home_address("wide", "192.0.2.0/28")
    narrow = [store.home_address(f"narrow{n}", "192.0.2.0/28") for n in range(13)]
    assert len({wide, *narrow}) == 14


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.text(max_size=50))
def test_any_prefix_text_is_used_or_refused_as_config(store, prefix):
    try:
        address = store.home_address("mn@example.org", prefix)
    except ConfigError:
        return
    assert address in ipaddress.ip_network(prefix)


@pytest.mark.parametrize("prefix", ["192.0.2.1/24", "192.0.2.0/31", "192.0.2.7/32",
                                    "2001:db8::/128", "not a prefix"])
def test_prefix_without_hosts_is_a_config_error(store, prefix):
    with pytest.raises(ConfigError, match="home address prefix"):
        store.home_address("mn", prefix)


def test_concurrent_processes_give_distinct_addresses(store_url):
    open_store(store_url).close()
    workers = start_workers(store_url, "198.51.100.0/24", 60, 4)
    outputs = [finish(worker) for worker in workers]
    by_mn = [dict(zip(output[::2], output[1::2])) for output in outputs]
    assert all(assignment == by_mn[0] for assignment in by_mn)  # same MN, same address
    assert len(set(by_mn[0].values())) == 60


# -- SQLite specifics ------------------------------------------------------------

def test_sqlite_files_are_private(tmp_path):
    path = tmp_path / "sa.db"
    with open_store(f"sqlite://{path}") as store:
        store.create(template(), hac_instance="a", home_agent=None)
        for name in ("sa.db", "sa.db-wal", "sa.db-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_sqlite_existing_file_is_tightened(tmp_path):
    path = tmp_path / "sa.db"
    path.touch(mode=0o644)
    open_store(f"sqlite://{path}").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


SWITCH_OUT_OF_WAL = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    print(connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0])
except sqlite3.OperationalError as error:
    print(error)
"""


def test_opening_a_second_store_keeps_the_first_ones_locks(tmp_path):
    # Closing any descriptor of the file drops all of this process's POSIX locks on it:
    # opening it outside SQLite to set its mode let another process switch the database
    # out of WAL under two open stores.
    path = tmp_path / "sa.db"
    with open_store(f"sqlite://{path}") as first, open_store(f"sqlite://{path}") as second:
        first.active(), second.active()
        other = subprocess.run([sys.executable, "-c", SWITCH_OUT_OF_WAL, str(path)],
                               capture_output=True, text=True, timeout=30, check=True)
        assert other.stdout.strip() == "database is locked"


def test_stores_open_a_database_one_at_a_time(tmp_path):
    # Two connections switching a fresh file to WAL at once: SQLite refuses one at once
    # with SQLITE_BUSY, busy timeout or not. Each opening holds a flock on the directory.
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    opened = threading.Event()
    opener = threading.Thread(
        target=lambda: (open_store(f"sqlite://{tmp_path}/sa.db").close(), opened.set()))
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        opener.start()
        assert not opened.wait(0.5)  # still waiting: the safe direction under any load
        assert not (tmp_path / "sa.db").exists()
    finally:
        os.close(directory)
    opener.join(30)
    assert opened.is_set()


def test_sqlite_commits_are_full_sync_wal(tmp_path):
    open_store(f"sqlite://{tmp_path}/sa.db").close()
    assert sqlite3.connect(tmp_path / "sa.db").execute("PRAGMA journal_mode").fetchone() == (
        "wal",)


@pytest.mark.parametrize("url, problem", [
    ("sqlite://relative/sa.db", "three slashes"),
    ("sqlite:relative.db", "three slashes"),
    ("sqlite:////no/such/dir/sa.db", "does not exist"),
    ("sqlite:///tmp/sa.db?mode=ro", "no query"),
    ("mysql://u@h/db", "sqlite:/// or postgresql://"),
    ("", "sqlite:/// or postgresql://"),
    ("postgresql://u:s3cret@h:5432/db?bogus_option=1", "not a valid PostgreSQL URL"),
])
def test_bad_urls_are_config_errors(url, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        open_store(url)
    assert "s3cret" not in str(caught.value)


@given(url=st.text(max_size=60).filter(
    lambda url: not url.lower().startswith(("sqlite:///", "postgresql://", "postgres://"))))
def test_any_other_url_text_is_a_config_error(url):
    with pytest.raises(ConfigError):
        open_store(url)


def test_unreachable_postgres_names_the_server_not_the_password():
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}/db") as caught:
        open_store(f"postgresql://user:s3cret@127.0.0.1:{port}/db")
    assert "s3cret" not in str(caught.value)


def test_store_repr_holds_no_secrets(tmp_path):
    with open_store(f"sqlite://{tmp_path}/sa.db") as store:
        assert repr(store) == f"SQLiteStore('{tmp_path}/sa.db')"
        record = store.create(template(), hac_instance="a", home_agent=None)
    assert KEYS["mn_to_ha_ikey"].hex() not in repr(record)
    assert isinstance(record, SARecord)


def test_group_commit_makes_its_sas_durable_together(store_url):
    with open_store(store_url) as store:
        with store.group_commit() as each:
            with each():
                first = store.create(template(), hac_instance="h", home_agent=HA)
            with each():
                second = store.create(template(mn_id="other@example.org"), hac_instance="h",
                                      home_agent=None)
    with open_store(store_url) as reopened:
        assert reopened.get(first.sa.spi) == first
        assert reopened.get(second.sa.spi) == second


def test_a_failing_item_undoes_only_its_own_writes(store):
    prefix = ipaddress.IPv6Network("2001:db8:7::/126")  # three addresses
    with store.group_commit() as each:
        with each():
            kept = store.create(template(), hac_instance="h", home_agent=None)
        with pytest.raises(RuntimeError):
            with each():
                undone = store.create(template(mn_id="undone@example.org"), hac_instance="h",
                                      home_agent=None)
                store.home_address("undone@example.org", prefix)
                raise RuntimeError("this item fails after its writes")
        with each():
            address = store.home_address("later@example.org", prefix)
    assert store.get(kept.sa.spi) == kept
    assert store.get(undone.sa.spi) is None
    # the failed item's address went back to the pool: the two others are still free
    given = {store.home_address(f"mn{n}@example.org", prefix) for n in range(2)}
    assert address not in given and len(given) == 2


def test_a_group_that_raises_stores_nothing(store):
    with pytest.raises(RuntimeError):
        with store.group_commit() as each:
            with each():
                created = store.create(template(), hac_instance="h", home_agent=None)
            raise RuntimeError("before the commit")
    assert store.get(created.sa.spi) is None
    assert store.active() == []


def test_other_threads_wait_for_a_group_commit(store):
    created = []
    with store.group_commit() as each:
        with each():
            created.append(store.create(template(), hac_instance="h", home_agent=None))
        reader = threading.Thread(target=lambda: created.append(store.active()))
        reader.start()
        reader.join(0.2)
        assert reader.is_alive()  # blocked until the commit
    reader.join(10)
    assert created[1] == [created[0]]


# -- the outbox of SA delivery, ticket keys, HA load ---------------------------------

def far() -> int:
    return int(datetime.now(timezone.utc).timestamp()) + 3600


def test_an_owed_push_is_committed_with_its_sa_and_claimed_once(store):
    record = store.create(template(), hac_instance="hac", home_agent=HA,
                          outbox=Outbox("ha1.example.net"))
    assert store.outbox_size() == 1
    assert store.claim_outbox("hac-b", ["ha2.example.net"], far(), 10) == []
    (entry,) = store.claim_outbox("hac-a", ["ha1.example.net"], far(), 10)
    assert entry == OutboxEntry(record, revoke=False)
    assert store.claim_outbox("hac-b", ["ha1.example.net"], far(), 10) == []  # held by a
    assert store.outbox_done("hac-b", [(record.sa.spi, False)]) == 0
    assert store.outbox_done("hac-a", [(record.sa.spi, False), (4242, True)]) == 1
    assert store.outbox_done("hac-a", []) == 0
    assert store.outbox_size() == 0


def test_a_lapsed_or_released_claim_is_taken_by_another_hac(store):
    record = store.create(template(), hac_instance="hac", home_agent=HA,
                          outbox=Outbox("ha1", claimed_by="hac-a", claimed_until=far()))
    assert store.claim_outbox("hac-b", ["ha1"], far(), 10) == []
    assert store.renew_outbox("hac-a", [record.sa.spi, 4242], 1) == 1  # lapsed long ago
    assert store.renew_outbox("hac-a", [], far()) == 0
    assert [e.record for e in store.claim_outbox("hac-b", ["ha1"], far(), 10)] == [record]
    store.release_outbox("hac-b", record.sa.spi)
    assert [e.record for e in store.claim_outbox("hac-a", ["ha1"], far(), 10)] == [record]
    store.release_outbox("hac-a")
    assert len(store.claim_outbox("hac-c", ["ha1"], far(), 10)) == 1


def test_a_revocation_replaces_the_owed_push_and_survives_reopening(store_url):
    with open_store(store_url) as store:
        record = store.create(template(), hac_instance="hac", home_agent=HA,
                              outbox=Outbox("ha1", claimed_by="hac-a", claimed_until=far()))
        assert store.revoke(record.sa.spi, outbox=Outbox("ha1"))
        assert not store.revoke(4242, outbox=Outbox("ha1"))
        assert store.outbox_done("hac-a", [(record.sa.spi, False)]) == 0  # push's late ack
    with open_store(store_url) as store:  # a HAC restart
        (entry,) = store.claim_outbox("hac-b", ["ha1"], far(), 10)
        assert entry.revoke and entry.record.sa.revoked
        assert store.outbox_done("hac-b", [(record.sa.spi, True)]) == 1


def test_a_stale_owed_message_is_dropped_not_sent(store):
    record = store.create(template(), hac_instance="hac", home_agent=HA, outbox=Outbox("ha1"))
    store.revoke(record.sa.spi)  # revoked without a revocation owed: the push is stale
    assert store.claim_outbox("hac-a", ["ha1"], far(), 10) == []
    assert store.outbox_size() == 0


def test_the_owed_push_of_a_purged_sa_goes_with_it(store):
    store.create(template(validity_end=hours_from_now(-1)), hac_instance="hac", home_agent=HA,
                 outbox=Outbox("ha1"))
    assert len(store.purge_expired()) == 1
    assert store.outbox_size() == 0


def test_claims_take_at_most_the_limit_and_concurrent_claimers_share_nothing(store_url):
    with open_store(store_url) as store:
        for _ in range(40):
            store.create(template(), hac_instance="hac", home_agent=HA, outbox=Outbox("ha1"))
        assert len(store.claim_outbox("hac-x", ["ha1"], far(), 5)) == 5
        store.release_outbox("hac-x")

    def claim_all(name: str) -> list[int]:
        with open_store(store_url) as own:
            spis = []
            while entries := own.claim_outbox(name, ["ha1"], far(), 3):
                spis += [entry.record.sa.spi for entry in entries]
            return spis

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(claim_all, [f"hac-{n}" for n in range(4)]))
    spis = [spi for each in claimed for spi in each]
    assert len(spis) == 40 and len(set(spis)) == 40


def test_every_store_user_gets_the_same_ticket_key_per_period(store_url):
    with open_store(store_url) as one, open_store(store_url) as other:
        first = one.ticket_key(7200, 3600)
        assert len(first) == TICKET_KEY_SIZE
        assert other.ticket_key(7200, 3600) == first
        second = other.ticket_key(10800, 3600)
        assert second != first and one.ticket_key(10800, 3600) == second
        one.ticket_key(14400, 3600)  # deletes the keys of periods before 10800
        assert one.ticket_key(7200, 3600) != first


def test_load_counts_active_sas_per_home_agent(store):
    other = HomeAgent(ipaddress.IPv6Address("2001:db8::2"), None, 7872)
    for agent in (HA, HA, other, None):
        store.create(template(), hac_instance="hac", home_agent=agent)
    revoked = store.create(template(), hac_instance="hac", home_agent=other)
    store.revoke(revoked.sa.spi)
    store.create(template(validity_end=hours_from_now(-1)), hac_instance="hac", home_agent=other)
    assert store.home_agent_load() == {HA: 2, other: 1}


def test_an_ha_is_unreachable_when_no_live_report_reaches_it(store):
    store.report_routes("hac-a", {"ha1": True, "ha2": False}, far())
    store.report_routes("hac-b", {"ha1": False, "ha2": False, "ha3": True}, far())
    assert store.unreachable() == {"ha2"}
    store.report_routes("hac-b", {"ha2": True}, far())
    assert store.unreachable() == set()
    store.report_routes("hac-b", {"ha2": True, "ha3": True}, 1)  # hac-b's reports lapsed
    assert store.unreachable() == {"ha2"}
    store.report_routes("hac-a", {}, far())
    store.report_routes("hac-a", {"ha1": True, "ha2": False}, 1)
    store.report_routes("hac-b", {"ha1": False}, 1)
    assert store.unreachable() == set()  # nobody live reports on any HA


def test_an_owed_push_in_a_group_commit_is_committed_with_its_sa(store_url):
    with open_store(store_url) as store:
        with store.group_commit() as each:
            with each():
                kept = store.create(template(), hac_instance="h", home_agent=HA,
                                    outbox=Outbox("ha1"))
            with pytest.raises(RuntimeError):
                with each():
                    store.create(template(), hac_instance="h", home_agent=HA,
                                 outbox=Outbox("ha1"))
                    raise RuntimeError("this item fails after its writes")
    with open_store(store_url) as reopened:
        (entry,) = reopened.claim_outbox("hac-a", ["ha1"], far(), 10)
        assert entry.record == kept and reopened.outbox_size() == 1
