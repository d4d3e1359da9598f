"""The programs' Prometheus metrics: names, labels and values read from the counters the
programs keep, in the text exposition a Prometheus server scrapes."""

from collections import Counter
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aaa_mip6.errors import ConfigError
from gateway.metrics import gateway_registry
from ha.metrics import ha_registry
from hac.metrics import hac_registry
from tests.unit.test_ha_server import make_server


def samples(registry) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed back from the exposition text."""
    text = generate_latest(registry).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


class Node:
    def __init__(self):
        self.counters = Counter({"requests-sent": 3, "answers-received": 2})
        self.requests = Counter({("sent", 268): 3})
        self.answers = Counter({("received", 268, "2001"): 1, ("received", 268, "none"): 1})

    def peer_states(self):
        return [("aaa.example.net", "open"), ("agent.example.net", "wait-cea")]


def hac_server(**given):
    server = SimpleNamespace(bootstrap_outcomes=Counter(), connections=0,
                             refused={"cap": 0, "rate": 0}, sas_issued=0, handshakes=0,
                             resumptions=0, aaa=None,
                             accounting=None, delivery=None, observe_bootstrap=None,
                             aaa_outcomes=Counter(), observe_aaa=None, sas_revoked=0,
                             sas_purged=0, store_calls=Counter(), observe_store=None,
                             sas_active=None, watch_active_sas=lambda interval: None)
    vars(server).update(given)
    return server


def test_hac_bootstraps_by_method_and_status_and_the_duration_histogram():
    server = hac_server(bootstrap_outcomes=Counter({("psk", "200"): 2, ("eap", "401"): 1}),
                        connections=4, refused={"cap": 1, "rate": 5}, sas_issued=2,
                        handshakes=3, resumptions=1,
                        aaa_outcomes=Counter({"challenge": 2, "timeout": 1}),
                        sas_revoked=1, sas_purged=4,
                        store_calls=Counter({("provision", "ok"): 2, ("purge", "error"): 1}))
    registry = hac_registry(server)
    server.observe_aaa(0.004)
    server.observe_store(0.002)
    server.observe_bootstrap(0.02)
    server.observe_bootstrap(3.0)
    got = samples(registry)
    assert got[("mip6_hac_bootstraps_total", (("method", "psk"), ("status", "200")))] == 2
    assert got[("mip6_hac_bootstraps_total", (("method", "eap"), ("status", "401")))] == 1
    assert got[("mip6_hac_connections", ())] == 4
    assert got[("mip6_hac_connections_refused_total", (("reason", "rate"),))] == 5
    assert got[("mip6_hac_sas_issued_total", ())] == 2
    assert got[("mip6_hac_tls_handshakes_total", ())] == 3
    assert got[("mip6_hac_tls_resumptions_total", ())] == 1
    assert got[("mip6_hac_aaa_requests_total", (("outcome", "timeout"),))] == 1
    assert got[("mip6_hac_aaa_duration_seconds_bucket", (("le", "0.005"),))] == 1
    assert got[("mip6_hac_sas_revoked_total", ())] == 1
    assert got[("mip6_hac_sas_purged_total", ())] == 4
    assert got[("mip6_hac_store_calls_total", (("operation", "purge"), ("outcome", "error")))] == 1
    assert got[("mip6_hac_store_duration_seconds_count", ())] == 1
    assert got[("mip6_hac_bootstrap_duration_seconds_count", ())] == 2
    assert got[("mip6_hac_bootstrap_duration_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("mip6_hac_bootstrap_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert ("mip6_hac_store_sas_active", ()) not in got  # not counted yet


def test_hac_registry_counts_the_stores_active_sas_and_shows_them():
    intervals = []
    server = hac_server(watch_active_sas=intervals.append)
    registry = hac_registry(server)
    assert intervals == [30.0]
    server.sas_active = 7
    assert samples(registry)[("mip6_hac_store_sas_active", ())] == 7


def test_hac_aaa_accounting_and_delivery_counters_appear_when_configured():
    radius = SimpleNamespace(counters=Counter({"sent": 4, "accept": 1, "timed-out": 2}),
                             by_server=Counter({("127.0.0.1:1812", "timeout"): 2}))
    delivery = SimpleNamespace(counters={"pushed": 3, "push-failed": 1}, node=Node(),
                               queue=SimpleNamespace(by_home_agent={("ha1.example.org",
                                                                     "pushed"): 3}))
    accounting = SimpleNamespace(counters=Counter({"start-answered": 2}))
    got = samples(hac_registry(hac_server(aaa=radius, delivery=delivery,
                                          accounting=accounting)))
    assert got[("mip6_hac_radius_events_total", (("event", "timed-out"),))] == 2
    assert got[("mip6_hac_radius_requests_total", (("outcome", "timeout"),
                                                   ("server", "127.0.0.1:1812")))] == 2
    assert got[("mip6_hac_accounting_events_total", (("event", "start-answered"),))] == 2
    assert got[("mip6_hac_sa_delivery_events_total", (("event", "push-failed"),))] == 1
    assert got[("mip6_hac_sa_deliveries_total", (("home_agent", "ha1.example.org"),
                                                 ("outcome", "pushed")))] == 3
    assert got[("mip6_hac_sa_delivery_diameter_peers",
                (("peer", "aaa.example.net"), ("state", "open")))] == 1
    assert got[("mip6_hac_sa_delivery_diameter_events_total",
                (("event", "requests-sent"),))] == 3


def test_hac_without_aaa_exposes_no_aaa_family():
    got = samples(hac_registry(hac_server()))
    assert not any(name.startswith("mip6_hac_radius") for name, _ in got)


def test_ha_counters_split_into_tunneled_packets_acks_and_events(tmp_path):
    ha, _reactor = make_server(tmp_path)
    ha.core.counters.update({"tunneled-in": 7, "tunneled-out": 5, "ba-sent": 4,
                             "ba-status-0": 3, "ba-status-135": 1, "bu-status-0": 5,
                             "bu-status-135": 1, "registered": 3, "bad-icv": 2})
    got = samples(ha_registry(ha))
    assert got[("mip6_ha_bindings", ())] == 0
    assert got[("mip6_ha_sas", ())] == 0
    assert got[("mip6_ha_tunneled_packets_total", (("direction", "in"),))] == 7
    assert got[("mip6_ha_tunneled_packets_total", (("direction", "out"),))] == 5
    assert got[("mip6_ha_binding_acks_total", (("status", "0"),))] == 3
    assert got[("mip6_ha_binding_acks_total", (("status", "135"),))] == 1
    assert got[("mip6_ha_binding_updates_total", (("status", "0"),))] == 5
    assert got[("mip6_ha_binding_updates_total", (("status", "135"),))] == 1
    assert ("mip6_ha_events_total", (("reason", "bu-status-0"),)) not in got
    assert got[("mip6_ha_events_total", (("reason", "bad-icv"),))] == 2
    assert ("mip6_ha_events_total", (("reason", "ba-status-135"),)) not in got
    assert ("mip6_ha_events_total", (("reason", "ba-sent"),)) not in got


def test_ha_lookups_are_counted_by_answer_and_timed(tmp_path):
    from tests.unit.test_ha_core import Mn, make_sa
    from tests.unit.test_ha_server import Source
    source = Source()
    source.answer = OSError("store unreachable")
    ha, _reactor = make_server(tmp_path, source)
    registry = ha_registry(ha)
    mn = Mn(make_sa(spi=99))
    try:
        ha.datagram_received(mn.bu(), mn.care_of)
        source.answer = None  # reachable again, and the SA is not there
        ha.datagram_received(mn.bu(), mn.care_of)
    finally:
        ha.ledger.close()
    got = samples(registry)
    size = len(mn.bu())
    assert got[("mip6_ha_received_packets_total", (("ptype", "8"),))] == 2
    assert got[("mip6_ha_received_bytes_total", (("ptype", "8"),))] == 2 * size
    assert ("mip6_ha_sent_packets_total", (("ptype", "8"),)) not in got  # no BA: no SA
    assert got[("mip6_ha_lookups_total", (("result", "failed"),))] == 1
    assert got[("mip6_ha_lookups_total", (("result", "not-found"),))] == 1
    assert got[("mip6_ha_lookup_duration_seconds_count", ())] == 2


def test_ha_counts_read_at_each_scrape(tmp_path):
    ha, _reactor = make_server(tmp_path)
    registry = ha_registry(ha)
    ha.core.counters["bad-icv"] += 1
    assert samples(registry)[("mip6_ha_events_total", (("reason", "bad-icv"),))] == 1
    ha.core.counters["bad-icv"] += 1
    assert samples(registry)[("mip6_ha_events_total", (("reason", "bad-icv"),))] == 2


def test_gateway_peers_relay_and_radius():
    running = SimpleNamespace(node=Node(),
                              gateway=SimpleNamespace(counters=Counter({"requests": 4,
                                                                        "accept": 1}),
                                                      sessions={"a": 1}),
                              radius=SimpleNamespace(counters=Counter({"sent": 4}),
                                                     by_server=Counter({("192.0.2.1:1812",
                                                                         "accept"): 1})))
    got = samples(gateway_registry(running))
    assert got[("mip6_gw_diameter_peers", (("peer", "agent.example.net"),
                                           ("state", "wait-cea")))] == 1
    assert got[("mip6_gw_diameter_requests_total", (("command", "268"),
                                                    ("direction", "sent")))] == 3
    assert got[("mip6_gw_diameter_answers_total", (("command", "268"), ("direction", "received"),
                                                   ("result_code", "2001")))] == 1
    assert got[("mip6_gw_relay_events_total", (("event", "accept"),))] == 1
    assert got[("mip6_gw_conversations", ())] == 1
    assert got[("mip6_gw_radius_events_total", (("event", "sent"),))] == 4
    assert got[("mip6_gw_radius_requests_total", (("outcome", "accept"),
                                                  ("server", "192.0.2.1:1812")))] == 1


@pytest.mark.parametrize("module", ["hac.config", "ha.config", "gateway.config"])
def test_metrics_listen_is_a_host_port_and_off_by_default(module):
    spec = __import__(module, fromlist=["SCHEMA"]).SCHEMA.settings["metrics.listen"]
    assert spec.default is None
    assert spec.metadata["flag"] == "--metrics"
    assert spec.metadata["parse"]("127.0.0.1:9100") == ("127.0.0.1", 9100)
    with pytest.raises(ValueError):
        spec.metadata["parse"]("localhost")


def test_each_hac_worker_serves_metrics_on_its_own_port():
    from hac.process import metrics_ports
    from tests.unit.test_hac_config import config as hac_config
    assert metrics_ports(hac_config(metrics__listen="127.0.0.1:9100", workers=3)) == [
        9100, 9101, 9102]
    assert metrics_ports(hac_config(metrics__listen="127.0.0.1:0", workers=2)) == [0, 0]
    with pytest.raises(ConfigError, match=r"metrics.listen \(--metrics\): 4 workers serve "
                       r"metrics on ports 65534..65537; choose a port up to 65532"):
        hac_config(metrics__listen="127.0.0.1:65534", workers=4)


def test_hac_counts_revocations_and_still_sends_the_accounting_stop():
    from hac.server import HacServer
    stopped = []
    server = SimpleNamespace(sas_revoked=0, sas_active=5,
                             accounting=SimpleNamespace(revoked=stopped.append))
    HacServer._revoked(server, "record")
    assert server.sas_revoked == 1 and stopped == ["record"]
    assert server.sas_active == 4


def test_hac_store_calls_are_counted_by_outcome_and_timed_and_pass_through():
    from twisted.python.failure import Failure

    from hac.server import HacServer
    timed = []
    server = SimpleNamespace(store_calls=Counter(), observe_store=timed.append,
                             reactor=SimpleNamespace(seconds=lambda: 10.5))
    assert HacServer._store_done(server, "stored", "provision", 10.0) == "stored"
    failure = Failure(OSError("disk full"))
    assert HacServer._store_done(server, failure, "purge", 10.25) is failure
    assert server.store_calls == {("provision", "ok"): 1, ("purge", "error"): 1}
    assert timed == [0.5, 0.25]


def test_check_config_reports_a_metrics_port_in_use(tmp_path, capsys):
    import socket

    from aaa_mip6.errors import StartupError
    from gateway.cli import main
    from hac.process import check_ports
    from tests.unit.test_gateway import _argv
    from tests.unit.test_hac_config import config as hac_config
    (tmp_path / "secret").write_text("s3cret\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(_argv(tmp_path, "--insecure-tcp", "--check-config", "--listen",
                          "127.0.0.1:0", "--metrics", f"127.0.0.1:{port}")) == 1
        with pytest.raises(StartupError, match=f"metrics.listen .--metrics. 127.0.0.1:{port}"):
            check_ports(hac_config(listen="127.0.0.1:0", metrics__listen=f"127.0.0.1:{port}"))
    err = capsys.readouterr().err
    assert f"metrics.listen (--metrics) 127.0.0.1:{port}: cannot bind (the port is in use)" in err
