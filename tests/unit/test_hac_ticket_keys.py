"""hac.ticket_keys: the current and the next period's ticket keys from the store, on a fake
clock (the ServerTLS side is tests/unit/test_tls.py's)."""

from __future__ import annotations

import logging

from twisted.internet import defer
from twisted.internet.task import Clock

from aaa_mip6.store import StoreError, open_store
from hac.ticket_keys import SharedTicketKeys, periods


class RecordingTLS:
    def __init__(self):
        self.keys: dict[float, bytes] = {}

    def use_ticket_key(self, started: float, key: bytes) -> None:
        self.keys[started] = key


def keys_for(store, now: list[float], reactor=None):
    tls = RecordingTLS()
    keys = SharedTicketKeys(store, tls, 3600, reactor or Clock(),
                            lambda function, *args: defer.maybeDeferred(function, *args),
                            lambda: now[0])
    return keys, tls


def test_two_hacs_get_the_current_and_next_key_alike_and_follow_the_periods(tmp_path):
    now = [7300.0]
    with open_store(f"sqlite:///{tmp_path}/sa.db") as store:
        one, one_tls = keys_for(store, now)
        other, other_tls = keys_for(store, now)
        reactor = Clock()
        one._refresh.clock = reactor
        one.load()
        one.start()
        other.fetch()
        assert sorted(one_tls.keys) == [7200, 10800] and one_tls.keys == other_tls.keys
        now[0] = 11000.0
        reactor.advance(900)  # a quarter period: the refresh
        assert sorted(one_tls.keys) == [7200, 10800, 14400]
        assert one_tls.keys[10800] == other_tls.keys[10800]
        one.stop()
        assert not one._refresh.running


def test_a_store_that_fails_keeps_the_last_key_and_says_so_without_it(tmp_path, caplog):
    class Failing:
        def ticket_key(self, started, lifetime):
            raise StoreError("SA store: reading a ticket key failed (OperationalError)")

    keys, tls = keys_for(Failing(), [7300.0])
    with caplog.at_level(logging.WARNING):
        keys.load()
        keys.fetch()
    assert tls.keys == {}
    assert "TLS ticket keys not read from the store" in caplog.text
    assert "TLS ticket keys not refreshed from the store (the last stay in use)" in caplog.text


def test_periods_start_on_multiples_of_the_lifetime():
    assert periods(3599.9, 3600) == (0, 3600)
