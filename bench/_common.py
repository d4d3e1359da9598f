"""Helpers shared by benchmarks: JSON figure lines, latency percentiles, and CPU time and
resident memory of other processes read from /proc (Linux), so a benchmark can say how
the machine's cores were shared between a server and its load driver.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def emit(figure: str, **fields) -> None:
    """Print one figure as one JSON line, at once (a run may be cut short)."""
    print(json.dumps({"figure": figure, **fields}), flush=True)


def latency_summary(latencies: Iterable[float]) -> dict:
    """p50 and p99 of durations in seconds, in milliseconds (nearest rank); empty -> None."""
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None}

    def rank(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 2)

    return {"p50_ms": rank(0.50), "p99_ms": rank(0.99)}


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (e.g. a server's forked workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(_stat_fields(int(entry))[1])
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile
            parents.setdefault(parent, []).append(int(entry))
    tree, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        tree.append(current)
        waiting.extend(parents.get(current, ()))
    return tree


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time the processes have used so far (exited ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident set size of the processes, summed (shared pages count once per process)."""
    total = 0
    for pid in pids:
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
        total += resident * _PAGE_SIZE
    return total
