"""hac.provisioning: suite and scope policy, validity end, HA selection, home addresses."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.sa import HomeAgent
from aaa_mip6.store import AddressPoolExhausted, open_store
from aaa_mip6.suites import SUITES
from hac.provisioning import (
    BootstrapPolicy, HaSelection, Provisioner, SaPolicy, choose_home_agent,
)

NOW = datetime(2030, 5, 6, 7, 8, 9, 654321, tzinfo=timezone.utc)
HA1 = HomeAgent(ipaddress.IPv6Address("2001:db8::1"), None, 7872)
HA2 = HomeAgent(None, ipaddress.IPv4Address("192.0.2.1"), 9000)
HA3 = HomeAgent(ipaddress.IPv6Address("2001:db8::3"), ipaddress.IPv4Address("192.0.2.3"), 7872)
PREFIX6 = ipaddress.IPv6Network("2001:db8:1::/64")
POOL4 = ipaddress.IPv4Network("198.51.100.0/30")
codes = [suite.code for suite in SUITES.values()]


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/sa.db") as opened:
        yield opened


def provisioner(store, *, agents=(HA1,), selection=HaSelection.ROUND_ROBIN,
                sa_policy=SaPolicy(), **bootstrap) -> Provisioner:
    policy = BootstrapPolicy(agents, selection=selection, **bootstrap)
    return Provisioner(store, sa_policy, policy, hac_instance="hac-test", now=lambda: NOW)


def test_suite_is_the_first_of_the_mns_list_that_policy_allows():
    policy = SaPolicy(suites=frozenset({SUITES["AES_128_CBC_SHA"], SUITES["NULL_SHA256"]}))
    offered = (SUITES["3DES_EDE_CBC_SHA"].code, SUITES["NULL_SHA256"].code,
               SUITES["AES_128_CBC_SHA"].code)
    assert policy.choose_suite(offered) is SUITES["NULL_SHA256"]
    assert policy.choose_suite(offered[::-1]) is SUITES["AES_128_CBC_SHA"]
    assert policy.choose_suite((SUITES["3DES_EDE_CBC_SHA"].code,)) is None
    assert policy.choose_suite((b"\x99\x99",)) is None


@given(st.lists(st.sampled_from(codes), unique=True, max_size=5),
       st.sets(st.sampled_from(list(SUITES.values())), min_size=1))
def test_chosen_suite_is_always_offered_and_allowed(offered, allowed):
    chosen = SaPolicy(suites=frozenset(allowed)).choose_suite(tuple(offered))
    acceptable = [code for code in offered if SUITES_BY_CODE[code] in allowed]
    assert (chosen.code if chosen else None) == (acceptable[0] if acceptable else None)


SUITES_BY_CODE = {suite.code: suite for suite in SUITES.values()}


@pytest.mark.parametrize("scopes, default, requested, granted", [
    ({0, 1}, 1, 0, 0), ({0, 1}, 1, 1, 1), ({1}, 1, 0, 1), ({0}, 0, 1, 0),
])
def test_requested_scope_is_honoured_only_if_allowed(scopes, default, requested, granted):
    policy = SaPolicy(scopes=frozenset(scopes), default_scope=default)
    assert policy.choose_scope(requested) == granted


def test_validity_end_is_whole_seconds_utc():
    end = SaPolicy(lifetime=3600).validity_end(NOW)
    assert end == datetime(2030, 5, 6, 8, 8, 9, tzinfo=timezone.utc)


@pytest.mark.parametrize("changes", [
    dict(suites=frozenset()), dict(scopes=frozenset()), dict(scopes=frozenset({2})),
    dict(scopes=frozenset({0}), default_scope=1), dict(lifetime=0),
])
def test_bad_sa_policy_is_refused(changes):
    with pytest.raises(ValueError):
        SaPolicy(**changes)


def test_bootstrap_policy_needs_a_usable_home_agent():
    with pytest.raises(ValueError):
        BootstrapPolicy(())
    with pytest.raises(ValueError):
        BootstrapPolicy((HomeAgent(None, None),))


def test_round_robin_cycles_through_the_agents(store):
    chooser = provisioner(store, agents=(HA1, HA2, HA3))
    assert [chooser.select_home_agent("a@example.org") for _ in range(4)] == [HA1, HA2, HA3, HA1]


def test_hash_selection_is_sticky_per_mn_and_spreads(store):
    chooser = provisioner(store, agents=(HA1, HA2, HA3), selection=HaSelection.HASH)
    picks = {f"mn{n}@example.org": chooser.select_home_agent(f"mn{n}@example.org")
             for n in range(30)}
    assert all(chooser.select_home_agent(mn) == ha for mn, ha in picks.items())
    assert set(picks.values()) == {HA1, HA2, HA3}


def test_provision_stores_the_sa_and_describes_it(store):
    maker = provisioner(store, agents=(HA2,), hoa_prefix6=PREFIX6, hoa_pool4=POOL4,
                        dns6=ipaddress.IPv6Address("2001:db8::53"),
                        sa_policy=SaPolicy(scopes=frozenset({1}), lifetime=600))
    suite = SUITES["AES_128_CBC_SHA256"]
    provision = maker.provision("alice@example.org", suite, 0)
    assert provision.suite == suite.code and provision.scope == 1
    assert provision.validity_end == datetime(2030, 5, 6, 7, 18, 9, tzinfo=timezone.utc)
    assert len(provision.mn_to_ha_ikey) == 16 and len(provision.ha_to_mn_ekey) == 16
    assert provision.mn_to_ha_ikey != provision.ha_to_mn_ikey
    bootstrap = provision.bootstrap
    assert bootstrap.home_agent == HA2
    assert bootstrap.home_address6 in PREFIX6 and bootstrap.home_address4 in POOL4
    assert (bootstrap.home_prefix6, bootstrap.home_prefix4) == (PREFIX6, POOL4)
    assert bootstrap.dns6 == ipaddress.IPv6Address("2001:db8::53") and bootstrap.dns4 is None
    record = store.get(provision.spi)
    assert record.sa.mn_id == "alice@example.org" and record.hac_instance == "hac-test"
    assert record.home_agent == HA2
    assert record.sa.mn_to_ha_ikey == provision.mn_to_ha_ikey


def test_null_suite_has_no_encryption_keys(store):
    provision = provisioner(store).provision("a@example.org", SUITES["NULL_SHA"], 1)
    assert (len(provision.mn_to_ha_ikey), provision.mn_to_ha_ekey) == (20, b"")


def test_home_address_is_stable_for_a_returning_mn_and_spis_differ(store):
    maker = provisioner(store, hoa_prefix6=PREFIX6)
    suite = SUITES["AES_128_CBC_SHA"]
    first = maker.provision("alice@example.org", suite, 1)
    again = maker.provision("alice@example.org", suite, 1)
    other = maker.provision("bob@example.org", suite, 1)
    assert first.bootstrap.home_address6 == again.bootstrap.home_address6
    assert other.bootstrap.home_address6 != first.bootstrap.home_address6
    assert len({first.spi, again.spi, other.spi}) == 3


def test_ha_addresses_are_never_home_addresses_and_pools_run_out(store):
    agent = HomeAgent(None, ipaddress.IPv4Address("198.51.100.1"), 7872)
    maker = provisioner(store, agents=(agent,), hoa_pool4=POOL4)  # hosts .1 and .2
    suite = SUITES["AES_128_CBC_SHA"]
    assert maker.provision("a@example.org", suite, 1).bootstrap.home_address4 == \
        ipaddress.IPv4Address("198.51.100.2")
    with pytest.raises(AddressPoolExhausted):
        maker.provision("b@example.org", suite, 1)


def test_provision_records_commits_a_batch_and_isolates_a_failure(store):
    pool = ipaddress.IPv4Network("198.51.100.0/30")  # two addresses
    hac = provisioner(store, hoa_pool4=pool)
    suite = SUITES["AES_128_CBC_SHA"]
    outcomes = hac.provision_records([(f"mn{n}@example.org", suite, 1, None)
                                      for n in range(3)])
    assert [type(outcome) for outcome in outcomes[:2]] == [tuple, tuple]
    assert isinstance(outcomes[2], AddressPoolExhausted)
    stored = {record.sa.spi for record in store.active()}
    assert stored == {record.sa.spi for record, _ in outcomes[:2]}
    assert [provision.spi for _, provision in outcomes[:2]] == [
        record.sa.spi for record, _ in outcomes[:2]]


def test_provision_records_of_one_stores_it_or_returns_its_error(store):
    pool = ipaddress.IPv4Network("198.51.100.0/30")  # two addresses
    hac = provisioner(store, hoa_pool4=pool)
    suite = SUITES["AES_128_CBC_SHA"]
    outcomes = [hac.provision_records([(f"mn{n}@example.org", suite, 1, None)])[0]
                for n in range(3)]
    assert {record.sa.spi for record, _ in outcomes[:2]} == {
        record.sa.spi for record in store.active()}
    assert isinstance(outcomes[2], AddressPoolExhausted)


# -- the HA choice: load-aware, skipping HAs whose Diameter peer is down -------------

def test_least_loaded_picks_the_ha_with_the_fewest_active_sas_ties_in_turn():
    agents = (HA1, HA2, HA3)
    load = {HA1: 5, HA2: 2, HA3: 2}
    picks = [choose_home_agent(HaSelection.LEAST_LOADED, agents, "mn", turn, load)
             for turn in range(4)]
    assert picks == [HA2, HA3, HA2, HA3]
    assert choose_home_agent(HaSelection.LEAST_LOADED, agents, "mn", 0, {}) == HA1


@pytest.mark.parametrize("selection", list(HaSelection))
def test_an_ha_whose_peer_is_down_is_skipped_unless_all_are(selection):
    agents = (HA1, HA2, HA3)
    chosen = {choose_home_agent(selection, agents, f"mn{n}", n, {HA2: 0, HA1: 9, HA3: 9},
                                down={HA2}) for n in range(12)}
    assert HA2 not in chosen and chosen
    everyone = {choose_home_agent(selection, agents, f"mn{n}", n, {}, down=set(agents))
                for n in range(12)}
    assert everyone <= set(agents) and everyone


def test_the_provisioner_counts_its_own_choices_until_the_store_is_read_again(store):
    chooser = provisioner(store, agents=(HA1, HA2), selection=HaSelection.LEAST_LOADED)
    chooser.load = {HA1: 3, HA2: 0}
    picks = [chooser.select_home_agent("mn@example.org") for _ in range(5)]
    assert picks.count(HA2) == 4 and chooser.load == {HA1: 4, HA2: 4}
