"""hac.server's group commit: provisions that arrive while a batch is being committed
wait and go to the store together; each MN gets its own outcome, once durable."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from twisted.internet import defer

from aaa_mip6.store import StoreError
from hac import core
from hac.server import HacServer


def fake_server() -> tuple[HacServer, list]:
    """A HacServer with only what provision() uses; the store thread is a list of
    (batch, Deferred) the test answers."""
    batches: list = []
    server = object.__new__(HacServer)

    def in_store_thread(function, requests):
        batches.append((requests, defer.Deferred()))
        return batches[-1][1]

    server.in_store_thread = in_store_thread
    server.provisioner = SimpleNamespace(provision_records=None)
    server.reactor = SimpleNamespace(seconds=lambda: 1.0)
    server.store_calls, server.observe_store = Counter(), None
    server.sas_issued, server.sas_active = 0, None
    server.accounting, server.delivery = None, None
    server._provisions_waiting, server._provisions_committing = [], False
    return server, batches


def request(mn_id: str) -> core.ProvisionSA:
    return core.ProvisionSA(mn_id=mn_id, suite="suite", requested_scope=1, attributes=None)


def outcomes(deferreds) -> list:
    seen = []
    for deferred in deferreds:
        deferred.addBoth(seen.append)
    return seen


def test_requests_during_a_commit_form_the_next_batch():
    server, batches = fake_server()
    first = server.provision(request("a"))
    later = [server.provision(request(name)) for name in ("b", "c")]
    assert [[r[0] for r in batch] for batch, _ in batches] == [["a"]]  # b, c wait
    seen = outcomes([first, *later])
    batches[0][1].callback([("record-a", "provision-a")])
    assert seen == ["provision-a"]
    assert [[r[0] for r in batch] for batch, _ in batches] == [["a"], ["b", "c"]]
    batches[1][1].callback([("record-b", "provision-b"), StoreError("pool exhausted")])
    assert seen[1] == "provision-b" and seen[2].check(StoreError)
    assert server.sas_issued == 2 and len(batches) == 2  # nothing left waiting
    assert server.store_calls == {("provision", "ok"): 2, ("provision", "error"): 1}


def test_a_failed_commit_fails_every_request_of_its_batch():
    server, batches = fake_server()
    first = server.provision(request("a"))
    second = server.provision(request("b"))
    seen = outcomes([first, second])
    batches[0][1].errback(StoreError("disk full"))
    assert len(seen) == 1 and seen[0].check(StoreError) and server.sas_issued == 0
    batches[1][1].errback(StoreError("disk full"))
    assert len(seen) == 2 and seen[1].check(StoreError)
