"""ha.admission: the negative cache, the BUs' share of the backlog, per-source lookup buckets."""

import pytest

from ha.admission import AdmissionPolicy, LookupAdmission

NOW = 1_900_000_000.0


def admission(**policy):
    return LookupAdmission(AdmissionPolicy(**policy))


def test_an_spi_the_source_lacks_is_refused_for_the_ttl_then_asked_again():
    rules = admission(negative_ttl=5.0)
    rules.missing(77, NOW)
    assert rules.refusal(77, "::1", True, 0, NOW + 4.9) == "negative-cached"
    assert rules.refusal(78, "::1", True, 0, NOW + 4.9) is None  # other SPIs are asked
    assert rules.refusal(77, "::1", True, 0, NOW + 5.0) is None


def test_a_pushed_or_found_sa_leaves_the_negative_cache_at_once():
    rules = admission()
    rules.missing(77, NOW)
    rules.present(77)
    assert rules.refusal(77, "::1", True, 0, NOW) is None


def test_a_zero_ttl_caches_nothing():
    rules = admission(negative_ttl=0)
    rules.missing(77, NOW)
    assert rules.refusal(77, "::1", True, 0, NOW) is None
    assert len(rules) == 1  # only the source's bucket


def test_the_negative_cache_keeps_the_newest_spis_up_to_its_size():
    rules = admission(negative_size=3, source_burst=100)
    for spi in range(1, 6):
        rules.missing(spi, NOW + spi)
    assert len(rules) == 3
    assert [rules.refusal(spi, "::1", True, 0, NOW + 6) for spi in (1, 2)] == [None, None]
    assert [rules.refusal(spi, "::1", True, 0, NOW + 6) for spi in (3, 4, 5)] == \
        ["negative-cached"] * 3


def test_half_the_backlog_is_kept_for_binding_updates():
    rules = admission(max_pending=10)
    assert rules.refusal(1, "192.0.2.1", False, 4, NOW) is None
    assert rules.refusal(2, "192.0.2.1", False, 5, NOW) == "lookup-backlog"
    assert rules.refusal(3, "192.0.2.1", True, 9, NOW) is None
    assert rules.refusal(4, "192.0.2.1", True, 10, NOW) == "lookup-backlog"


def test_each_source_gets_a_burst_then_its_rate_and_bus_have_their_own_bucket():
    rules = admission(source_rate=2.0, source_burst=3)
    data = [rules.refusal(spi, "192.0.2.1", False, 0, NOW) for spi in range(1, 5)]
    assert data == [None, None, None, "lookup-rate-limited"]
    assert rules.refusal(10, "192.0.2.1", True, 0, NOW) is None  # the BU bucket is full
    assert rules.refusal(11, "192.0.2.2", False, 0, NOW) is None  # another source
    assert rules.refusal(5, "192.0.2.1", False, 0, NOW + 0.4) == "lookup-rate-limited"
    assert rules.refusal(6, "192.0.2.1", False, 0, NOW + 0.5) is None  # one token back


def test_a_refused_lookup_takes_no_token():
    rules = admission(source_burst=1, max_pending=2)
    rules.missing(9, NOW)
    assert rules.refusal(9, "192.0.2.1", True, 0, NOW) == "negative-cached"
    assert rules.refusal(8, "192.0.2.1", True, 2, NOW) == "lookup-backlog"
    assert rules.refusal(7, "192.0.2.1", True, 0, NOW) is None


def test_sources_are_ipv4_addresses_and_ipv6_slash_64s():
    rules = admission(source_burst=1)
    assert rules.refusal(1, "2001:db8:1:2::5", False, 0, NOW) is None
    assert rules.refusal(2, "2001:db8:1:2::6", False, 0, NOW) == "lookup-rate-limited"


def test_the_buckets_are_bounded_and_the_least_recently_used_goes_first():
    rules = admission(source_burst=1, max_sources=2)
    assert rules.refusal(1, "192.0.2.1", False, 0, NOW) is None
    assert rules.refusal(2, "192.0.2.2", False, 0, NOW) is None
    assert rules.refusal(3, "192.0.2.1", False, 0, NOW) == "lookup-rate-limited"  # used last
    assert rules.refusal(4, "192.0.2.3", False, 0, NOW) is None  # forgets 192.0.2.2
    assert len(rules) == 2
    assert rules.refusal(5, "192.0.2.1", False, 0, NOW) == "lookup-rate-limited"
    assert rules.refusal(6, "192.0.2.2", False, 0, NOW) is None  # back with a full bucket


@pytest.mark.parametrize("bad", [{"max_pending": 0}, {"negative_size": 0},
                                 {"source_burst": 0}, {"max_sources": 0},
                                 {"negative_ttl": -1}, {"source_rate": 0}])
def test_impossible_limits_are_refused(bad):
    with pytest.raises(ValueError):
        AdmissionPolicy(**bad)
