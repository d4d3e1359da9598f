"""The HAC's Prometheus metrics (``--metrics HOST:PORT``, docs/operations.md "Metrics").

Read at each scrape from the counters :class:`hac.server.HacServer` keeps for its SIGUSR1
status line, its AAA client, its RADIUS accounting and its SA delivery; the bootstrap
duration histogram is the one value observed as it happens (once per bootstrap).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from aaa_mip6.twisted.metrics import counter, diameter_node_metrics, gauge, registry_with

BOOTSTRAP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
AAA_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ACTIVE_SAS_INTERVAL = 30.0  # seconds between counts of the store's active SAs


def hac_registry(server) -> CollectorRegistry:
    """A registry reading ``server`` (a HacServer); sets its bootstrap observer."""
    registry = registry_with(lambda: _collect(server))
    durations = Histogram("mip6_hac_bootstrap_duration_seconds",
                          "Time from TLS connection to the bootstrap's outcome",
                          buckets=BOOTSTRAP_BUCKETS, registry=registry)
    server.observe_bootstrap = durations.observe
    aaa = Histogram("mip6_hac_aaa_duration_seconds",
                    "Time from an AAA request (RADIUS or Diameter EAP round) to its answer",
                    buckets=AAA_BUCKETS, registry=registry)
    server.observe_aaa = aaa.observe
    store = Histogram("mip6_hac_store_duration_seconds",
                      "Time a store call (provisioning an SA, purging expired SAs) took",
                      buckets=AAA_BUCKETS, registry=registry)
    server.observe_store = store.observe
    server.watch_active_sas(ACTIVE_SAS_INTERVAL)
    return registry


def _collect(server):
    yield counter("mip6_hac_bootstraps", "Bootstraps by auth method and HAC status code "
                  "(none: the connection ended without one)", ("method", "status"),
                  dict(server.bootstrap_outcomes))
    yield gauge("mip6_hac_connections", "MN TLS connections open now", server.connections)
    yield counter("mip6_hac_connections_refused", "MN connections refused, by reason "
                  "(cap: max_connections, rate: the connection rate limit)", "reason",
                  dict(server.refused))
    yield counter("mip6_hac_tls_handshakes", "TLS handshakes completed with MNs", None,
                  server.handshakes)
    yield counter("mip6_hac_tls_resumptions", "TLS handshakes with MNs that resumed a "
                  "session (ticket)", None, server.resumptions)
    yield counter("mip6_hac_sas_issued", "SAs issued and stored", None, server.sas_issued)
    yield counter("mip6_hac_sas_revoked", "SAs revoked (mip6-hac revoke, with SA delivery)",
                  None, server.sas_revoked)
    yield counter("mip6_hac_sas_purged", "Expired SAs purged from the store", None,
                  server.sas_purged)
    if server.sas_active is not None:
        yield gauge("mip6_hac_store_sas_active", "SAs in the store neither revoked nor "
                    "expired (the whole store: every HAC sharing it reports the same; "
                    f"counted every {ACTIVE_SAS_INTERVAL:g} s, moved by this HAC's issues and "
                    "revocations in between)", server.sas_active)
    yield counter("mip6_hac_store_calls", "Store calls by operation (provision, purge, count) and "
                  "outcome (ok, error)", ("operation", "outcome"), dict(server.store_calls))
    yield counter("mip6_hac_aaa_requests", "AAA round trips by outcome (accept, reject, "
                  "challenge, timeout, error)", "outcome", dict(server.aaa_outcomes))
    aaa = server.aaa
    if aaa is not None and hasattr(aaa, "counters"):
        yield counter("mip6_hac_radius_events", "RADIUS client events (sent, accept, "
                      "reject, challenge, timed-out, retransmitted, server-dead, ...)", "event",
                      dict(aaa.counters))
        yield counter("mip6_hac_radius_requests", "RADIUS requests by server and outcome "
                      "(sent, accept, reject, challenge, accounting-response, timeout)",
                      ("server", "outcome"), dict(aaa.by_server))
    if aaa is not None and hasattr(aaa, "node"):
        yield from diameter_node_metrics("mip6_hac_aaa", aaa.node)
    if server.accounting is not None:
        yield counter("mip6_hac_accounting_events", "RADIUS accounting requests by outcome",
                      "event", dict(server.accounting.counters))
    if server.delivery is not None:
        yield counter("mip6_hac_sa_delivery_events", "SA pushes, revocations and queries by "
                      "outcome", "event", dict(server.delivery.counters))
        yield counter("mip6_hac_sa_deliveries", "SA pushes and revocations by HA (its "
                      "Origin-Host; none: not in sa_delivery.home_agents) and outcome",
                      ("home_agent", "outcome"), dict(server.delivery.queue.by_home_agent))
        yield from diameter_node_metrics("mip6_hac_sa_delivery", server.delivery.node)

