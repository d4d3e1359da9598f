"""HA core (sans-I/O): BU/BA with every suite, drops that change nothing, 176, forwarding, restart."""

import struct
from collections import Counter
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.mobility.messages import (
    BindingAckStatus,
    BindingError,
    BindingErrorStatus,
    BindingUpdate,
    BindingUpdateFlag,
    IPv4AckStatus,
    IPv4AddressAcknowledgement,
    IPv4HomeAddress,
)
from aaa_mip6.mobility.payloads import (
    decode_binding_ack_payload,
    decode_home_agent_payload,
    encode_binding_update_payload,
)
from aaa_mip6.replay import SEQ_LIMIT
from aaa_mip6.sa import SCOPE_ALL, SCOPE_SIGNALING, SecurityAssociation
from aaa_mip6.suites import SUITES, new_keys
from aaa_mip6.transform import PType, SaEndpoint, encode_plain
from ha.actions import (
    Deregistered,
    Drop,
    FetchSA,
    PersistSequences,
    Registered,
    SendDatagram,
    WriteTun,
)
from ha.core import HaPolicy, HomeAgentCore

NOW = 1_900_000_000.0
HA = IPv6Address("2001:db8:ffff::1")
HOA = IPv6Address("2001:db8:1::100")
HOA4 = IPv4Address("192.0.2.100")
COA = ("2001:db8:2::5", 40000)
CN = IPv6Address("2001:db8:1::1")
SPI = 4242


def make_sa(suite="AES_128_CBC_SHA", *, spi=SPI, scope=SCOPE_ALL, validity=timedelta(hours=2),
            hoa=HOA, hoa4=None, revoked=False):
    keys = new_keys(SUITES[suite])
    return SecurityAssociation(
        spi=spi, suite=suite, mn_to_ha_ikey=keys.mn_to_ha_ikey, ha_to_mn_ikey=keys.ha_to_mn_ikey,
        mn_to_ha_ekey=keys.mn_to_ha_ekey, ha_to_mn_ekey=keys.ha_to_mn_ekey,
        validity_end=datetime.fromtimestamp(int(NOW), timezone.utc) + validity,
        scope=scope, mn_id="mn@example.net", home_address6=hoa, home_address4=hoa4,
        revoked=revoked)


class Mn:
    """Plays the MN with the project's transform and mobility codecs."""

    def __init__(self, sa, home_address=HOA, care_of=COA):
        self.sa = sa
        self.endpoint = SaEndpoint(sa, "mn")
        self.home_address = home_address
        self.care_of = care_of
        self.sequence = 0

    def bu(self, *, lifetime=600, sequence=None, flags=None, options=(), home_address=None):
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        update = BindingUpdate(sequence, lifetime // 4, options=options,
                               **({} if flags is None else {"flags": flags}))
        next_header, payload = encode_binding_update_payload(
            home_address or self.home_address, HA, update)
        return self.endpoint.protect(PType.MOBILITY, payload, next_header)

    def ack(self, data):
        opened = self.endpoint.unprotect(data)
        home_address, ack = decode_binding_ack_payload(opened.next_header, opened.payload, HA)
        assert home_address == self.home_address
        return ack

    def data(self, packet):
        if self.sa.scope == SCOPE_ALL:
            return self.endpoint.protect(PType.ENCRYPTED_IP, packet, 41)
        return encode_plain(packet)


def ipv6_packet(source, destination, payload=b"hello"):
    header = struct.pack("!IHBB", 6 << 28, len(payload), 17, 64)
    return header + source.packed + destination.packed + payload


def feed(core, mn, data, now=NOW, care_of=None):
    host, port = care_of or mn.care_of
    return core.datagram_received(host, port, data, now)


def only(actions, kind):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def new_core(sa, **policy):
    core = HomeAgentCore(HaPolicy(home_agent=HA, **policy))
    assert core.sa_found(sa.spi, sa, None, NOW) == []
    return core


def registered(suite="AES_128_CBC_SHA", **sa_args):
    sa = make_sa(suite, **sa_args)
    core, mn = new_core(sa), Mn(sa)
    ack = mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data)
    assert ack.status == BindingAckStatus.ACCEPTED
    return core, mn


def snapshot(core):
    state = core._sas.get(SPI)
    return (
        [(b.home_address, b.care_of, b.sequence, b.expires, b.spi) for b in core.bindings],
        None if state is None else (state.endpoint.replay.highest, state.endpoint.next_sequence,
                                    state.inbound_floor, state.outbound_ceiling,
                                    state.endpoint.replay.snapshot()),
    )


