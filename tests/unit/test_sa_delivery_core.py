"""The HAC's SA delivery queue (hac.sa_delivery_core), sans-I/O, on a fake clock."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone

from aaa_mip6.backoff import Backoff
from aaa_mip6.sa import HomeAgent, SecurityAssociation
from aaa_mip6.store.base import SARecord
from aaa_mip6.suites import SUITES
from hac.sa_delivery_core import (
    DeliveryQueue,
    Done,
    Released,
    Retrying,
    Routes,
    SendPush,
    SendRevoke,
    MAX_PENDING,
    MIN_CLAIM_LEASE,
    claim_lease,
    ha_addresses,
)

HA6 = ipaddress.IPv6Address("2001:db8::1")
HA4 = ipaddress.IPv4Address("192.0.2.1")
HA_HOST = "ha1.example.net"
START = 1_900_000_000.0  # the fake clock's now (seconds, like time.time())
END = datetime.fromtimestamp(START + 3600, timezone.utc)  # the SAs' validity end
TLS = Routes(open=1, tls=1)


class Draws:
    """A random source that always draws ``value`` (the jitter's position, 0..1)."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def record(spi: int = 7, *, validity_end: datetime = END,
           agent: HomeAgent | None = HomeAgent(HA6, None)) -> SARecord:
    spec = SUITES["AES_128_CBC_SHA"]
    sa = SecurityAssociation(
        spi=spi, suite="AES_128_CBC_SHA", mn_to_ha_ikey=b"\x01" * spec.ikey_length,
        ha_to_mn_ikey=b"\x02" * spec.ikey_length, mn_to_ha_ekey=b"\x03" * spec.ekey_length,
        ha_to_mn_ekey=b"\x04" * spec.ekey_length, validity_end=validity_end, scope=1,
        mn_id="mn1@example.org", home_address6=ipaddress.IPv6Address("2001:db8:1::7"),
        home_address4=None)
    return SARecord(sa, "hac1", agent, datetime.fromtimestamp(START, timezone.utc))


class Network:
    """The Diameter node's routes as the queue sees them; changed by the test."""

    def __init__(self, routes: Routes = TLS):
        self.routes = routes
        self.asked: list[str] = []

    def __call__(self, host: str) -> Routes:
        self.asked.append(host)
        return self.routes


def queue(network=None, *, draw=0.0, insecure_tcp=False, max_in_flight=64,
          backoff=Backoff(1.0, 4.0, jitter=(0.5, 1.0))) -> DeliveryQueue:
    return DeliveryQueue({HA6: HA_HOST}, backoff, insecure_tcp=insecure_tcp,
                         routes=network or Network(), rng=Draws(draw),
                         max_in_flight=max_in_flight)


def test_a_push_goes_to_the_ha_found_by_address_and_is_done_once_acknowledged():
    network = Network()
    delivery = queue(network)
    sa = record(agent=HomeAgent(HA6, HA4))
    assert delivery.provisioned(sa, START) == [SendPush(0, sa, HA_HOST)]
    assert network.asked == [HA_HOST]
    assert delivery.pending == 1 and delivery.is_pending(7)
    assert delivery.acked(0, START + 0.1) == [Done(sa, "pushed")]
    assert delivery.pending == 0 and delivery.timer() is None
    assert delivery.counters == {"pushed": 1}
    assert delivery.by_home_agent == {(HA_HOST, "pushed"): 1}


def test_the_ipv4_address_finds_the_ha_when_only_it_is_listed():
    delivery = DeliveryQueue({HA4: HA_HOST}, Backoff(1.0), insecure_tcp=False,
                             routes=Network(), rng=Draws(0.0))
    sa = record(agent=HomeAgent(HA6, HA4))
    assert delivery.provisioned(sa, START) == [SendPush(0, sa, HA_HOST)]
    assert ha_addresses(sa.home_agent) == (HA6, HA4)


