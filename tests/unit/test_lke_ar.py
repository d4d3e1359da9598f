"""One test per rule of the AR side (aaa_mip6.lke.ar; draft-liu-mobileip-lke-01 §2.1, §4,
§6; docs/lke.md, "The AR"), each named after its rule."""

import copy
from ipaddress import IPv6Address

import pytest

from aaa_mip6.lke.actions import (
    BindPrevious,
    Drop,
    ForgetLbsa,
    SendIcmp,
    SendMobility,
    StoreLbsa,
    UnbindPrevious,
)
from aaa_mip6.lke.ar import ArPolicy
from aaa_mip6.lke.messages import (
    Finished,
    KeAckStatus,
    KeyExchangeAck,
    LkeBindingAck,
    LkeBindingUpdate,
)
from aaa_mip6.lke.nd import (
    ALL_NODES,
    UNSPECIFIED,
    DadAuthentication,
    LinkLayerAddress,
    LkeCapability,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterSolicitation,
    decode_nd,
    solicited_node,
    verify_dad,
)
from aaa_mip6.mobility.messages import BindingAckStatus, mobility_checksum

from .lke_harness import (
    AR_GLOBAL,
    AR_LL,
    ATTACKER_LL,
    ATTACKER_LLA,
    COA,
    MN_LL,
    NEW_COA,
    PREFIX,
    T0,
    deliver,
    established,
    ke_request,
    kernel_na,
    key_exchange,
    make_ar,
    make_mn,
)

KBM = bytes(range(16))


def _state(ar):
    return copy.deepcopy({k: v for k, v in vars(ar).items() if k not in ("counters", "_key")})


def _refused(ar, call, reason):
    """``call`` refuses with ``reason``, and changes nothing but that counter."""
    before, counters = _state(ar), ar.counters.copy()
    assert call() == [Drop(reason)]
    assert _state(ar) == before
    counters[reason] += 1
    assert ar.counters == counters


def _bu(sequence=1, lifetime=100, kbm=KBM, previous=COA, source=NEW_COA, flags=0xC000):
    return LkeBindingUpdate(sequence, lifetime, previous, flags).encode(source, AR_GLOBAL, kbm)


# ------------------------------------------------------------------ §3.1.1, §4.1 RA


def test_rule_ra_has_the_h_bit_and_a_capability_no_longer_than_the_router_lifetime():
    ar = make_ar(max_lifetime=7200, router_lifetime=1800)
    (send,) = ar.router_advertisement(T0)
    advertisement = decode_nd(send.data, send.source, send.destination).message
    assert (send.source, send.destination) == (AR_LL, ALL_NODES)
    assert advertisement.home_agent
    assert advertisement.option(LkeCapability).max_lifetime == 1800


def test_rule_a_router_solicitation_is_answered_at_most_every_3_seconds():
    ar = make_ar()
    solicitation = RouterSolicitation().encode(MN_LL, IPv6Address("ff02::2"))
    assert isinstance(ar.icmp_received(solicitation, MN_LL, IPv6Address("ff02::2"), 255, T0)[0],
                      SendIcmp)
    _refused(ar, lambda: ar.icmp_received(solicitation, MN_LL, IPv6Address("ff02::2"), 255,
                                          T0 + 1), "ra-rate-limited")


# ------------------------------------------------------------------ §2.1 a, §4.2, §6 KE Request


def test_rule_ke_messages_need_hop_limit_255_and_link_local_addresses():
    ar = make_ar()
    data = ke_request(KBM, 1)
    _refused(ar, lambda: ar.mobility_received(data, MN_LL, AR_LL, 254, T0), "not-link-local")
    global_source = ke_request(KBM, 1, source=NEW_COA)
    _refused(ar, lambda: ar.mobility_received(global_source, NEW_COA, AR_LL, 255, T0),
             "not-link-local")