def counted_once(core, before, reason):
    """The drop's counter went up by one and no other counter moved."""
    expected = before.copy()
    expected[reason] += 1
    return core.counters == expected


@pytest.mark.parametrize("suite", list(SUITES))
def test_binding_update_and_ack_with_every_suite(suite):
    sa = make_sa(suite)
    core, mn = new_core(sa), Mn(sa)
    actions = feed(core, mn, mn.bu(lifetime=600))
    assert isinstance(actions[0], PersistSequences)
    binding = only(actions, Registered).binding
    send = only(actions, SendDatagram)
    assert (send.host, send.port) == COA
    ack = mn.ack(send.data)
    assert (ack.status, ack.sequence, ack.lifetime_seconds) == (0, 1, 600)
    assert core.bindings.get(HOA) is binding
    assert binding.care_of == COA and binding.expires == NOW + 600 and binding.spi == SPI


def test_unknown_spi_is_fetched_then_processed_or_dropped():
    sa = make_sa()
    core, mn = HomeAgentCore(HaPolicy(home_agent=HA)), Mn(sa)
    assert feed(core, mn, mn.bu()) == [FetchSA(SPI)]
    assert feed(core, mn, mn.bu()) == []  # parked behind the same lookup
    actions = core.sa_found(SPI, sa, None, NOW)
    assert [mn.ack(a.data).status for a in actions if isinstance(a, SendDatagram)] == [0, 0]
    other = Mn(make_sa(spi=777))
    assert feed(core, other, other.bu()) == [FetchSA(777)]
    assert core.sa_found(777, None, None, NOW) == [Drop("unknown-spi")]
    assert core.counters["unknown-spi"] == 1


def test_lookup_backlog_is_bounded():
    core = HomeAgentCore(HaPolicy(home_agent=HA, max_pending_lookups=1, max_parked_per_spi=1))
    first, second = Mn(make_sa(spi=10)), Mn(make_sa(spi=11))
    assert feed(core, first, first.bu()) == [FetchSA(10)]
    assert feed(core, first, first.bu()) == [Drop("lookup-backlog")]
    assert feed(core, second, second.bu()) == [Drop("lookup-backlog")]


def unknown(spi, ptype=PType.ENCRYPTED_IP):
    """A datagram under ``spi`` no SA holds: a header and noise, as a flood sends."""
    return struct.pack("!II", ptype << 28 | spi, 1) + bytes(48)


def test_a_random_spi_flood_from_one_source_does_not_starve_a_new_mns_first_bu():
    core = HomeAgentCore(HaPolicy(home_agent=HA))  # the defaults; no lookup ever answered
    for spi in range(1000, 6000):
        for port in (5000, 5001, 5002):
            core.datagram_received("2001:db8:2::66", port, unknown(spi * 3 + port), NOW)
    sa = make_sa(spi=99)
    mn = Mn(sa, care_of=("2001:db8:2::66", 6000))  # behind the flooder's own /64
    assert feed(core, mn, mn.bu()) == [FetchSA(99)]
    assert mn.ack(only(core.sa_found(99, sa, None, NOW), SendDatagram).data).status == 0
    assert core.counters["lookup-rate-limited"] == 15000 - 20
    assert core.counters["lookup-backlog"] == 0


def test_a_random_spi_flood_from_many_sources_leaves_half_the_backlog_to_bus():
    core = HomeAgentCore(HaPolicy(home_agent=HA, max_pending_lookups=64))
    for source in range(200):
        core.datagram_received(f"2001:db8:{source:x}::1", 5000, unknown(1000 + source), NOW)
    assert core.counters["lookup-backlog"] == 200 - 32
    mn = Mn(make_sa(spi=99))
    assert feed(core, mn, mn.bu()) == [FetchSA(99)]