def test_an_sa_whose_ha_is_not_listed_is_not_pushed():
    delivery = queue()
    for sa in (record(agent=HomeAgent(ipaddress.IPv6Address("2001:db8::99"), None)),
               record(8, agent=None)):
        assert delivery.provisioned(sa, START) == [Done(sa, "no-destination")]
    assert delivery.pending == 0 and delivery.counters == {"no-destination": 2}
    assert delivery.by_home_agent == {("none", "no-destination"): 2}


def test_an_unacknowledged_push_is_retried_doubling_up_to_retry_max_at_half_the_step():
    delivery = queue(draw=0.0)  # the jitter's lowest end: 50 % of each step
    sa = record()
    delivery.provisioned(sa, START)
    now, token, waits = START, 0, []
    for attempt in range(1, 6):
        assert delivery.failed(token, "no answer", now) == [
            Retrying(sa, False, "not-acknowledged", attempt, "no answer")]
        due = delivery.timer()
        waits.append(due - now)
        assert delivery.handle_timer(due - 0.01) == []  # not yet
        token += 1
        assert delivery.handle_timer(due) == [SendPush(token, sa, HA_HOST)]
        now = due
    assert waits == [0.5, 1.0, 2.0, 2.0, 2.0]  # 1, 2, 4, 4, 4 s steps (retry_max 4)
    assert delivery.counters["retries"] == 5
    assert delivery.by_home_agent == {(HA_HOST, "not-acknowledged"): 5}


def test_the_jitter_waits_at_most_the_whole_step():
    delivery = queue(draw=0.999, backoff=Backoff(2.0, 60.0, jitter=(0.5, 1.0)))
    delivery.provisioned(record(), START)
    delivery.failed(0, "timeout", START)
    assert 1.99 < delivery.timer() - START < 2.0


def test_a_push_stops_when_its_sa_expires():
    sa = record(validity_end=datetime.fromtimestamp(START + 1, timezone.utc))
    delivery = queue()
    delivery.provisioned(sa, START)
    delivery.failed(0, "timeout", START + 0.9)
    assert delivery.handle_timer(START + 2.0) == [Done(sa, "expired")]
    assert delivery.pending == 0 and delivery.timer() is None
    assert delivery.provisioned(sa, START + 2.0) == [Done(sa, "expired")]


def test_a_revocation_replaces_the_push_and_is_sent_again_until_acknowledged():
    delivery = queue()
    sa = record()
    assert delivery.provisioned(sa, START) == [SendPush(0, sa, HA_HOST)]
    assert delivery.revoked(sa, START + 1) == [SendRevoke(1, sa, HA_HOST)]
    assert delivery.acked(0, START + 1.1) == [Done(sa, "pushed")]  # the old push's answer
    assert delivery.pending == 1  # the revocation is still owed
    assert delivery.failed(1, "5012", START + 1.2) == [
        Retrying(sa, True, "not-acknowledged", 1, "5012")]
    assert delivery.handle_timer(delivery.timer()) == [SendRevoke(2, sa, HA_HOST)]
    assert delivery.acked(2, START + 3) == [Done(sa, "revoked")]
    assert delivery.pending == 0


def test_a_revocation_goes_even_for_an_expired_sa_and_over_plain_tcp():
    sa = record(validity_end=datetime.fromtimestamp(START - 10, timezone.utc))
    delivery = queue(Network(Routes(open=1, tls=0)))
    assert delivery.revoked(sa, START) == [SendRevoke(0, sa, HA_HOST)]


def test_keys_wait_while_a_route_is_not_tls_and_go_once_every_route_is():
    network = Network(Routes(open=2, tls=1))
    delivery = queue(network)
    sa = record()
    assert delivery.provisioned(sa, START) == [Released(sa, "refused-insecure")]
    assert delivery.counters == {"refused-insecure": 1}
    assert delivery.by_home_agent == {(HA_HOST, "refused-insecure"): 1}
    assert delivery.pending == 0 and delivery.timer() is None  # the outbox keeps it
    assert delivery.usable_destinations() == []  # so this HAC does not claim it again
    network.routes = TLS
    assert delivery.usable_destinations() == [HA_HOST]
    assert delivery.provisioned(sa, START) == [SendPush(0, sa, HA_HOST)]  # claimed again