def test_rule_ke_request_gets_a_signed_ack_then_an_authenticated_dad_probe():
    ar = make_ar(max_lifetime=400)
    ack, probe = ar.mobility_received(ke_request(KBM, 1, lifetime=1000), MN_LL, AR_LL, 255, T0)
    assert isinstance(ack, SendMobility) and (ack.source, ack.destination) == (AR_LL, MN_LL)
    decoded = KeyExchangeAck.decode(ack.data, AR_LL, MN_LL)
    decoded.verify(KBM)
    assert (decoded.status, decoded.sequence, decoded.care_of, decoded.ar_address) == (
        0, 1, COA, AR_GLOBAL)
    assert decoded.lifetime == 100  # min(requested 1000 units, advertised 400 s = 100 units)
    assert (probe.source, probe.destination) == (UNSPECIFIED, solicited_node(COA))
    solicitation = decode_nd(probe.data, probe.source, probe.destination)
    assert solicitation.message.target == COA
    assert verify_dad(solicitation, KBM).ar_address == AR_GLOBAL
    assert ar.lbsas == []  # pending until the DAD succeeds


def test_rule_ke_request_with_lifetime_zero_is_malformed():
    ar = make_ar()
    data = ke_request(KBM, 1, lifetime=0)
    _refused(ar, lambda: ar.mobility_received(data, MN_LL, AR_LL, 255, T0), "malformed")


def test_rule_ke_requests_are_rate_limited_per_source_with_exponential_backoff():
    ar = make_ar(ke_interval=3.0, ke_backoff_max=12.0, dad_transmits=1)
    assert len(ar.mobility_received(ke_request(KBM, 1), MN_LL, AR_LL, 255, T0)) == 2
    second = ke_request(KBM, 2)
    _refused(ar, lambda: ar.mobility_received(second, MN_LL, AR_LL, 255, T0 + 2.9),
             "ke-rate-limited")
    assert len(ar.mobility_received(second, MN_LL, AR_LL, 255, T0 + 3)) == 2
    third = ke_request(KBM, 3)  # asked again within the window: the interval doubled to 6 s
    _refused(ar, lambda: ar.mobility_received(third, MN_LL, AR_LL, 255, T0 + 8.9),
             "ke-rate-limited")
    assert len(ar.mobility_received(third, MN_LL, AR_LL, 255, T0 + 9)) == 2


def test_rule_the_ar_decrypts_at_most_its_budget_whatever_the_sources():
    ar = make_ar(ke_rate=1.0, ke_burst=2)
    for n in range(2):
        source = IPv6Address(f"fe80::{n + 10:x}")
        data = ke_request(KBM, 1, care_of=PREFIX[n + 10], source=source)
        assert len(ar.mobility_received(data, source, AR_LL, 255, T0)) == 2
    source = IPv6Address("fe80::99")
    data = ke_request(KBM, 1, care_of=PREFIX[99], source=source)
    _refused(ar, lambda: ar.mobility_received(data, source, AR_LL, 255, T0), "ke-rate-limited")
    assert len(ar.mobility_received(data, source, AR_LL, 255, T0 + 1)) == 2


def test_rule_key_exchange_data_that_does_not_decrypt_is_dropped_but_uses_its_slot():
    ar = make_ar()
    good = ke_request(KBM, 1)
    forged = bytearray(good)
    forged[20] ^= 1  # inside the ciphertext; fix the checksum as a sender would
    forged[4:6] = b"\x00\x00"
    forged[4:6] = mobility_checksum(MN_LL, AR_LL, bytes(forged)).to_bytes(2, "big")
    assert ar.mobility_received(bytes(forged), MN_LL, AR_LL, 255, T0) == [Drop("bad-key-exchange")]
    assert ar.mobility_received(good, MN_LL, AR_LL, 255, T0 + 1) == [Drop("ke-rate-limited")]


def test_rule_a_forged_ke_request_from_another_host_for_a_bound_address_is_refused():
    ar, _, _, now = established()
    forged = ke_request(bytes(16), 60000, source=ATTACKER_LL)
    _refused(ar, lambda: ar.mobility_received(forged, ATTACKER_LL, AR_LL, 255, now + 10),
             "ke-coa-bound")