def test_an_spi_the_source_lacks_is_not_looked_up_again_until_pushed_or_the_ttl_ends():
    core = HomeAgentCore(HaPolicy(home_agent=HA, negative_cache_ttl=5))
    sa = make_sa(spi=99)
    mn = Mn(sa)
    assert feed(core, mn, mn.bu()) == [FetchSA(99)]
    assert core.sa_found(99, None, None, NOW) == [Drop("unknown-spi")]
    assert feed(core, mn, mn.bu(), now=NOW + 1) == [Drop("negative-cached")]
    assert feed(core, mn, mn.bu(), now=NOW + 5) == [FetchSA(99)]  # the TTL is over
    assert core.sa_found(99, None, None, NOW + 5) == [Drop("unknown-spi")]
    assert core.sa_changed(sa) == []  # pushed (SA delivery): not held yet, but asked again
    assert feed(core, mn, mn.bu(), now=NOW + 6) == [FetchSA(99)]
    assert core.counters["negative-cached"] == 1


def test_a_lookup_that_finds_the_sa_clears_its_negative_cache_entry():
    core = HomeAgentCore(HaPolicy(home_agent=HA, negative_cache_ttl=5))
    core.datagram_received("192.0.2.7", 5000, unknown(99), NOW)
    core.sa_found(99, None, None, NOW)
    core.admission.missing(98, NOW)
    assert core.sa_found(98, make_sa(spi=98), None, NOW) == []  # a refresh found it after all
    assert core.datagram_received("192.0.2.7", 5000, unknown(98), NOW) != [Drop("negative-cached")]


def test_a_failed_lookup_drops_its_datagrams_and_caches_nothing():
    core = HomeAgentCore(HaPolicy(home_agent=HA))
    mn = Mn(make_sa(spi=99))
    assert feed(core, mn, mn.bu()) == [FetchSA(99)]
    assert feed(core, mn, mn.bu()) == []
    assert core.lookup_failed(99) == [Drop("lookup-failed")] * 2
    assert feed(core, mn, mn.bu()) == [FetchSA(99)]


def test_a_lookup_that_never_answers_is_given_up_after_the_lookup_timeout():
    core = HomeAgentCore(HaPolicy(home_agent=HA, lookup_timeout=30, max_pending_lookups=1))
    mn = Mn(make_sa(spi=99))
    assert feed(core, mn, mn.bu()) == [FetchSA(99)]
    assert core.handle_timer(NOW + 29) == [] and core.is_pending(99)
    assert core.handle_timer(NOW + 30) == [Drop("lookup-timeout")]
    assert not core.is_pending(99)
    other = Mn(make_sa(spi=98))
    assert feed(core, other, other.bu(), now=NOW + 30) == [FetchSA(98)]  # the backlog is free


def test_drops_change_nothing():
    core, mn = registered()
    captured = mn.bu()
    feed(core, mn, captured)
    before = snapshot(core)
    tampered = bytearray(mn.bu())
    tampered[-1] ^= 1
    wrong_hoa = mn.bu(home_address=IPv6Address("2001:db8:1::666"))
    cases = {
        "replay": captured,
        "bad-icv": bytes(tampered),
        "malformed": mn.bu()[:20],
        "unauthorized-hoa": wrong_hoa,
        # PType 0 from the bound care-of, under an SA whose scope (1) forbids it
        "scope-mismatch": encode_plain(ipv6_packet(HOA, CN)),
    }
    for reason, packet in cases.items():
        counters = core.counters.copy()
        assert feed(core, mn, packet) == [Drop(reason)], reason
        assert core.counters[reason] == 1, reason
        assert counted_once(core, counters, reason), reason
        assert snapshot(core) == before, reason


def test_unknown_spi_is_counted_once_the_lookup_finds_nothing():
    core, mn = registered()
    before, counters = snapshot(core), core.counters.copy()
    wrong_spi = bytearray(mn.bu())
    wrong_spi[3] ^= 1
    assert feed(core, mn, bytes(wrong_spi)) == [FetchSA(SPI ^ 1)]
    assert snapshot(core) == before and core.counters == counters
    assert core.sa_found(SPI ^ 1, None, None, NOW) == [Drop("unknown-spi")]
    assert core.counters["unknown-spi"] == 1
    assert counted_once(core, counters, "unknown-spi")
    assert snapshot(core) == before
    assert core.spis == [SPI]


