"""ha.assemble: the HA as mip6-ha and mip6-lab put it together from an HaConfig."""

import sqlite3
from ipaddress import IPv6Address

import pytest
from twisted.internet import task

from aaa_mip6.errors import ConfigError
from ha.assemble import assemble_home_agent
from ha.config import HaConfig, load_config
from ha.core import HaPolicy
from ha.sasource import StoreSASource


def test_store_settings_become_server_source_ledger_and_core(tmp_path):
    config = load_config(None, {"listen": ["[::1]:0"],
                                "store": f"sqlite://{tmp_path / 'sa.db'}",
                                "sa_refresh": 7, "stats_interval": 11})
    server = assemble_home_agent(config, task.Clock())
    try:
        assert server.core.policy is config.policy
        assert isinstance(server.source, StoreSASource) and not server.source.in_thread
        assert server.ledger.path == tmp_path / "sa.db.ha-state"
        assert (server.tun, server.sa_refresh, server.stats_interval) == (None, 7.0, 11.0)
    finally:
        server.source.close()
        server.ledger.close()


def test_a_given_device_stands_in_for_the_tun(tmp_path):
    device = object()
    config = HaConfig(listen=(("::1", 0),), store=f"sqlite://{tmp_path / 'sa.db'}",
                      state=tmp_path / "state", policy=HaPolicy(home_agent=IPv6Address("::1")))
    server = assemble_home_agent(config, task.Clock(), tun=device)
    server.source.close()
    server.ledger.close()
    assert server.tun is device


def test_a_store_that_cannot_open_closes_the_ledger_again(tmp_path, monkeypatch):
    ledgers = []
    import ha.assemble

    class RecordingLedger(ha.assemble.SequenceLedger):
        def __init__(self, path):
            super().__init__(path)
            ledgers.append(self)

    monkeypatch.setattr(ha.assemble, "SequenceLedger", RecordingLedger)
    config = HaConfig(listen=(("::1", 0),), store="mysql://nowhere", state=tmp_path / "state",
                      policy=HaPolicy(home_agent=IPv6Address("::1")))
    with pytest.raises(ConfigError, match="store"):
        assemble_home_agent(config, task.Clock())
    with pytest.raises(sqlite3.ProgrammingError):  # closed: no statement runs any more
        ledgers[0].load(1, 0.0)


def test_lookup_admission_and_ledger_purge_keys_reach_the_core_and_the_server(tmp_path):
    config = load_config(None, {
        "listen": ["[::1]:0"], "store": f"sqlite://{tmp_path / 'sa.db'}",
        "negative_cache_ttl": 2.5, "negative_cache_size": 100, "lookup_rate": 3,
        "lookup_burst": 6, "lookup_sources": 50, "lookup_timeout": 9, "max_pending_lookups": 64,
        "ledger_purge_interval": 600})
    server = assemble_home_agent(config, task.Clock())
    try:
        admission = server.core.admission.policy
        assert (admission.negative_ttl, admission.negative_size, admission.source_rate,
                admission.source_burst, admission.max_sources, admission.max_pending) == \
            (2.5, 100, 3.0, 6, 50, 64)
        assert server.core.policy.lookup_timeout == 9.0
        assert server.ledger_purge_interval == 600.0
    finally:
        server.source.close()
        server.ledger.close()


@pytest.mark.parametrize("key, value, message", [
    ("lookup_burst", 0, "lookup_burst: must be an integer in 1..1048576"),
    ("lookup_rate", "fast", "lookup_rate: must be a number in 0.01..1000000"),
    ("negative_cache_ttl", -1, "negative_cache_ttl: must be a number of seconds in 0..3600"),
    ("ledger_purge_interval", 0,
     "ledger_purge_interval: must be a number of seconds in 1..604800"),
])
def test_lookup_admission_and_ledger_purge_errors_name_the_key(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, {"listen": ["[::1]:0"], "store": f"sqlite://{tmp_path / 'sa.db'}",
                           key: value})
    assert str(error.value) == message