def test_rule_a_ke_request_for_an_address_being_probed_for_another_host_is_refused():
    ar = make_ar()
    ar.mobility_received(ke_request(KBM, 1), MN_LL, AR_LL, 255, T0)
    forged = ke_request(bytes(16), 2, source=ATTACKER_LL)
    _refused(ar, lambda: ar.mobility_received(forged, ATTACKER_LL, AR_LL, 255, T0 + 0.5),
             "ke-coa-bound")


def test_rule_a_replayed_ke_request_is_refused():
    ar, mn, _, now = established()
    sequence = mn.lbsas[0].ke_sequence
    replay = ke_request(KBM, sequence)
    _refused(ar, lambda: ar.mobility_received(replay, MN_LL, AR_LL, 255, now + 100), "ke-replay")


def test_rule_a_care_of_address_off_the_link_gets_a_signed_status_131():
    ar = make_ar()
    (ack,) = ar.mobility_received(ke_request(KBM, 1, care_of=NEW_COA), MN_LL, AR_LL, 255, T0)
    decoded = KeyExchangeAck.decode(ack.data, AR_LL, MN_LL)
    decoded.verify(KBM)
    assert (decoded.status, decoded.lifetime) == (KeAckStatus.CARE_OF_NOT_ON_LINK, 0)
    assert ar.timer() is None


def test_rule_a_full_lbsa_table_gets_a_signed_status_130():
    ar = make_ar(max_lbsas=1)
    ar.mobility_received(ke_request(KBM, 1), MN_LL, AR_LL, 255, T0)
    other = IPv6Address("fe80::6")
    (ack,) = ar.mobility_received(ke_request(KBM, 1, care_of=PREFIX[6], source=other), other,
                                  AR_LL, 255, T0)
    assert KeyExchangeAck.decode(ack.data, AR_LL, other).status == 130


# ------------------------------------------------------------------ §2.1, §4.3, §6.4 DAD


def test_rule_a_verified_dad_reply_makes_the_lbsa_valid_and_stored():
    ar, mn = make_ar(dad_transmits=1), make_mn()
    _, _, (answer,) = key_exchange(ar, mn)
    assert deliver(ar, answer, T0 + 0.1) == []
    actions = ar.handle_timer(T0 + 1)
    assert actions == [StoreLbsa(ar.lbsas[0])]
    assert ar.lbsas[0].kbm == mn.lbsas[0].kbm and ar.counters["lbsa-established"] == 1


def test_rule_the_mns_own_kernel_na_with_the_same_link_layer_address_is_accepted():
    ar, mn = make_ar(dad_transmits=1), make_mn()
    _, _, (answer,) = key_exchange(ar, mn)
    deliver(ar, answer, T0)
    assert ar.icmp_received(kernel_na(COA), COA, ALL_NODES, 255, T0) == []
    assert isinstance(ar.handle_timer(T0 + 1)[0], StoreLbsa)


def test_rule_a_dad_probe_answered_by_an_impostor_invalidates_the_lbsa():
    ar, mn = make_ar(dad_transmits=1), make_mn()
    _, _, (answer,) = key_exchange(ar, mn)
    deliver(ar, answer, T0)
    assert ar.icmp_received(kernel_na(COA, ATTACKER_LLA), COA, ALL_NODES, 255, T0) == []
    assert ar.handle_timer(T0 + 1) == [Drop("dad-impostor")]
    assert ar.lbsas == [] and ar.timer() is None