def test_wrong_ptype_is_a_scope_mismatch_or_malformed():
    core, mn = registered(scope=SCOPE_SIGNALING)
    before = snapshot(core)
    # PType 1, protected with the SA's own keys, under scope 0 (PType 8 and 0 only)
    protected = mn.endpoint._outbound.protect(PType.ENCRYPTED_IP, 5, ipv6_packet(HOA, CN), 41)
    unknown_ptype = bytearray(mn.bu())
    unknown_ptype[0] = (unknown_ptype[0] & 0x0F) | 0x20  # PType 2: neither 0, 1 nor 8
    for reason, packet in (("scope-mismatch", protected), ("malformed", bytes(unknown_ptype))):
        counters = core.counters.copy()
        assert feed(core, mn, packet) == [Drop(reason)], reason
        assert counted_once(core, counters, reason), reason
        assert snapshot(core) == before, reason
    core, mn = registered()
    before, counters = snapshot(core), core.counters.copy()
    assert feed(core, mn, encode_plain(ipv6_packet(HOA, CN))) == [Drop("scope-mismatch")]
    assert counted_once(core, counters, "scope-mismatch")
    assert snapshot(core) == before


def test_spoofed_inner_source_is_dropped_without_moving_the_window():
    core, mn = registered()
    before, counters = snapshot(core), core.counters.copy()
    assert feed(core, mn, mn.data(ipv6_packet(CN, CN))) == [Drop("spoofed-source")]
    assert snapshot(core) == before
    assert counted_once(core, counters, "spoofed-source")
    actions = feed(core, mn, mn.data(ipv6_packet(HOA, CN)))
    assert only(actions, WriteTun).packet == ipv6_packet(HOA, CN)


@given(st.binary(max_size=200))
def test_arbitrary_datagrams_only_drop_or_fetch(data):
    core, mn = registered("NULL_SHA")
    before, counters = snapshot(core), core.counters.copy()
    actions = core.datagram_received(*COA, data, NOW)
    for action in actions:
        assert isinstance(action, (Drop, FetchSA))
    assert snapshot(core) == before
    assert core.counters == counters + Counter(a.reason for a in actions if isinstance(a, Drop))


def test_sequence_number_rules_modulo_2_16():
    core, mn = registered()
    stale = mn.ack(only(feed(core, mn, mn.bu(sequence=1)), SendDatagram).data)
    assert (stale.status, stale.sequence) == (BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, 1)
    assert core.bindings.get(HOA).sequence == 1
    for sequence in (30000, 60000, 65535, 0, 5):  # each newer than the last, wrapping at 2^16
        assert mn.ack(only(feed(core, mn, mn.bu(sequence=sequence)), SendDatagram).data).status == 0
    assert core.bindings.get(HOA).sequence == 5
    old = mn.ack(only(feed(core, mn, mn.bu(sequence=40000)), SendDatagram).data)
    assert (old.status, old.sequence) == (135, 5)


def test_lifetime_is_capped_by_policy_and_sa_validity():
    sa = make_sa(validity=timedelta(seconds=1000))
    core, mn = new_core(sa, max_lifetime=3000, reinit_margin=100), Mn(sa)
    ack = mn.ack(only(feed(core, mn, mn.bu(lifetime=60000)), SendDatagram).data)
    assert ack.lifetime_seconds == 1000
    core2, mn2 = registered()
    ack2 = mn2.ack(only(feed(core2, mn2, mn2.bu(lifetime=60000)), SendDatagram).data)
    assert ack2.lifetime_seconds == 3600  # default max_lifetime


def test_no_ack_flag_no_ba_when_accepted():
    core, mn = registered()
    actions = feed(core, mn, mn.bu(flags=BindingUpdateFlag.HOME_REGISTRATION))
    assert only(actions, Registered)
    assert not [a for a in actions if isinstance(a, SendDatagram)]
    rejected = feed(core, mn, mn.bu(flags=BindingUpdateFlag.ACKNOWLEDGE))
    assert mn.ack(only(rejected, SendDatagram).data).status == 129  # no H flag


def test_deregistration_by_lifetime_zero_and_by_care_of_equal_home():
    core, mn = registered()
    actions = feed(core, mn, mn.bu(lifetime=0))
    assert only(actions, Deregistered).why == "deregistered"
    assert mn.ack(only(actions, SendDatagram).data).lifetime_units == 0
    assert core.bindings.get(HOA) is None
    feed(core, mn, mn.bu())
    assert core.bindings.get(HOA) is not None
    actions = feed(core, mn, mn.bu(), care_of=(str(HOA), 7872))
    assert only(actions, Deregistered) and core.bindings.get(HOA) is None


def test_handover_moves_the_binding_to_the_new_care_of():
    core, mn = registered()
    moved = ("198.51.100.7", 50000)
    feed(core, mn, mn.bu(), care_of=moved)
    assert core.bindings.get(HOA).care_of == moved
    out = only(core.tun_packet(ipv6_packet(CN, HOA), NOW), SendDatagram)
    assert (out.host, out.port) == moved


