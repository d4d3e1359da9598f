"""mip6-aaa-gw's Prometheus metrics (``--metrics HOST:PORT``, docs/operations.md "Metrics").

Read at each scrape from what its SIGUSR1 status line shows: the Diameter peers and their
states, the relay's requests and answers by outcome, and the RADIUS client's counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from aaa_mip6.twisted.metrics import counter, diameter_node_metrics, gauge, registry_with


def gateway_registry(running) -> CollectorRegistry:
    """A registry reading ``running`` (a GatewayProgram) at each scrape."""
    return registry_with(lambda: _collect(running))


def _collect(running):
    yield from diameter_node_metrics("mip6_gw", running.node)
    yield counter("mip6_gw_relay_events", "Diameter EAP requests relayed and their answers "
                  "by outcome (requests, challenge, accept, reject, refused, ...)", "event",
                  dict(running.gateway.counters))
    yield gauge("mip6_gw_conversations", "EAP conversations in progress",
                len(running.gateway.sessions))
    yield counter("mip6_gw_radius_events", "RADIUS client events (sent, accept, reject, "
                  "challenge, timed-out, server-dead, ...)", "event", dict(running.radius.counters))
    yield counter("mip6_gw_radius_requests", "RADIUS requests by server and outcome (sent, "
                  "accept, reject, challenge, timeout)", ("server", "outcome"),
                  dict(running.radius.by_server))