def test_rule_a_dad_reply_that_does_not_verify_ends_the_dad_at_once():
    ar, mn = make_ar(), make_mn()
    _, probe, _ = key_exchange(ar, mn)
    nonce = decode_nd(probe.data, probe.source, probe.destination).message.option(
        DadAuthentication).nonce
    forged = NeighborAdvertisement(COA, options=(LinkLayerAddress(2, ATTACKER_LLA),
                                                 DadAuthentication(nonce, AR_GLOBAL)))
    data = forged.encode(COA, ALL_NODES, kbm=bytes(16))
    assert ar.icmp_received(data, COA, ALL_NODES, 255, T0) == [Drop("dad-impostor")]
    assert ar.timer() is None


def test_rule_an_na_without_link_layer_address_or_reply_is_an_impostor():
    ar, mn = make_ar(), make_mn()
    key_exchange(ar, mn)
    bare = NeighborAdvertisement(COA).encode(COA, ALL_NODES)
    assert ar.icmp_received(bare, COA, ALL_NODES, 255, T0) == [Drop("dad-impostor")]


def test_rule_no_verified_dad_reply_times_out():
    ar = make_ar()
    ar.mobility_received(ke_request(KBM, 1), MN_LL, AR_LL, 255, T0)
    (second_probe,) = ar.handle_timer(T0 + 1)
    assert isinstance(second_probe, SendIcmp) and second_probe.source == UNSPECIFIED
    assert ar.handle_timer(T0 + 2) == [Drop("dad-timeout")]


def test_rule_a_pending_lbsa_replaces_the_valid_one_only_when_its_dad_succeeds():
    ar, mn, kbm, now = established()
    old = ar.lbsas[0]
    ar.mobility_received(ke_request(bytes(16), old.ke_sequence + 1), MN_LL, AR_LL, 255, now + 10)
    assert ar.lbsas == [old]
    assert ar.handle_timer(now + 12) == [Drop("dad-timeout")]
    assert ar.lbsas == [old]


def test_rule_a_valid_lbsa_defends_the_address_with_the_cached_na():
    ar, _, _, now = established()
    probe = NeighborSolicitation(COA).encode(UNSPECIFIED, solicited_node(COA))
    (defence,) = ar.icmp_received(probe, UNSPECIFIED, solicited_node(COA), 255, now + 5)
    assert (defence.source, defence.destination) == (COA, ALL_NODES)
    cached = decode_nd(defence.data, COA, ALL_NODES)
    assert cached.message.target == COA and cached.message.option(DadAuthentication)
    assert ar.counters["dad-defended"] == 1
    resolution = NeighborSolicitation(COA).encode(MN_LL, solicited_node(COA))
    assert ar.icmp_received(resolution, MN_LL, solicited_node(COA), 255, now) == []


# ------------------------------------------------------------------ §2.1, §4.2, §4.4, §6.5 BU


def test_rule_a_bu_under_the_lbsa_binds_the_previous_address_and_drops_the_cached_na():
    ar, _, kbm, now = established()
    actions = ar.mobility_received(_bu(7, 50, kbm), NEW_COA, AR_GLOBAL, 64, now + 10)
    stored, bind, send = actions
    assert stored == StoreLbsa(ar.lbsas[0]) and ar.lbsas[0].bu_sequence == 7
    assert bind == BindPrevious(COA, NEW_COA, now + 10 + 200)
    ack = LkeBindingAck.decode(send.data, AR_GLOBAL, NEW_COA)
    ack.verify(kbm)
    assert (ack.status, ack.sequence, ack.lifetime, ack.previous) == (0, 7, 50, COA)
    probe = NeighborSolicitation(COA).encode(UNSPECIFIED, solicited_node(COA))
    assert ar.icmp_received(probe, UNSPECIFIED, solicited_node(COA), 255, now + 11) == []


def test_rule_a_bu_goes_to_the_ars_global_address():
    ar, _, kbm, now = established()
    data = LkeBindingUpdate(1, 10, COA).encode(NEW_COA, AR_LL, kbm)
    _refused(ar, lambda: ar.mobility_received(data, NEW_COA, AR_LL, 64, now), "wrong-destination")