@pytest.mark.parametrize("case", ["near-expiry", "revoked", "outbound-wrap", "inbound-wrap"])
def test_reinit_sa_with_hac(case):
    sa = make_sa(validity=timedelta(seconds=200) if case == "near-expiry" else timedelta(hours=1),
                 revoked=case == "revoked")
    core = HomeAgentCore(HaPolicy(home_agent=HA, reinit_margin=300))
    marks = {"outbound-wrap": (-1, SEQ_LIMIT - 10)}.get(case)
    core.sa_found(SPI, sa, marks, NOW - 3400)  # seen with an hour's lifetime: the full margin
    mn = Mn(sa)
    if case == "inbound-wrap":
        mn.endpoint._next_sequence = SEQ_LIMIT - 1000
    ack = mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data)
    assert ack.status == BindingAckStatus.REINIT_SA_WITH_HAC
    assert core.bindings.get(HOA) is None


def bu_status(core, mn, now):
    return mn.ack(only(feed(core, mn, mn.bu(), now=now), SendDatagram).data).status


def test_short_sa_registers_at_once_and_gets_176_only_in_its_last_half():
    sa = make_sa(validity=timedelta(seconds=120))
    core, mn = new_core(sa, reinit_margin=300), Mn(sa)  # loaded at NOW: lifetime 120 s
    assert bu_status(core, mn, NOW) == BindingAckStatus.ACCEPTED
    assert core.bindings.get(HOA) is not None
    assert bu_status(core, mn, NOW + 59.9) == BindingAckStatus.ACCEPTED
    assert bu_status(core, mn, NOW + 60) == BindingAckStatus.REINIT_SA_WITH_HAC
    assert core.counters["ba-status-176"] == 1


def test_long_sa_keeps_the_configured_margin():
    sa = make_sa(validity=timedelta(hours=2))
    core, mn = new_core(sa, reinit_margin=300), Mn(sa)
    end = NOW + 7200
    assert bu_status(core, mn, end - 300.1) == BindingAckStatus.ACCEPTED
    assert bu_status(core, mn, end - 300) == BindingAckStatus.REINIT_SA_WITH_HAC


def test_reinit_margin_is_scaled_to_the_lifetime_seen_since_the_sa_was_loaded():
    sa = make_sa(validity=timedelta(seconds=200))
    core = HomeAgentCore(HaPolicy(home_agent=HA, reinit_margin=300))
    core.sa_found(SPI, sa, None, NOW - 1000)  # loaded 1000 s before: margin 300, not 100
    mn = Mn(sa)
    assert bu_status(core, mn, NOW) == BindingAckStatus.REINIT_SA_WITH_HAC
    tiny = make_sa(spi=SPI + 1, validity=timedelta(seconds=6))
    core.sa_found(tiny.spi, tiny, None, NOW)  # half of 6 s is below one lifetime unit
    tiny_mn = Mn(tiny)
    assert bu_status(core, tiny_mn, NOW + 1.9) == BindingAckStatus.ACCEPTED
    assert bu_status(core, tiny_mn, NOW + 2) == BindingAckStatus.REINIT_SA_WITH_HAC


def test_revocation_removes_the_binding_and_stops_data():
    core, mn = registered()
    actions = core.sa_changed(mn.sa.replace(revoked=True))
    assert only(actions, Deregistered).why == "revoked"
    assert feed(core, mn, mn.data(ipv6_packet(HOA, CN))) == [Drop("revoked")]
    assert mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data).status == 176


def test_data_both_ways_scope_all():
    core, mn = registered()
    inbound = only(feed(core, mn, mn.data(ipv6_packet(HOA, CN, b"up"))), WriteTun)
    assert inbound.packet == ipv6_packet(HOA, CN, b"up")
    out = only(core.tun_packet(ipv6_packet(CN, HOA, b"down"), NOW), SendDatagram)
    opened = mn.endpoint.unprotect(out.data)
    assert (opened.ptype, opened.next_header, opened.payload) == (
        PType.ENCRYPTED_IP, 41, ipv6_packet(CN, HOA, b"down"))
    assert core.tun_packet(ipv6_packet(CN, IPv6Address("2001:db8:1::9")), NOW) == [
        Drop("no-binding")]
    assert core.counters["tunneled-in"] == core.counters["tunneled-out"] == 1


