"""ha.assemble: the HA as mip6-ha and mip6-lab put it together from an HaConfig."""

import sqlite3
from ipaddress import IPv6Address

import pytest
from twisted.internet import task

from aaa_mip6.errors import ConfigError
from ha.assemble import assemble_home_agent
from ha.cli import HaConfig, load_config
from ha.core import HaPolicy
from ha.sasource import StoreSASource


def test_store_settings_become_server_source_ledger_and_core(tmp_path):
    config = load_config({"listen": ["[::1]:0"], "store": f"sqlite://{tmp_path / 'sa.db'}",
                          "sa-refresh": 7, "stats-interval": 11})
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