def test_keys_wait_for_an_open_route_in_the_outbox():
    network = Network(Routes(open=0, tls=0))
    delivery = queue(network)
    sa = record()
    assert delivery.provisioned(sa, START) == [Released(sa, "no-route")]
    assert delivery.counters == {"no-route": 1}
    assert delivery.pending == 0 and delivery.usable_destinations() == []


def test_the_room_to_claim_shrinks_with_what_is_pending_and_is_none_once_stopped():
    delivery = queue(max_in_flight=1)
    full = MAX_PENDING
    assert delivery.room == full
    delivery.provisioned(record(1), START)
    delivery.provisioned(record(2), START)
    assert delivery.room == full - 2 and sorted(delivery.pending_spis()) == [1, 2]
    delivery.stop()
    assert delivery.room == 0


def test_a_claim_outlives_several_polls():
    assert claim_lease(0.5) == MIN_CLAIM_LEASE
    assert claim_lease(4.0) == 20.0


def test_insecure_tcp_lets_keys_cross_plain_tcp():
    delivery = queue(Network(Routes(open=1, tls=0)), insecure_tcp=True)
    sa = record()
    assert delivery.provisioned(sa, START) == [SendPush(0, sa, HA_HOST)]


def test_at_most_max_in_flight_are_outstanding_the_others_wait_in_order():
    delivery = queue(max_in_flight=2)
    records = [record(spi) for spi in (1, 2, 3)]
    sent = [action for sa in records for action in delivery.provisioned(sa, START)]
    assert sent == [SendPush(0, records[0], HA_HOST), SendPush(1, records[1], HA_HOST)]
    assert delivery.acked(1, START) == [Done(records[1], "pushed"),
                                        SendPush(2, records[2], HA_HOST)]


def test_a_stopped_queue_sends_nothing_and_an_unknown_token_changes_nothing():
    delivery = queue()
    sa = record()
    delivery.provisioned(sa, START)
    assert delivery.acked(99, START) == [] and delivery.failed(99, "x", START) == []
    delivery.failed(0, "timeout", START)
    delivery.stop()
    assert delivery.timer() is None
    assert delivery.handle_timer(START + 100) == []
    assert delivery.provisioned(record(8), START) == []


def test_an_ha_down_for_thousands_of_retries_is_still_retried_at_retry_max():
    # 2 ** attempts overflowed a float after about a thousand retries (17 h at 60 s).
    sa = record(validity_end=datetime(2099, 1, 1, tzinfo=timezone.utc))
    delivery = queue(draw=0.0)
    delivery.provisioned(sa, START)
    now = START
    for token in range(1500):
        delivery.failed(token, "no answer", now)
        now = delivery.timer()
        assert delivery.handle_timer(now) == [SendPush(token + 1, sa, HA_HOST)]
    delivery.failed(1500, "no answer", now)
    assert delivery.timer() - now == 2.0


def test_retries_go_in_the_order_they_fall_due_and_a_replaced_push_keeps_no_retry():
    delivery = queue(draw=0.0)
    first, second, replaced = record(1), record(2), record(3)
    for sa in (first, second, replaced):
        delivery.provisioned(sa, START)  # tokens 0, 1, 2
    delivery.failed(1, "timeout", START)  # second: due at +0.5
    delivery.failed(0, "timeout", START + 0.2)  # first: due at +0.7
    delivery.failed(2, "timeout", START + 0.1)  # replaced: due at +0.6, but ...
    assert delivery.provisioned(replaced, START + 0.3) == [SendPush(3, replaced, HA_HOST)]
    assert delivery.timer() == START + 0.5
    assert delivery.handle_timer(START + 0.65) == [SendPush(4, second, HA_HOST)]
    assert delivery.timer() == START + 0.7
    assert delivery.handle_timer(START + 0.7) == [SendPush(5, first, HA_HOST)]
    assert delivery.timer() is None