def test_plain_data_keyed_by_care_of_for_scope_signaling():
    core, mn = registered(scope=SCOPE_SIGNALING)
    assert only(feed(core, mn, mn.data(ipv6_packet(HOA, CN))), WriteTun)
    assert feed(core, mn, mn.data(ipv6_packet(HOA, CN)), care_of=("2001:db8:9::9", 1)) == [
        Drop("no-binding")]
    protected = mn.endpoint._outbound.protect(PType.ENCRYPTED_IP, 5, ipv6_packet(HOA, CN), 41)
    assert feed(core, mn, protected) == [Drop("scope-mismatch")]
    out = only(core.tun_packet(ipv6_packet(CN, HOA), NOW), SendDatagram)
    assert out.data == encode_plain(ipv6_packet(CN, HOA))


def test_ipv4_home_address_rfc5555():
    sa = make_sa(hoa4=HOA4)
    core, mn = new_core(sa), Mn(sa)
    ack = mn.ack(only(feed(core, mn, mn.bu(options=(IPv4HomeAddress(IPv4Address(0)),))),
                      SendDatagram).data)
    assert ack.options == (IPv4AddressAcknowledgement(IPv4AckStatus.SUCCESS, HOA4),)
    assert core.bindings.get(HOA4) is core.bindings.get(HOA)
    v4 = bytes([0x45]) + bytes(11) + HOA4.packed + IPv4Address("192.0.2.1").packed
    assert only(feed(core, mn, mn.endpoint.protect(PType.ENCRYPTED_IP, v4, 4)), WriteTun)
    reply = bytes([0x45]) + bytes(11) + IPv4Address("192.0.2.1").packed + HOA4.packed
    out = only(core.tun_packet(reply, NOW), SendDatagram)
    assert mn.endpoint.unprotect(out.data).next_header == 4
    wrong = mn.ack(only(feed(core, mn, mn.bu(options=(IPv4HomeAddress(IPv4Address("192.0.2.7")),))),
                        SendDatagram).data)
    assert wrong.options[0].status == IPv4AckStatus.INCORRECT_IPV4_HOME_ADDRESS


def test_ipv4_only_mobile_node_uses_the_mapped_home_address():
    sa = make_sa(hoa=None, hoa4=HOA4)
    core, mn = new_core(sa), Mn(sa, home_address=IPv6Address(f"::ffff:{HOA4}"))
    assert mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data).status == 0
    assert core.bindings.get(HOA4).care_of == COA


def test_binding_expiry_on_timer():
    core, mn = registered()
    assert core.handle_timer(NOW + 599) == []
    assert only(core.handle_timer(NOW + 600), Deregistered).why == "expired"
    assert core.bindings.get(HOA) is None


def _restart(core, sa, *, clean):
    """A new core on the same SA; the ledger holds the exact marks (clean) or the reserved ones."""
    saved = {}
    for action in (core.shutdown() if clean else []):
        saved[action.spi] = (action.inbound_floor, action.outbound_next)
    if not clean:
        state = core._sas[sa.spi]
        saved[sa.spi] = (state.inbound_floor, state.outbound_ceiling)
    fresh = HomeAgentCore(core.policy)
    fresh.sa_found(sa.spi, sa, saved[sa.spi], NOW)
    return fresh


def test_clean_restart_accepts_the_next_bu_and_refuses_old_packets():
    core, mn = registered()
    old_bu = mn.bu()
    feed(core, mn, old_bu)
    core = _restart(core, mn.sa, clean=True)
    before = snapshot(core)
    replayed = mn.ack(only(feed(core, mn, old_bu), SendDatagram).data)
    assert replayed.status == BindingAckStatus.REINIT_SA_WITH_HAC  # and nothing else
    assert snapshot(core)[0] == before[0] == []
    ack = mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data)  # HA counter skipped ahead too
    assert ack.status == 0 and core.bindings.get(HOA) is not None
    old_data = mn.data(ipv6_packet(HOA, CN))
    assert only(feed(core, mn, old_data), WriteTun)
    assert feed(core, mn, old_data) == [Drop("replay")]


def test_crash_restart_answers_176_to_bus_below_the_reserved_floor():
    core, mn = registered()
    core = _restart(core, mn.sa, clean=False)
    assert core._sas[SPI].endpoint.next_sequence == 4096
    ack = mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data)
    assert ack.status == BindingAckStatus.REINIT_SA_WITH_HAC
    assert core.bindings.get(HOA) is None
    mn.endpoint._next_sequence = 4097  # past the floor: an ordinary BU again
    assert mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data).status == 0


