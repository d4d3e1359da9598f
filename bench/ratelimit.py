"""Per-source rate limit: the HAC's per-process token bucket against one shared by every
HAC through the store (docs/performance.md, "Per-source rate limit"; the decision is in
docs/operations.md, "Several HACs").

The per-process check is :class:`hac.ratelimit.RateLimiter`'s ``allow``. A shared one
has to keep the bucket where every HAC sees it: here one upsert per new connection
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, the token bucket in SQL, committed
as every store write is) on the store's own connection, SQLite (WAL, synchronous=FULL)
and PostgreSQL on loopback, also with ``synchronous_commit = off`` (a bucket need not
survive a crash, so the kindest case for sharing). Rounds alternate and the best of each is kept; ``ratio`` is
the shared check's time over the per-process one's.

Usage: .venv/bin/python bench/ratelimit.py [--checks N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench._common import emit  # noqa: E402

from aaa_mip6.store import open_store  # noqa: E402
from hac.ratelimit import RateLimiter  # noqa: E402

ROUNDS = 3
SOURCES = 1000  # distinct sources, in turn
RATE, BURST = 20.0, 40  # the defaults of limits.rate and limits.burst

_TABLE = ("CREATE TABLE IF NOT EXISTS bench_rate (source TEXT PRIMARY KEY, "
          "tokens DOUBLE PRECISION NOT NULL, stamp DOUBLE PRECISION NOT NULL)")
_TAKE = ("INSERT INTO bench_rate (source, tokens, stamp) VALUES (?, ?, ?) "
         "ON CONFLICT (source) DO UPDATE SET "
         "tokens = MIN(?, bench_rate.tokens + (excluded.stamp - bench_rate.stamp) * ?) - 1, "
         "stamp = excluded.stamp RETURNING tokens")


def per_process(checks: int) -> float:
    limiter = RateLimiter(RATE, BURST, time.monotonic)
    sources = [f"192.0.2.{n % 250}" if n % 2 else f"2001:db8:{n:x}::1" for n in range(SOURCES)]
    started = time.perf_counter()
    for number in range(checks):
        limiter.allow(sources[number % SOURCES])
    return (time.perf_counter() - started) / checks


def shared(store, checks: int, least: str) -> float:
    store._execute("bench", _TABLE)
    take = _TAKE.replace("MIN(", least + "(")
    started = time.perf_counter()
    for number in range(checks):
        now = time.time()
        store._execute("bench", take, (f"src{number % SOURCES}", BURST - 1, now, BURST, RATE))
    return (time.perf_counter() - started) / checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args()
    from tests.integration.postgres import start_postgres
    postgres = start_postgres()
    try:
        with tempfile.TemporaryDirectory() as directory, \
                open_store(f"sqlite:///{directory}/bench.db") as sqlite, \
                open_store(postgres.create_database()) as pg, \
                open_store(postgres.create_database()) as pg_async:
            pg_async._execute("bench", "SET synchronous_commit = off")
            best = {"per-process": [], "sqlite": [], "postgresql": [],
                    "postgresql, synchronous_commit off": []}
            for _ in range(ROUNDS):
                best["per-process"].append(per_process(args.checks * 10))
                best["sqlite"].append(shared(sqlite, args.checks, "MIN"))
                best["postgresql"].append(shared(pg, args.checks, "LEAST"))
                best["postgresql, synchronous_commit off"].append(
                    shared(pg_async, args.checks, "LEAST"))
    finally:
        postgres.stop()
    baseline = min(best["per-process"])
    emit("rate-limit check", store="none (per process)", us=round(baseline * 1e6, 2), ratio=1.0)
    for name in ("sqlite", "postgresql", "postgresql, synchronous_commit off"):
        seconds = min(best[name])
        emit("rate-limit check", store=f"shared in {name}", us=round(seconds * 1e6, 1),
             ratio=round(seconds / baseline, 1), checks_per_second=round(1 / seconds))


if __name__ == "__main__":
    main()
