"""``mip6-load``'s sans-I/O core: when each simulated MN starts, and what the run measured.

:class:`Scheduler` hands out start slots at a fixed rate (slot k at k / rate seconds,
before the end of the run): without ``repeat`` each MN starts once, in order; with it
the slots go on to the end of the run, each to the next MN (round robin) that is not
busy, and a slot that finds every MN busy is counted as ``missed`` (the MNs cannot keep
up with the rate). :class:`Recorder` keeps one :class:`Event` per attempt and turns
them into the progress line, the final report and the per-second timeline the plot
draws. The shell (:mod:`load.runner`) reads the clock and runs the MNs.

Percentiles are nearest-rank (the smallest sample at or above the fraction: p99 of 100
samples is the 99th smallest), so every figure is a latency some attempt really had.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

OK = "ok"
STEPS = ("bootstrap", "register", "rebootstrap", "reregister")
"""What an event times: the first bootstrap, the first registration with the HA, a
rebootstrap the session asked for (176, SA end, an HA gone silent), and a registration
that restored a lost binding: under the SA a rebootstrap gave (timed from the session's
request), or after the HA's Binding Error (it had lost the binding: timed from the
keep-alive that drew the error)."""
PERCENTILES = (50, 90, 99)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile ``fraction`` (0..100) of ascending ``ordered`` (None if empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Scheduler:
    """Start slots at ``rate`` per second for ``duration`` seconds over the MNs ``indices``."""

    def __init__(self, indices: Sequence[int], rate: float, duration: float, *,
                 repeat: bool = False):
        if rate <= 0 or duration <= 0 or not indices:
            raise ValueError("a schedule needs MNs, a positive rate and a positive duration")
        self.indices = list(indices)
        self.rate = rate
        self.duration = duration
        self.repeat = repeat
        self.slots = 0  # slots handed out (started or missed)
        self.missed = 0
        self._busy: set[int] = set()
        self._cursor = 0  # the next MN (position in indices) to consider

    def next_due(self) -> float | None:
        """When the next slot is due (seconds from the start), or None when none is left."""
        if not self.repeat and self.slots >= len(self.indices):
            return None
        due = self.slots / self.rate
        return due if due < self.duration else None

    def due(self, now: float) -> list[int]:
        """The MNs to start at ``now`` (seconds from the start): every slot due by then."""
        started = []
        while (slot := self.next_due()) is not None and slot <= now:
            self.slots += 1
            index = self._pick()
            if index is None:
                self.missed += 1
                continue
            self._busy.add(index)
            started.append(index)
        return started

    def _pick(self) -> int | None:
        for _ in range(len(self.indices)):
            index = self.indices[self._cursor]
            self._cursor = (self._cursor + 1) % len(self.indices)
            if index not in self._busy:
                return index
            if not self.repeat:
                return None
        return None

    def done(self, index: int) -> None:
        """MN ``index`` finished its attempt (or gave up its binding): it may start again."""
        self._busy.discard(index)


@dataclass(frozen=True)
class Event:
    """One attempt: ``t`` seconds after the start of the run (when it ended), the MN, the
    step (:data:`STEPS`), ``status`` (``ok``, the HAC's status code, the BA status, or a
    reason such as ``timeout``, ``connect``, ``no-answer``), where a failed bootstrap
    stopped (``at``: connect, tls, init, eap, done), the SPI and HA of an SA or
    binding, how long the attempt took, and the HAC a (re)bootstrap last tried."""

    t: float
    mn: str
    step: str
    status: str
    latency_s: float
    spi: int | None = None
    ha: str | None = None
    at: str | None = None
    hac: str | None = None

    def as_json(self) -> dict:
        record = asdict(self)
        record["t"] = round(self.t, 4)
        record["latency_s"] = round(self.latency_s, 6)
        return record

    @classmethod
    def from_json(cls, record: dict) -> Event:
        return cls(**{name: record.get(name) for name in cls.__dataclass_fields__})


def _summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    summary = {f"p{q}": percentile(ordered, q) for q in PERCENTILES}
    summary["max"] = ordered[-1] if ordered else None
    summary["mean"] = sum(ordered) / len(ordered) if ordered else None
    return {name: None if value is None else round(value, 6) for name, value in summary.items()}


class Recorder:
    """Every event of a run, and what is read from them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.counters: Counter[str] = Counter()  # keepalive-sent, keepalive-refused, missed

    def record(self, event: Event) -> None:
        self.events.append(event)

    def extend(self, events: Iterable[Event]) -> None:
        self.events.extend(events)

    def _by_step(self, status_ok: bool) -> Counter[str]:
        return Counter(event.step for event in self.events if (event.status == OK) == status_ok)

    def latencies(self, step: str, since: float = -math.inf) -> list[float]:
        return [event.latency_s for event in self.events
                if event.step == step and event.status == OK and event.t >= since]

    def progress(self, now: float, window: float = 5.0, registered: int | None = None) -> str:
        """One line: time, bootstraps ok and failed, the rate over the last ``window``
        seconds, bootstrap p50/p99 in ms, and (with registration) MNs registered now."""
        ok = self._by_step(True)
        failed = sum(self._by_step(False).values())
        recent = sum(1 for event in self.events if event.step == "bootstrap"
                     and event.status == OK and event.t > now - window)
        ordered = sorted(self.latencies("bootstrap"))
        p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
        line = (f"t={now:.0f}s bootstraps ok {ok['bootstrap']} failed {failed} "
                f"rate {recent / min(window, max(now, 1e-9)):.1f}/s "
                f"p50 {_ms(p50)} p99 {_ms(p99)}")
        if registered is not None:
            line += f" registered {registered}"
        return line

    def report(self, *, elapsed: float, settings: dict, registered: int | None = None,
               mns: int = 0) -> dict:
        """The final report (JSON-ready): counts, rates, latency percentiles, failures."""
        ok, failed = self._by_step(True), self._by_step(False)
        by_status: Counter[str] = Counter()
        by_step: Counter[str] = Counter()
        for event in self.events:
            if event.status != OK:
                by_status[event.status] += 1
                by_step[event.step + (f":{event.at}" if event.at else "")] += 1
        report = {
            "settings": settings,
            "elapsed_s": round(elapsed, 3),
            "ok": {step: ok[step] for step in STEPS},
            "failed": {step: failed[step] for step in STEPS},
            "rate_per_s": {
                "bootstrap_ok": round(ok["bootstrap"] / elapsed, 3) if elapsed > 0 else None,
                "bootstrap_attempted": round((ok["bootstrap"] + failed["bootstrap"]) / elapsed, 3)
                if elapsed > 0 else None},
            "latency_s": {step: _summary(self.latencies(step)) for step in STEPS},
            "failures": {"by_status": dict(sorted(by_status.items())),
                         "by_step": dict(sorted(by_step.items()))},
            "counters": dict(sorted(self.counters.items())),
        }
        if registered is not None:
            report["registered_at_end"] = registered
            report["mns_not_registered"] = mns - registered
        return report

    def timeline(self, bucket: float = 1.0, until: float = 0.0) -> list[dict]:
        """Per ``bucket`` seconds up to the last event or ``until``: bootstraps ok and
        failures per second, bootstrap and registration p50 and p99 (None in a bucket
        without any), for the plot."""
        buckets: dict[int, list[Event]] = defaultdict(list)
        for event in self.events:
            buckets[int(event.t // bucket)].append(event)
        rows = []
        last = max(max(buckets, default=-1), math.ceil(until / bucket) - 1)
        for number in range(last + 1):
            events = buckets.get(number, [])
            ok = sum(1 for e in events if e.step == "bootstrap" and e.status == OK)
            row = {"t": number * bucket, "bootstrap_ok": ok / bucket,
                   "failed": sum(1 for e in events if e.status != OK) / bucket}
            for step in ("bootstrap", "register"):
                ordered = sorted(e.latency_s for e in events if e.step == step and e.status == OK)
                row[f"{step}_p50"] = percentile(ordered, 50)
                row[f"{step}_p99"] = percentile(ordered, 99)
            rows.append(row)
        return rows


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"