def test_crash_restart_answers_data_below_the_floor_with_a_binding_error_then_176():
    core, mn = registered()
    core = _restart(core, mn.sa, clean=False)  # a crash: the floor jumped past the MN
    window = core._sas[SPI].endpoint.replay.snapshot()
    counters = core.counters.copy()
    actions = feed(core, mn, mn.data(ipv6_packet(HOA, CN)), now=NOW + 10)
    assert actions[0] == Drop("no-binding")
    error = binding_error(mn, only(actions, SendDatagram).data)
    assert error == BindingError(BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS, HOA)
    assert core.counters == counters + Counter({"no-binding": 1, "binding-error-sent": 1})
    assert core._sas[SPI].endpoint.replay.snapshot() == window
    forged = bytearray(mn.data(ipv6_packet(HOA, CN)))
    forged[-1] ^= 1
    assert feed(core, mn, bytes(forged), now=NOW + 20) == [Drop("no-binding")]
    assert core.counters["binding-error-sent"] == 1  # a forged packet gets no answer
    ack = mn.ack(only(feed(core, mn, mn.bu(), now=NOW + 20), SendDatagram).data)
    assert ack.status == BindingAckStatus.REINIT_SA_WITH_HAC  # the BU it prompts: a new SA
    assert core.bindings.get(HOA) is None


def test_persist_comes_before_effects_once_per_block():
    core, mn = registered()
    state = core._sas[SPI]
    floor = state.inbound_floor
    assert floor == 4096 and state.outbound_ceiling == 4096
    assert not any(isinstance(a, PersistSequences)
                   for a in feed(core, mn, mn.data(ipv6_packet(HOA, CN))))
    mn.endpoint._next_sequence = floor + 1
    actions = feed(core, mn, mn.data(ipv6_packet(HOA, CN)))
    assert isinstance(actions[0], PersistSequences) and actions[0].inbound_floor == floor + 1 + 4096


@pytest.mark.parametrize("suite", ["NULL_SHA", "AES_128_CBC_SHA"])
def test_data_dropped_after_its_icv_leaves_the_whole_window_as_it_was(suite):
    core, mn = registered(suite)
    assert only(feed(core, mn, mn.data(ipv6_packet(HOA, CN))), WriteTun)
    skipped = mn.data(ipv6_packet(HOA, CN))  # leaves a hole in the window, sent last
    window = core._sas[SPI].endpoint.replay
    cases = {
        "spoofed-source": mn.data(ipv6_packet(CN, CN)),
        "malformed": mn.endpoint.protect(PType.ENCRYPTED_IP, ipv6_packet(HOA, CN), 4),
        "not IP": mn.data(b"\x00" * 60),
        "too short": mn.data(ipv6_packet(HOA, CN)[:39]),
    }
    for case, packet in cases.items():
        before, counters = window.snapshot(), core.counters.copy()
        reason = "spoofed-source" if case == "spoofed-source" else "malformed"
        assert feed(core, mn, packet) == [Drop(reason)], case
        assert window.snapshot() == before, case
        assert counted_once(core, counters, reason), case
    assert only(feed(core, mn, skipped), WriteTun)
    assert feed(core, mn, skipped) == [Drop("replay")]


def test_data_under_an_unusable_sa_or_with_no_binding_and_a_bad_icv_is_only_dropped():
    core, mn = registered(validity=timedelta(minutes=10))
    forged = mn.data(ipv6_packet(HOA, CN))[:-1] + b"\x00"  # unusable SA: no ICV check
    assert feed(core, mn, forged, now=NOW + 600) == [Drop("sa-expired")]
    core.sa_changed(mn.sa.replace(revoked=True))
    assert feed(core, mn, forged) == [Drop("revoked")]
    sa = make_sa()
    unbound = Mn(sa)
    forged = unbound.data(ipv6_packet(HOA, CN))[:-1] + b"\x00"
    assert feed(new_core(sa), unbound, forged) == [Drop("no-binding")]  # and no Binding Error


def binding_error(mn, data):
    opened = mn.endpoint.unprotect(data)
    assert opened.ptype is PType.MOBILITY
    home_address, message = decode_home_agent_payload(opened.next_header, opened.payload, HA)
    assert home_address == mn.home_address
    return message


