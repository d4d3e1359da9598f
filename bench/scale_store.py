"""The SA store at scale: 1,000 against 1,000,000 SAs (docs/scaling.md, "Measurements").

One PostgreSQL cluster (started here, as the integration tests start theirs) holds two
databases made by the store itself: ``small`` with ``--small`` SAs and ``large`` with
``--rows`` SAs, each SA with its home-address row, bulk-loaded with ``generate_series``
(SPIs spread evenly over 1..2^28-1, keys from sha256, validity ends in the next day).
Then, in alternating rounds (``--rounds``), on each database through the store's own
code (:class:`aaa_mip6.store.postgres.PostgresStore`, one connection, autocommit, the
server's default ``synchronous_commit = on``):

- ``store_bootstrap``: what a bootstrap asks of the store, a new MN's home address
  (``home_address``) then its SA with a fresh SPI (``create``);
- ``store_spi_allocation``: ``create`` alone (one ``INSERT ... ON CONFLICT`` upsert);
- ``store_sa_lookup``: ``get`` of a random held SPI (what an HA's query costs the HAC);

each as median and p99 over the round's operations, then the median over rounds; the
``ratio`` is the large database's figure over the small one's (1.0: size costs nothing).
Once per database: ``store_size`` (bytes on disk of the SA and home-address tables with
their indexes, per SA), ``store_write_ceiling`` (``--threads`` stores creating SAs at once
for ``--seconds``: the commits per second one primary takes on this machine), and
the same from ``pgbench`` (a C client running the same upsert: the server's rate rather
than the Python client's), ``store_active_listing`` (``SAStore.active()``, which a HAC's SA delivery runs at start,
at ``--active-rows`` SAs, since listing a million builds a million Python records).
With ``--sqlite`` the same single-connection figures for SQLite files (bulk-loaded with a
recursive CTE).

Usage: .venv/bin/python bench/scale_store.py [--rows 1000000] [--small 1000] [--ops 200]
       [--rounds 5] [--threads 8] [--seconds 5] [--active-rows 100000] [--no-sqlite]
Takes 2-4 minutes on the 2-core development VM.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402  (tests.integration.postgres says "not installed" with it)

from aaa_mip6.iana import MIPV6TLS_PORT  # noqa: E402
from aaa_mip6.sa import SPI_MAX, HomeAgent, SecurityAssociation  # noqa: E402
from aaa_mip6.store import UNALLOCATED_SPI, open_store  # noqa: E402
from aaa_mip6.suites import SUITES, new_keys  # noqa: E402
from bench._common import emit  # noqa: E402

HA = HomeAgent(IPv6Address("2001:db8:ffff::1"), None, MIPV6TLS_PORT)
BOOT_PREFIX = "2001:db8:2::/64"  # new MNs' home addresses; the loaded rows use 2001:db8:1::
SUITE = "AES_128_CBC_SHA"

# One row per SA, i = 1..N: SPI i * stride, keys of AES_128_CBC_SHA's lengths (20, 16).
_PG_LOAD_SA = """
INSERT INTO mip6_sa (spi, mn_id, suite, scope, mn_to_ha_ikey, ha_to_mn_ikey, mn_to_ha_ekey,
                     ha_to_mn_ekey, validity_end, home_address6, home_address4, revoked,
                     hac_instance, ha_address6, ha_address4, ha_port, created)
SELECT i * %(stride)s, 'mn' || i || '@example.org', 'AES_128_CBC_SHA', 1,
       substring(sha256(int4send(i)) from 1 for 20),
       substring(sha256(int4send(-i)) from 1 for 20),
       substring(sha256(int4send(i)) from 21 for 12) || substring(md5(i::text)::bytea from 1 for 4),
       substring(sha256(int4send(-i)) from 21 for 12) || substring(md5(i::text)::bytea from 5 for 4),
       %(now)s + 3600 + (i::bigint * 7919) %% 82800,
       '2001:db8:1::' || to_hex(i >> 16) || ':' || to_hex(i & 65535), NULL, 0,
       'hac-' || (i %% 4), '2001:db8:ffff::1', NULL, %(port)s, %(now)s
