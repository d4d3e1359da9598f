"""The HA's Prometheus metrics (``--metrics HOST:PORT``, docs/operations.md "Metrics").

Read at each scrape from the core's counters (by reason) and its bindings and SAs, as the
status line and status file show them, and from the shell's datagram and octet counts by
PType (two Counter increments per datagram each way) and lookup counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from aaa_mip6.twisted.metrics import counter, diameter_node_metrics, gauge, registry_with

_TUNNELED = {"tunneled-in": "in", "tunneled-out": "out"}
_BY_STATUS = {"ba-status-": "acks", "bu-status-": "updates"}
LOOKUP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def ha_registry(server) -> CollectorRegistry:
    """A registry reading ``server`` (an HA server) at each scrape; sets its lookup
    observer."""
    registry = registry_with(lambda: _collect(server))
    lookups = Histogram("mip6_ha_lookup_duration_seconds",
                        "Time an SA source took to answer the lookup of an unknown SPI",
                        buckets=LOOKUP_BUCKETS, registry=registry)
    server.observe_lookup = lookups.observe
    return registry


def _collect(server):
    core = server.core
    yield gauge("mip6_ha_bindings", "Bindings in the binding cache", len(core.bindings))
    yield gauge("mip6_ha_sas", "SAs held", len(core.spis))
    yield counter("mip6_ha_received_packets", "UDP datagrams received, by RFC 6618 PType "
                  "(-1: empty)", "ptype", dict(server.packets_in))
    yield counter("mip6_ha_received_bytes", "Octets of UDP datagrams received, by PType",
                  "ptype", dict(server.octets_in))
    yield counter("mip6_ha_sent_packets", "UDP datagrams sent, by PType", "ptype",
                  dict(server.packets_out))
    yield counter("mip6_ha_sent_bytes", "Octets of UDP datagrams sent, by PType", "ptype",
                  dict(server.octets_out))
    yield counter("mip6_ha_lookups", "Lookups of unknown SPIs in the SA source, by answer "
                  "(found, not-found, failed)", "result", dict(server.lookups))
    tunneled, events = {}, {}
    by_status: dict[str, dict[str, int]] = {"acks": {}, "updates": {}}
    for name, value in core.counters.items():
        prefix, _, status = name.rpartition("-")
        if name == "ba-sent":
            continue
        if name in _TUNNELED:
            tunneled[_TUNNELED[name]] = value
        elif f"{prefix}-" in _BY_STATUS:
            by_status[_BY_STATUS[f"{prefix}-"]][status] = value
        else:
            events[name] = value
    yield counter("mip6_ha_tunneled_packets", "Packets tunneled between MNs and the home "
                  "network, by direction (in: from an MN)", "direction", tunneled)
    yield counter("mip6_ha_binding_updates", "Binding Updates decided (ICV and sequence "
                  "verified), by the status the HA gave (RFC 6275 6.1.8: 0 accepted, 128 and "
                  "above refused)", "status", by_status["updates"])
    yield counter("mip6_ha_binding_acks", "Binding Acknowledgements sent, by status",
                  "status", by_status["acks"])
    yield counter("mip6_ha_events", "Registrations, deregistrations and drops by reason "
                  "(the HA status line's counters)", "reason", events)
    node = getattr(server.source, "node", None)
    if node is not None:
        yield from diameter_node_metrics("mip6_ha", node)
