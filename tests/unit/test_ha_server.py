"""ha.server on a fake reactor: the ledger purge timer, failed lookups, bounded bookkeeping."""

from ipaddress import IPv6Address

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from ha.bindings import Binding
from ha.actions import Registered
from ha.core import HaPolicy, HomeAgentCore
from ha.sasource import SASource, SequenceLedger
from ha.server import HomeAgentServer
from tests.unit.test_ha_core import Mn, make_sa

HA = IPv6Address("2001:db8:ffff::1")


class Source(SASource):
    """Answers every lookup with whatever ``answer`` says (an SA, None, an exception)."""

    def __init__(self):
        self.answer = None
        self.asked = []

    def lookup(self, spi):
        self.asked.append(spi)
        if isinstance(self.answer, Exception):
            return defer.fail(self.answer)
        return self.answer


def make_server(tmp_path, source=None, **server):
    reactor = MemoryReactorClock()
    reactor.advance(1_900_000_000.0)
    ledger = SequenceLedger(tmp_path / "ha.state")
    ha = HomeAgentServer(HomeAgentCore(HaPolicy(home_agent=HA)), source or Source(), ledger,
                         reactor=reactor, clock=reactor.seconds, **server)
    return ha, reactor


def test_ledger_rows_of_expired_sas_are_purged_on_a_timer(tmp_path):
    ha, reactor = make_server(tmp_path, ledger_purge_interval=600)
    now = reactor.seconds()
    ha.ledger.save(1, now - 3600, 10, 20)  # long past its validity end
    ha.ledger.save(2, now + 570, 10, 20)  # at the first purge: within the grace for expired SAs
    ha.ledger.save(3, now + 3600, 10, 20)  # valid
    ha.start()
    try:
        reactor.advance(599)
        assert ha.ledger.load(1, now - 3600) == (10, 20)
        reactor.advance(1)
        assert ha.ledger.load(1, now - 3600) is None
        assert ha.ledger.load(2, now + 570) == (10, 20)
        assert ha.ledger.load(3, now + 3600) == (10, 20)
        assert ha.core.counters["ledger-purged"] == 1
        reactor.advance(600)  # 630 s past the end of SA 2: the grace is over
        assert ha.ledger.load(2, now + 570) is None
        assert ha.core.counters["ledger-purged"] == 2
    finally:
        ha.stop()
        ha.ledger.close()


def test_a_failed_lookup_is_counted_and_the_next_datagram_asks_again(tmp_path):
    source = Source()
    source.answer = OSError("store unreachable")
    ha, _ = make_server(tmp_path, source)
    mn = Mn(make_sa(spi=99))
    try:
        ha.datagram_received(mn.bu(), mn.care_of)
        assert ha.core.counters["lookup-failed"] == 1
        source.answer = None  # reachable again, and the SA is not there
        ha.datagram_received(mn.bu(), mn.care_of)
        assert ha.core.counters["unknown-spi"] == 1
        ha.datagram_received(mn.bu(), mn.care_of)
        assert ha.core.counters["negative-cached"] == 1
        assert source.asked == [99, 99]
    finally:
        ha.ledger.close()


def test_socket_bookkeeping_follows_the_bindings_and_lookups(tmp_path):
    ha, _ = make_server(tmp_path)
    source = ha.source
    source.answer = defer.Deferred()  # a lookup that never answers
    ha.tracking, ha.arrival = True, "socket-a"
    try:
        first = Binding(IPv6Address("2001:db8:1::1"), ("2001:db8:2::1", 4000), 1, 1e12, 7)
        ha._carry_out([Registered(first)])
        # another MN now registers from the same care-of: the first binding goes silently
        ha.core.bindings.put(first)
        second = Binding(IPv6Address("2001:db8:1::2"), ("2001:db8:2::1", 4000), 1, 1e12, 8)
        ha.core.bindings.put(second)
        ha._carry_out([Registered(second)])
        mn = Mn(make_sa(spi=99))
        ha.datagram_received(mn.bu(), mn.care_of)
        assert set(ha._via) == {first.home_address, second.home_address}
        assert set(ha._lookup_via) == {99}
        ha.reactor.advance(ha.core.policy.lookup_timeout)
        ha._timer_fired()
        assert set(ha._via) == {second.home_address}
        assert ha._lookup_via == {} and ha.core.counters["lookup-timeout"] == 1
    finally:
        ha.ledger.close()


class Hung(Source):
    """A source whose lookups never answer (a hung store connection)."""

    def lookup(self, spi):
        self.asked.append(spi)
        return defer.Deferred()


def test_lookups_the_source_never_answers_do_not_pile_up(tmp_path):
    source = Hung()
    reactor = MemoryReactorClock()
    ledger = SequenceLedger(tmp_path / "ha.state")
    policy = HaPolicy(home_agent=HA, max_pending_lookups=2, lookup_timeout=1)
    ha = HomeAgentServer(HomeAgentCore(policy), source, ledger, reactor=reactor,
                         clock=reactor.seconds)
    try:
        for spi in (1, 2):
            mn = Mn(make_sa(spi=spi))
            ha.datagram_received(mn.bu(), mn.care_of)
        reactor.advance(1)
        ha._timer_fired()  # the core gives both up: its backlog is free again, the source is not
        assert ha.core.counters["lookup-timeout"] == 2
        mn = Mn(make_sa(spi=3))
        ha.datagram_received(mn.bu(), mn.care_of)
        assert source.asked == [1, 2] and ha.core.counters["lookup-failed"] == 1
        assert not ha.core.is_pending(3)
    finally:
        ledger.close()


def test_a_refresh_round_is_skipped_while_the_last_one_is_unanswered(tmp_path):
    source = Hung()
    ha, reactor = make_server(tmp_path, source, sa_refresh=30)
    for spi in (1, 2):
        ha._found(make_sa(spi=spi), spi)
    ha.start()
    try:
        reactor.advance(30)
        assert sorted(source.asked) == [1, 2]
        reactor.advance(30)
        assert sorted(source.asked) == [1, 2] and ha.core.counters["sa-refresh-skipped"] == 1
    finally:
        ha.stop()
        ha.ledger.close()