FROM generate_series(1, %(rows)s) AS i
"""
_PG_LOAD_HOME = """
INSERT INTO mip6_home_address (prefix, mn_id, address)
SELECT '2001:db8:1::/64', 'mn' || i || '@example.org',
       '2001:db8:1::' || to_hex(i >> 16) || ':' || to_hex(i & 65535)
FROM generate_series(1, %(rows)s) AS i
"""
_SQLITE_LOAD_SA = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
INSERT INTO mip6_sa (spi, mn_id, suite, scope, mn_to_ha_ikey, ha_to_mn_ikey, mn_to_ha_ekey,
                     ha_to_mn_ekey, validity_end, home_address6, home_address4, revoked,
                     hac_instance, ha_address6, ha_address4, ha_port, created)
SELECT i * :stride, 'mn' || i || '@example.org', 'AES_128_CBC_SHA', 1, randomblob(20),
       randomblob(20), randomblob(16), randomblob(16), :now + 3600 + (i * 7919) % 82800,
       printf('2001:db8:1::%x:%x', i >> 16, i & 65535), NULL, 0, 'hac-' || (i % 4),
       '2001:db8:ffff::1', NULL, :port, :now
FROM n
"""
_SQLITE_LOAD_HOME = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
INSERT INTO mip6_home_address (prefix, mn_id, address)
SELECT '2001:db8:1::/64', 'mn' || i || '@example.org', printf('2001:db8:1::%x:%x', i >> 16, i & 65535)
FROM n
"""


def stride(rows: int) -> int:
    return SPI_MAX // rows


def template(mn_id: str, home_address6=None) -> SecurityAssociation:
    keys = new_keys(SUITES[SUITE])
    return SecurityAssociation(
        spi=UNALLOCATED_SPI, suite=SUITE, mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey,
        validity_end=(datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0),
        scope=1, mn_id=mn_id, home_address6=home_address6)


class Database:
    """One store and what was loaded into it."""

    def __init__(self, name: str, kind: str, url: str, rows: int):
        self.name, self.kind, self.url, self.rows = name, kind, url, rows
        self.store = open_store(url)
        self.counter = 0
        self.samples: dict[str, list[list[float]]] = {}  # figure -> per-round latencies

    def new_mn(self) -> str:
        self.counter += 1
        return f"bench-{os.getpid()}-{self.counter}@example.org"

    def run_round(self, ops: int, rng: random.Random) -> None:
        store = self.store
        timed: dict[str, list[float]] = {"store_bootstrap": [], "store_spi_allocation": [],
                                         "store_sa_lookup": []}
        for _ in range(ops):
            mn_id = self.new_mn()
            started = time.perf_counter()
            address = store.home_address(mn_id, BOOT_PREFIX)
            store.create(template(mn_id, address), hac_instance="bench", home_agent=HA)
            timed["store_bootstrap"].append(time.perf_counter() - started)
            sa = template(self.new_mn())
            started = time.perf_counter()
            store.create(sa, hac_instance="bench", home_agent=HA)
            timed["store_spi_allocation"].append(time.perf_counter() - started)
            spi = rng.randint(1, self.rows) * stride(self.rows)
            started = time.perf_counter()
            found = store.get(spi)
            timed["store_sa_lookup"].append(time.perf_counter() - started)
            assert found is not None and found.sa.spi == spi
        for figure, latencies in timed.items():
            self.samples.setdefault(figure, []).append(latencies)

    def summary(self, figure: str) -> dict:
        rounds = self.samples[figure]
        p50 = statistics.median(statistics.median(r) for r in rounds)
        p99 = statistics.median(sorted(r)[int(len(r) * 0.99)] for r in rounds)
        return {"p50_ms": round(p50 * 1000, 3), "p99_ms": round(p99 * 1000, 3),
                "round_p50_ms": [round(statistics.median(r) * 1000, 3) for r in rounds]}


def write_ceiling(url: str, threads: int, seconds: float) -> dict:
    """SAs created per second by ``threads`` stores (connections) at once."""
    stores = [open_store(url) for _ in range(threads)]
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def work(index: int) -> None:
        store = stores[index]
        while time.monotonic() < deadline:
            store.create(template(f"ceiling-{index}-{counts[index]}@example.org"),
                         hac_instance="bench", home_agent=HA)
            counts[index] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    for store in stores:
        store.close()
    return {"threads": threads, "creates_per_s": round(sum(counts) / elapsed)}


# pgbench's version of create(): the same upsert of a random SPI, from a C client, so the
# figure is the server's commit rate rather than the Python client's.
_PGBENCH_CREATE = """\\set spi random(1, 268435455)
\\set port PORT
INSERT INTO mip6_sa (spi, mn_id, suite, scope, mn_to_ha_ikey, ha_to_mn_ikey, mn_to_ha_ekey, \
ha_to_mn_ekey, validity_end, home_address6, home_address4, revoked, hac_instance, \
ha_address6, ha_address4, ha_port, created) VALUES (:spi, 'pgbench' || :spi || '@example.org', \
'AES_128_CBC_SHA', 1, sha256(int4send(:spi)), sha256(int4send(-:spi)), md5(:spi::text)::bytea, \
md5((-:spi)::text)::bytea, extract(epoch from now())::bigint + 7200, '2001:db8:3::1', NULL, 0, \
'pgbench', '2001:db8:ffff::1', NULL, :port, extract(epoch from now())::bigint) \
ON CONFLICT (spi) DO UPDATE SET mn_id = excluded.mn_id \
WHERE mip6_sa.validity_end <= extract(epoch from now())::bigint RETURNING spi;
"""


def pgbench_ceiling(server, dbname: str, clients: int, seconds: float) -> dict | None:
    """SA upserts per second from ``clients`` pgbench connections (None: no pgbench)."""
    import re
    import subprocess

    binary = server.bin_dir / "pgbench"
    if not binary.exists():
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(_PGBENCH_CREATE.replace("PORT", str(MIPV6TLS_PORT)))
        script.flush()
        result = subprocess.run(
            [str(binary), "-n", "-f", script.name, "-c", str(clients), "-j", "2",
             "-T", str(max(1, round(seconds))), "-h", server.host, "-p", str(server.port),
             "-U", "postgres", dbname], capture_output=True, text=True, timeout=seconds + 60)
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", result.stdout)
    if found is None:
        raise RuntimeError(f"pgbench: {result.stdout[-500:]} {result.stderr[-500:]}")
    return {"clients": clients, "creates_per_s": round(float(found.group(1)))}


def pg_size(connection) -> int:
    return connection.execute(
        "SELECT pg_total_relation_size('mip6_sa') + pg_total_relation_size('mip6_home_address')"
    ).fetchone()[0]


def run_postgres(args, rng: random.Random) -> None:
    import psycopg

    from tests.integration.postgres import start_postgres

    server = start_postgres()
    try:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            emit("postgres_settings", **{name: admin.execute(f"SHOW {name}").fetchone()[0]
                                         for name in ("server_version", "fsync",
                                                      "synchronous_commit", "wal_sync_method",
                                                      "shared_buffers")})
        databases = {}
        for name, rows in (("small", args.small), ("large", args.rows),
                           ("active", args.active_rows)):
            with psycopg.connect(server.url(), autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
            database = Database(name, "postgresql", server.url(name), rows)
            started = time.monotonic()
            with psycopg.connect(database.url, autocommit=True) as connection:
                params = {"rows": rows, "stride": stride(rows), "now": int(time.time()),
                      "port": MIPV6TLS_PORT}
                connection.execute(_PG_LOAD_SA, params)
                connection.execute(_PG_LOAD_HOME, params)
                connection.execute("VACUUM ANALYZE")
                size = pg_size(connection)
            emit("store_bulk_load", store="postgresql", database=name, sas=rows,
                 seconds=round(time.monotonic() - started, 1))
            emit("store_size", store="postgresql", database=name, sas=rows, bytes=size,
                 bytes_per_sa=round(size / rows))
            databases[name] = database
        compare(databases["small"], databases["large"], args, rng)
        for name in ("small", "large"):
            emit("store_write_ceiling", store="postgresql", database=name,
                 sas=databases[name].rows, client="python",
                 **write_ceiling(databases[name].url, args.threads, args.seconds))
            ceiling = pgbench_ceiling(server, name, args.threads, args.seconds)
            if ceiling is not None:
                emit("store_write_ceiling", store="postgresql", database=name,
                     sas=databases[name].rows, client="pgbench", **ceiling)
        listing = databases["active"]
        for database in (databases["small"], listing):
            started = time.perf_counter()
            count = len(database.store.active())
            elapsed = time.perf_counter() - started
            emit("store_active_listing", store="postgresql", database=database.name,
                 sas=count, seconds=round(elapsed, 3), us_per_sa=round(elapsed / count * 1e6, 2))
        for database in databases.values():
            database.store.close()
    finally:
        server.stop()


def compare(small: Database, large: Database, args, rng: random.Random) -> None:
    """Alternate rounds on the two databases; one line per figure with the ratio."""
    for _ in range(args.rounds):
        for database in (small, large):
            database.run_round(args.ops, rng)
    for figure in ("store_bootstrap", "store_spi_allocation", "store_sa_lookup"):
        baseline, measured = small.summary(figure), large.summary(figure)
        emit(figure, store=small.kind, sas=large.rows, baseline_sas=small.rows,
             **measured, baseline_p50_ms=baseline["p50_ms"],
             baseline_p99_ms=baseline["p99_ms"],
             baseline_round_p50_ms=baseline["round_p50_ms"],
             ratio=round(measured["p50_ms"] / baseline["p50_ms"], 2),
             ops_per_round=args.ops, rounds=args.rounds)


def run_sqlite(args, rng: random.Random, directory: Path) -> None:
    import sqlite3

    databases = {}
    for name, rows in (("small", args.small), ("large", args.rows)):
        path = directory / f"{name}.db"
        open_store(f"sqlite:///{path}").close()  # the store's own schema
        started = time.monotonic()
        with sqlite3.connect(path) as connection:
            params = {"rows": rows, "stride": stride(rows), "now": int(time.time()),
                      "port": MIPV6TLS_PORT}
            connection.execute(_SQLITE_LOAD_SA, params)
            connection.execute(_SQLITE_LOAD_HOME, params)
        connection.close()
        size = sum(p.stat().st_size for p in directory.glob(f"{name}.db*"))
        emit("store_bulk_load", store="sqlite", database=name, sas=rows,
             seconds=round(time.monotonic() - started, 1))
        emit("store_size", store="sqlite", database=name, sas=rows, bytes=size,
             bytes_per_sa=round(size / rows))
        databases[name] = Database(name, "sqlite", f"sqlite:///{path}", rows)
    compare(databases["small"], databases["large"], args, rng)
    for database in databases.values():
        database.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--ops", type=int, default=200, help="operations of each kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--active-rows", type=int, default=100_000)
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    rng = random.Random()
    emit("machine", cpus=os.cpu_count(), load_average=[round(x, 2) for x in os.getloadavg()])
    try:
        run_postgres(args, rng)
    except pytest.skip.Exception as missing:  # start_postgres's way of saying so
        emit("skipped", store="postgresql", reason=str(missing))
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="aaa-mip6-scale-") as directory:
            run_sqlite(args, rng, Path(directory))
    emit("machine_after", load_average=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    main()