def test_rule_a_bu_without_an_lbsa_or_with_a_bad_authenticator_is_dropped_unanswered():
    ar, _, kbm, now = established()
    unknown = _bu(previous=PREFIX[77], kbm=kbm)
    _refused(ar, lambda: ar.mobility_received(unknown, NEW_COA, AR_GLOBAL, 64, now), "no-lbsa")
    forged = _bu(kbm=bytes(16))
    _refused(ar, lambda: ar.mobility_received(forged, NEW_COA, AR_GLOBAL, 64, now), "bad-hmac")


def test_rule_a_replayed_bu_gets_a_signed_135_with_the_last_accepted_number():
    ar, _, kbm, now = established()
    data = _bu(7, 50, kbm)
    ar.mobility_received(data, NEW_COA, AR_GLOBAL, 64, now)
    (send,) = ar.mobility_received(data, NEW_COA, AR_GLOBAL, 64, now + 1)
    ack = LkeBindingAck.decode(send.data, AR_GLOBAL, NEW_COA)
    ack.verify(kbm)
    assert (ack.status, ack.sequence) == (BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, 7)
    assert ar.counters["bu-replay"] == 1 and ar.bindings[COA][0] == NEW_COA


def test_rule_a_bu_without_the_h_flag_gets_129():
    ar, _, kbm, now = established()
    (send,) = ar.mobility_received(_bu(flags=0x8000, kbm=kbm), NEW_COA, AR_GLOBAL, 64, now)
    assert LkeBindingAck.decode(send.data, AR_GLOBAL, NEW_COA).status == 129
    assert ar.bindings == {}


def test_rule_the_binding_lifetime_is_capped_by_policy_and_the_lbsa():
    ar, _, kbm, now = established(max_binding_lifetime=40)
    actions = ar.mobility_received(_bu(1, 1000, kbm), NEW_COA, AR_GLOBAL, 64, now)
    assert actions[1] == BindPrevious(COA, NEW_COA, now + 40)
    lbsa_end = ar.lbsas[0].expires
    late = lbsa_end - 20
    actions = ar.mobility_received(_bu(2, 1000, kbm), NEW_COA, AR_GLOBAL, 64, late)
    assert actions[1] == BindPrevious(COA, NEW_COA, late + 20)


def test_rule_lifetime_zero_or_the_previous_address_as_care_of_deregisters():
    ar, _, kbm, now = established()
    ar.mobility_received(_bu(1, 50, kbm), NEW_COA, AR_GLOBAL, 64, now)
    stored, unbind, send = ar.mobility_received(_bu(2, 0, kbm), NEW_COA, AR_GLOBAL, 64, now + 1)
    assert unbind == UnbindPrevious(COA, "deregistered") and ar.bindings == {}
    assert LkeBindingAck.decode(send.data, AR_GLOBAL, NEW_COA).lifetime == 0
    home = _bu(3, 50, kbm, source=COA)
    assert [type(a) for a in ar.mobility_received(home, COA, AR_GLOBAL, 64, now + 2)] == [
        StoreLbsa, SendMobility]


# ------------------------------------------------------------------ §2.1 c, §3.2.4 Finished


def _bound_with_finished():
    ar, _, kbm, now = established(finished_request=True, finished_wait=3.0)
    send = ar.mobility_received(_bu(5, 50, kbm), NEW_COA, AR_GLOBAL, 64, now)[-1]
    ack = LkeBindingAck.decode(send.data, AR_GLOBAL, NEW_COA)
    assert ack.finished_nonce is not None
    return ar, kbm, now, ack


def test_rule_a_requested_finished_keeps_the_binding():
    ar, kbm, now, ack = _bound_with_finished()
    finished = Finished(0, 5, 50, ack.finished_nonce, COA).encode(NEW_COA, AR_GLOBAL, kbm)
    assert ar.mobility_received(finished, NEW_COA, AR_GLOBAL, 64, now + 1) == []
    assert ar.handle_timer(now + 4) == [] and COA in ar.bindings