def test_data_without_a_binding_is_answered_with_a_binding_error_once_a_second():
    core, mn = registered()
    core = _restart(core, mn.sa, clean=True)  # the HA lost its bindings
    before, counters = snapshot(core), core.counters.copy()
    actions = feed(core, mn, mn.data(ipv6_packet(HOA, CN)), now=NOW + 10)
    assert actions[0] == Drop("no-binding")
    send = only(actions, SendDatagram)
    assert (send.host, send.port) == COA
    error = binding_error(mn, send.data)
    assert error == BindingError(BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS, HOA)
    assert core.counters == counters + Counter({"no-binding": 1, "binding-error-sent": 1})
    assert snapshot(core)[0] == before[0] == []  # no binding made
    window = core._sas[SPI].endpoint.replay
    assert window.snapshot() == before[1][4]  # the data packet did not move the window
    assert feed(core, mn, mn.data(ipv6_packet(HOA, CN)), now=NOW + 10.9) == [Drop("no-binding")]
    again = feed(core, mn, mn.data(ipv6_packet(HOA, CN)), now=NOW + 11)
    assert binding_error(mn, only(again, SendDatagram).data).home_address == HOA
    assert core.counters["binding-error-sent"] == 2 and core.counters["no-binding"] == 3
    assert mn.ack(only(feed(core, mn, mn.bu(), now=NOW + 11), SendDatagram).data).status == 0
    assert only(feed(core, mn, mn.data(ipv6_packet(HOA, CN)), now=NOW + 11), WriteTun)


def test_no_binding_error_for_forged_packets_or_a_binding_under_another_sa():
    sa = make_sa()
    core, mn = new_core(sa), Mn(sa)
    forged = bytearray(mn.data(ipv6_packet(HOA, CN)))
    forged[-1] ^= 1
    assert feed(core, mn, bytes(forged)) == [Drop("no-binding")]
    # a forged packet does not use up the SA's Binding Error for this second
    assert only(feed(core, mn, mn.data(ipv6_packet(HOA, CN))), SendDatagram)
    newer = make_sa(spi=SPI + 1)
    core.sa_found(newer.spi, newer, None, NOW)
    newer_mn = Mn(newer)
    feed(core, newer_mn, newer_mn.bu())  # HOA is bound under the newer SA now
    assert feed(core, mn, mn.data(ipv6_packet(HOA, CN)), now=NOW + 5) == [Drop("no-binding")]
    assert core.counters["binding-error-sent"] == 1


def test_binding_error_rate_limit_is_per_sa():
    first, second = make_sa(), make_sa(spi=SPI + 1, hoa=IPv6Address("2001:db8:1::101"))
    core = new_core(first)
    core.sa_found(second.spi, second, None, NOW)
    for sa in (first, second):
        mn = Mn(sa, home_address=sa.home_address6)
        send = only(feed(core, mn, mn.data(ipv6_packet(sa.home_address6, CN))), SendDatagram)
        assert binding_error(mn, send.data).home_address == sa.home_address6
    assert core.counters["binding-error-sent"] == 2


def test_a_late_empty_answer_does_not_negative_cache_an_sa_found_meanwhile():
    sa = make_sa(spi=99)
    core = HomeAgentCore(HaPolicy(home_agent=HA, lookup_timeout=1))
    core.datagram_received("192.0.2.7", 5000, unknown(99), NOW)
    core.handle_timer(NOW + 1)  # given up
    mn = Mn(sa)
    assert feed(core, mn, mn.bu(), now=NOW + 1) == [FetchSA(99)]
    assert only(core.sa_found(99, sa, None, NOW + 1), SendDatagram)
    assert core.sa_found(99, None, None, NOW + 2) == []  # the first lookup, answering late
    assert core.admission.refusal(99, "192.0.2.8", True, 0, NOW + 2) is None


def test_flush_forgets_the_sa_and_its_binding_and_keeps_the_sequence_floor():
    core, mn = registered()
    actions = core.flush(SPI)
    assert only(actions, Deregistered).why == "flushed"
    marks = only(actions, PersistSequences)
    assert marks.spi == SPI and marks.inbound_floor >= 0
    assert core.spis == [] and len(core.bindings) == 0
    assert core.flush(SPI) == []
    assert only(feed(core, mn, mn.bu()), FetchSA).spi == SPI  # looked up again
