"""Store failover under bootstrap load: kill -9 of the Patroni primary.

etcd and two PostgreSQL servers under Patroni (primary + synchronous standby,
lab/servers/patroni.py), one ``mip6-hac`` and one ``mip6-ha`` on the multi-host store
URL, and MNs bootstrapping and registering in a loop (lab/cluster_load.py). The primary
(Patroni and PostgreSQL) is killed with SIGKILL; then Patroni must promote the standby,
the HAC and the HA must carry on without a restart, every SA the HAC acknowledged must
be in the store with its key, no SPI may be acknowledged twice, the bootstraps during
the failover get 503 (with retry-after) and none hangs. The recovery time is printed.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from aaa_mip6.store import open_store
from lab.cluster_load import LoadRun, key_digest
from lab.processes import free_port
from lab.reactors import run_on_fresh_reactor
from lab.servers import patroni
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids
from tests.integration.haproc import running_ha

pytestmark = pytest.mark.integration

MNS = 6
REGISTERING = 2  # of the MNs
LOAD_BEFORE = 2.0  # seconds of load before the kill
LOAD_AFTER = 4.0  # seconds of load after the promotion
FAILOVER_TIMEOUT = 30.0  # Patroni's ttl is 8 s: promotion well within this
STORE_TIMEOUT, RETRY_AFTER = 3.0, 2


@pytest.fixture
def cluster():
    problem = patroni.missing()
    if problem:
        pytest.skip(problem)
    # not under pytest's tmp_path: the postgres user must reach it
    directory = Path(tempfile.mkdtemp(prefix="aaa-mip6-patroni-"))
    directory.chmod(0o755)
    etcd = patroni.Etcd(directory, "127.0.0.1", free_port(), free_port())
    nodes = [patroni.PatroniNode(f"pg{number}", directory / f"pg{number}", "127.0.0.1",
                                 free_port(), free_port()) for number in (1, 2)]
    started = patroni.start_cluster(directory, etcd=etcd, nodes=nodes)
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_kill_9_of_the_primary_under_load_loses_no_acknowledged_sa(cluster, tmp_path):
    url = cluster.url()
    with running_ha(tmp_path, url, ["[::1]:0"]) as ha:
        setup = make_setup(tmp_path / "hac", identities=mn_ids(MNS), store_url=url)
        config = {**TEST_CONFIG, "store": {"timeout": STORE_TIMEOUT, "retry_after": RETRY_AFTER}}
        with HacProcess(setup, config=config, ha=f"[::1]:{ha.ports[0]}") as hac:
            hac_pid = hac.process.pid
            events, faults = run_failover(cluster, hac, setup)
            assert hac.process.poll() is None and hac.process.pid == hac_pid  # no restart
            ha_alive = ha.process.poll() is None
    assert ha_alive

    killed_at, promoted_at = faults["killed"], faults["promoted"]
    acks = [event for event in events if event["event"] == "ack"]
    failures = [event for event in events if event["event"] == "fail"]
    # recovery: the first SA acknowledged to a bootstrap that began after the kill
    recovered = min(event["t"] for event in acks if event["t"] - event["seconds"] > killed_at)
    print(f"\nfailover: promoted {promoted_at - killed_at:.1f} s, bootstraps recovered "
          f"{recovered - killed_at:.1f} s after kill -9; {len(acks)} SAs acknowledged, "
          f"{len(failures)} bootstraps failed ({Counter(e['status'] for e in failures)})")

    assert faults["new_leader"] != faults["old_leader"]
    assert recovered - killed_at < FAILOVER_TIMEOUT
    # every acknowledged SA is in the store, with the key the MN got; no SPI twice
    with open_store(url) as store:
        for event in acks:
            record = store.get(event["spi"])
            assert record is not None, f"acknowledged SA {event['spi']} lost"
            assert (record.sa.mn_id, key_digest(record.sa.mn_to_ha_ikey)) == (
                event["mn"], event["key"])
    assert not [spi for spi, count in Counter(e["spi"] for e in acks).items() if count > 1]
    # the bootstraps during the failover got 503 (with retry-after), none hung
    assert failures and {(e["status"], e["reason"], e["retry_after"]) for e in failures} == {
        (503, "status", True)}
    assert max(e["seconds"] for e in failures) <= STORE_TIMEOUT + 2
    assert any(e["t"] > promoted_at for e in acks)
    # the HA re-read SAs from the new primary: registrations after the promotion
    registered = [e for e in events if e["event"] == "registered"]
    assert any(e["t"] > promoted_at for e in registered)
    assert not [e for e in events if e["event"] == "unregistered" and e["t"] > recovered + 2]


def run_failover(cluster, hac, setup) -> tuple[list[dict], dict]:
    """MNs in a loop on a fresh reactor; the primary killed from another thread once
    they run, and the load stopped LOAD_AFTER seconds after the promotion."""
    events: list[dict] = []
    faults: dict = {}
    stop = threading.Event()

    def inject() -> None:
        try:
            time.sleep(LOAD_BEFORE)
            old = cluster.leader()
            faults["old_leader"] = old.name
            faults["killed"] = time.time()
            old.kill()
            cluster.wait(lambda members: any(
                member.get("role") == "leader" and member.get("state") == "running"
                and name != old.name for name, member in members.items()),
                FAILOVER_TIMEOUT, "the standby's promotion")
            faults["promoted"] = time.time()
            faults["new_leader"] = cluster.leader().name
            time.sleep(LOAD_AFTER)
        finally:
            stop.set()

    injector = threading.Thread(target=inject, daemon=True)

    async def load(reactor):
        from twisted.internet import defer

        # some MNs only bootstrap (they see the HAC's 503s), the others also register
        # (the HA must read their new SAs from the new primary)
        psks = list(setup.psks.items())
        runs = [LoadRun(reactor, [(hac.host, hac.port)], setup.ca.cert_path, dict(part),
                        events.append, register=register, stopped=stop.is_set)
                for part, register in ((psks[:REGISTERING], True), (psks[REGISTERING:], False))]
        injector.start()
        await defer.gatherResults([defer.ensureDeferred(run.run(
            LOAD_BEFORE + FAILOVER_TIMEOUT + LOAD_AFTER + 5)) for run in runs])

    run_on_fresh_reactor(load, limit=LOAD_BEFORE + FAILOVER_TIMEOUT + LOAD_AFTER + 30)
    injector.join(5)
    assert "promoted" in faults, f"no promotion: {faults}; Patroni logs in {cluster.directory}"
    return events, faults
