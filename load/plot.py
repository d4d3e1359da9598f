"""``mip6-load --plot``: bootstraps per second and latencies over time, one PNG (matplotlib).

Drawn from :meth:`load.core.Recorder.timeline` rows with the Agg backend (no display
needed): on top successful bootstraps and failures per second, below the bootstrap and
registration p50 and p99 per second in milliseconds, so a fault's dip and its recovery
show at a glance.
"""

from __future__ import annotations

from pathlib import Path


def draw(timeline: list[dict], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (rates, latencies) = pyplot.subplots(2, 1, sharex=True, figsize=(9, 6))
    times = [row["t"] for row in timeline]
    rates.step(times, [row["bootstrap_ok"] for row in timeline], where="post",
               label="bootstraps ok/s")
    rates.step(times, [row["failed"] for row in timeline], where="post", label="failures/s",
               color="tab:red")
    rates.set_ylabel("per second")
    rates.legend(loc="upper right")
    rates.set_title(title)
    for key, label in (("bootstrap_p50", "bootstrap p50"), ("bootstrap_p99", "bootstrap p99"),
                       ("register_p50", "register p50"), ("register_p99", "register p99")):
        points = [(row["t"], row[key] * 1000) for row in timeline if row[key] is not None]
        if points:
            latencies.plot(*zip(*points), marker=".", label=label)
    latencies.set_ylabel("latency (ms)")
    latencies.set_xlabel("seconds since the start")
    if latencies.get_legend_handles_labels()[0]:
        latencies.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=80)
    pyplot.close(figure)
