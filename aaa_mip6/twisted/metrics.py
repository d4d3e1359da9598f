"""Prometheus metrics over HTTP for every program (``--metrics HOST:PORT``).

Each program has its own :class:`~prometheus_client.CollectorRegistry` and a collector
that reads the counters the program keeps on each scrape (the cores count by reason, the
shells count what they move); a scrape computes, an event only counts. The exposition is
prometheus_client's own Twisted resource.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry

from aaa_mip6.errors import StartupError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.twisted import MetricsResource
from twisted.internet.error import CannotListenError
from twisted.web.resource import Resource
from twisted.web.server import Site


class CallbackCollector:
    """A collector whose metric families come from ``collect`` at each scrape."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]):
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


def registry_with(collect: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """A program's own registry (not the process-wide default), reading ``collect``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CallbackCollector(collect))
    return registry


def counter(name: str, documentation: str, labels: str | tuple[str, ...] | None,
            values: Mapping | float) -> CounterMetricFamily:
    """A counter family: one sample per ``values`` item, its key the value of ``labels``
    (a tuple of values for several labels), or one unlabelled sample. ``name`` is without
    the ``_total`` suffix prometheus_client adds."""
    if labels is None:
        return CounterMetricFamily(name, documentation, value=values)
    names = [labels] if isinstance(labels, str) else list(labels)
    family = CounterMetricFamily(name, documentation, labels=names)
    for key, value in sorted(values.items()):
        family.add_metric([str(part) for part in (key if isinstance(key, tuple) else (key,))],
                          value)
    return family


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def diameter_node_metrics(prefix: str, node) -> list[Metric]:
    """A Diameter node's peers by state (1 per connection) and its message counters."""
    peers = GaugeMetricFamily(f"{prefix}_diameter_peers",
                              "Diameter peer connections by peer and state",
                              labels=["peer", "state"])
    states: dict[tuple[str, str], int] = {}
    for name, state in node.peer_states():
        states[(name, state)] = states.get((name, state), 0) + 1
    for (name, state), number in sorted(states.items()):
        peers.add_metric([name, state], number)
    return [peers,
            counter(f"{prefix}_diameter_events", "Diameter node events (requests-sent, "
                    "answers-received, watchdog-failovers, ...)", "event", dict(node.counters)),
            counter(f"{prefix}_diameter_requests", "Diameter requests by direction (sent, "
                    "received) and command code", ("direction", "command"),
                    dict(node.requests)),
            counter(f"{prefix}_diameter_answers", "Diameter answers by direction, command code "
                    "and Result-Code", ("direction", "command", "result_code"),
                    dict(node.answers))]


def serve_metrics(registry: CollectorRegistry, host: str, port: int, reactor):
    """Serve ``registry`` at ``http://HOST:PORT/metrics``; returns the listening port.

    A port that cannot be had is a StartupError naming ``metrics.listen (--metrics)``."""
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    site = Site(root)
    site.noisy = False
    try:
        return reactor.listenTCP(port, site, interface=host)
    except CannotListenError as error:
        reason = getattr(error.socketError, "strerror", None) or error.socketError
        raise StartupError(f"metrics.listen (--metrics) {host}:{port}: cannot listen "
                           f"({reason})") from None
