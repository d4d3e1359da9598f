"""Binding cache: lookups by IPv6/IPv4 home address and care-of, replacement, expiry on a clock."""

from ipaddress import IPv4Address, IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from ha.bindings import STALE_DEADLINES_KEPT, Binding, BindingCache, address_key

HOA = IPv6Address("2001:db8:1::100")
HOA4 = IPv4Address("192.0.2.100")


def test_lookup_by_either_home_address_and_by_care_of():
    cache = BindingCache()
    binding = Binding(HOA, ("2001:db8:2::5", 4000), 1, 100.0, 7, HOA4)
    cache.put(binding)
    assert cache.get(HOA) is cache.get(HOA4) is cache.get_by_key(HOA4.packed) is binding
    assert cache.get_by_care_of(("2001:db8:2::5", 4000)) is binding
    assert cache.get_by_care_of(("2001:db8:2::5", 4001)) is None
    assert len(cache) == 1 and list(cache) == [binding]


def test_ipv4_mapped_home_address_is_found_by_its_ipv4_form():
    cache = BindingCache()
    mapped = IPv6Address(f"::ffff:{HOA4}")
    binding = Binding(mapped, ("192.0.2.50", 4000), 1, 100.0, 7)
    cache.put(binding)
    assert address_key(mapped) == HOA4.packed
    assert cache.get(HOA4) is cache.get(mapped) is binding


def test_refresh_replaces_and_old_care_of_is_forgotten():
    cache = BindingCache()
    cache.put(Binding(HOA, ("198.51.100.1", 1), 1, 100.0, 7))
    moved = Binding(HOA, ("198.51.100.2", 2), 2, 200.0, 7)
    cache.put(moved)
    assert cache.get(HOA) is moved and len(cache) == 1
    assert cache.get_by_care_of(("198.51.100.1", 1)) is None
    assert cache.expire(150.0) == []  # the stale deadline of the first binding is skipped
    assert cache.expire(200.0) == [moved] and cache.get(HOA) is None and len(cache) == 0


def test_a_care_of_taken_over_by_another_mn_drops_the_stale_binding():
    cache = BindingCache()
    stale = Binding(HOA, ("198.51.100.1", 1), 1, 100.0, 7)
    cache.put(stale)
    other = Binding(IPv6Address("2001:db8:1::200"), ("198.51.100.1", 1), 1, 100.0, 8)
    cache.put(other)
    assert cache.get(HOA) is None and len(cache) == 1


def test_remove_is_idempotent():
    cache = BindingCache()
    binding = Binding(HOA, ("198.51.100.1", 1), 1, 100.0, 7, HOA4)
    cache.put(binding)
    cache.remove(binding)
    cache.remove(binding)
    assert len(cache) == 0 and cache.get(HOA4) is None


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 50), st.integers(0, 3)), max_size=40),
       st.integers(0, 60))
def test_expiry_matches_a_naive_model(updates, now):
    cache, model = BindingCache(), {}
    for host, (index, expires, port) in enumerate(updates):
        address = IPv6Address(f"2001:db8::{index + 1:x}")
        binding = Binding(address, (f"198.51.100.{host}", port), 1, float(expires), index)
        cache.put(binding)
        model[address] = binding
    expired = cache.expire(float(now))
    assert {b.home_address for b in expired} == {a for a, b in model.items() if b.expires <= now}
    assert {b.home_address for b in cache} == {a for a, b in model.items() if b.expires > now}
    assert len(cache) == len(list(cache))


def test_refreshing_a_binding_over_and_over_keeps_the_expiry_heap_bounded():
    cache = BindingCache()
    other = Binding(IPv6Address("2001:db8:1::200"), ("2001:db8:2::6", 4000), 1, 50.0, 8)
    cache.put(other)
    for sequence in range(1, 10_001):  # an MN refreshing every second for hours
        cache.put(Binding(HOA, ("2001:db8:2::5", 4000), sequence, 3600.0 + sequence, 7))
    assert len(cache._deadlines) <= 2 * len(cache) + STALE_DEADLINES_KEPT
    assert cache.expire(49.0) == [] and cache.expire(50.0) == [other]
    assert cache.expire(13_599.0) == [] and [b.sequence for b in cache.expire(13_600.0)] == [10_000]
    assert len(cache) == 0