def test_rule_without_the_requested_finished_the_binding_goes():
    ar, _, now, _ = _bound_with_finished()
    assert ar.handle_timer(now + 3) == [UnbindPrevious(COA, "finished-timeout")]


def test_rule_a_finished_that_does_not_echo_the_ba_is_dropped():
    ar, kbm, now, ack = _bound_with_finished()
    wrong = Finished(0, 5, 50, ack.finished_nonce ^ 1, COA).encode(NEW_COA, AR_GLOBAL, kbm)
    _refused(ar, lambda: ar.mobility_received(wrong, NEW_COA, AR_GLOBAL, 64, now + 1),
             "finished-mismatch")
    forged = Finished(0, 5, 50, ack.finished_nonce, COA).encode(NEW_COA, AR_GLOBAL, bytes(16))
    _refused(ar, lambda: ar.mobility_received(forged, NEW_COA, AR_GLOBAL, 64, now + 1),
             "bad-hmac")


# ------------------------------------------------------------------ expiry, restart


def test_rule_an_lbsa_expires_with_its_binding_and_cached_na():
    ar, _, kbm, now = established(max_binding_lifetime=10_000)
    ar.mobility_received(_bu(1, 0xFFFF, kbm), NEW_COA, AR_GLOBAL, 64, now)
    end = ar.lbsas[0].expires
    assert ar.timer() <= end  # the binding never outlives its LBSA
    actions = ar.handle_timer(end)
    assert UnbindPrevious(COA, "expired") in actions and ForgetLbsa(COA, "expired") in actions
    assert ar.lbsas == [] and ar.bindings == {}


def test_rule_a_restored_lbsa_keeps_refusing_replayed_bus():
    ar, _, kbm, now = established()
    stored = ar.mobility_received(_bu(9, 50, kbm), NEW_COA, AR_GLOBAL, 64, now)[0]
    restarted = make_ar()
    assert restarted.restore([stored.lbsa], now + 1) == []
    (send,) = restarted.mobility_received(_bu(9, 50, kbm), NEW_COA, AR_GLOBAL, 64, now + 2)
    assert LkeBindingAck.decode(send.data, AR_GLOBAL, NEW_COA).status == 135
    assert make_ar().restore([stored.lbsa], stored.lbsa.expires) == [
        ForgetLbsa(COA, "expired")]


def test_the_policy_refuses_impossible_settings():
    with pytest.raises(ValueError):
        ArPolicy(AR_GLOBAL, AR_GLOBAL, (PREFIX,))
    with pytest.raises(ValueError):
        ArPolicy(AR_LL, AR_GLOBAL, ())
    with pytest.raises(ValueError):
        ArPolicy(AR_LL, AR_GLOBAL, (PREFIX,), ke_backoff_max=1.0)


def test_rule_the_ars_own_probe_and_defence_looped_back_change_nothing():
    """A renewal probes an address the AR defends: its own multicast must not fail the DAD."""
    ar, mn, _, now = established()
    foreign_probe = NeighborSolicitation(COA).encode(UNSPECIFIED, solicited_node(COA))
    (defence,) = ar.icmp_received(foreign_probe, UNSPECIFIED, solicited_node(COA), 255, now)
    (request,) = mn.key_exchange(COA, MN_LL, now + 10)
    ack, probe = deliver(ar, request, now + 10)
    deliver(mn, ack, now + 10)
    assert deliver(ar, probe, now + 10) == []  # no defence against its own probe
    assert deliver(ar, defence, now + 10) == []
    for answer in deliver(mn, probe, now + 10):
        deliver(ar, answer, now + 10)
    deliver(ar, SendIcmp(COA, ALL_NODES, kernel_na(COA)), now + 10)
    actions = ar.handle_timer(now + 11) + ar.handle_timer(now + 12)
    assert [type(a) for a in actions] == [SendIcmp, StoreLbsa]
    assert ar.lbsas[0].kbm == mn.lbsas[0].kbm != bytes(range(16))
