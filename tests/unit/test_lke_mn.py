"""One test per rule of the MN side (aaa_mip6.lke.mn; draft-liu-mobileip-lke-01 §2.1, §5,
§6; docs/lke.md, "The MN"), each named after its rule."""

from dataclasses import replace
import pytest

from aaa_mip6.lke import crypto
from aaa_mip6.lke.actions import (
    Drop,
    LbsaLost,
    LbsaReady,
    PreviousBound,
    PreviousRefused,
    SendMobility,
)
from aaa_mip6.lke.messages import (
    KeyExchangeAck,
    KeyExchangeRequest,
    LkeBindingAck,
    LkeBindingUpdate,
)
from aaa_mip6.lke.ar import is_newer
from aaa_mip6.lke.mn import MnPolicy
from aaa_mip6.lke.nd import (
    ALL_NODES,
    UNSPECIFIED,
    DadAuthentication,
    LinkLayerAddress,
    LkeCapability,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    decode_nd,
    solicited_node,
    verify_dad,
)

from .lke_harness import (
    AR_GLOBAL,
    AR_LL,
    ATTACKER_LLA,
    COA,
    MN_LL,
    MN_LLA,
    NEW_COA,
    PREFIX,
    T0,
    ar_key,
    deliver,
    establish,
    established,
    kernel_na,
    key_exchange,
    make_ar,
    make_mn,
)


def _advertisement(flags=0x20, lifetime=1800, key=None, max_lifetime=7200):
    key = key or crypto.encode_public_key(ar_key())
    return RouterAdvertisement(lifetime, flags, options=(
        PrefixInformation(PREFIX), LkeCapability(max_lifetime, key))).encode(AR_LL, ALL_NODES)


def _request(mn, now=T0):
    (send,) = mn.key_exchange(COA, MN_LL, now)
    return send, KeyExchangeRequest.decode(send.data, send.source, send.destination,
                                           key_octets=256)


def _ack(request, kbm, status=0, lifetime=100):
    return KeyExchangeAck(status, request.sequence, lifetime, COA, AR_GLOBAL).encode(
        AR_LL, MN_LL, kbm)


# ------------------------------------------------------------------ §2.1, §3.1.1 RA


def test_rule_an_lke_capability_counts_only_with_the_h_bit():
    mn = make_mn()
    assert mn.icmp_received(_advertisement(flags=0), AR_LL, ALL_NODES, 255, T0) == [
        Drop("capability-without-h")]
    assert mn.routers == []


def test_rule_an_ar_key_outside_the_accepted_sizes_is_ignored():
    mn = make_mn(min_key_bits=3072)
    assert mn.icmp_received(_advertisement(), AR_LL, ALL_NODES, 255, T0) == [
        Drop("bad-public-key")]


def test_rule_an_ar_is_known_for_its_router_lifetime_and_lifetime_zero_forgets_it():
    mn = make_mn()
    assert mn.icmp_received(_advertisement(lifetime=600), AR_LL, ALL_NODES, 255, T0) == []
    (router,) = mn.routers
    assert (router.expires, router.max_lifetime, router.prefixes) == (T0 + 600, 600, (PREFIX,))
    assert mn.key_exchange(COA, MN_LL, T0 + 600) == [Drop("no-lke-router")]
    mn.icmp_received(_advertisement(lifetime=0), AR_LL, ALL_NODES, 255, T0)
    assert mn.routers == []


def test_rule_nd_from_off_the_link_is_dropped():
    mn = make_mn()
    assert mn.icmp_received(_advertisement(), AR_LL, ALL_NODES, 64, T0) == [
        Drop("not-link-local")]


# ------------------------------------------------------------------ §2.1 a, §5.2 KE


def test_rule_the_ke_request_carries_a_fresh_kbm_encrypted_to_the_ar_under_the_coa_label():
    mn = make_mn(lifetime=600)
    mn.icmp_received(_advertisement(), AR_LL, ALL_NODES, 255, T0)
    send, request = _request(mn)
    assert (send.source, send.destination) == (MN_LL, AR_LL)
    assert request.care_of == COA and request.requested_lifetime == 150
    kbm = crypto.unwrap_kbm(ar_key(), request.key_exchange_data, COA)
    assert len(kbm) == 16
    _, again = _request(make_mn_with_router())
    assert crypto.unwrap_kbm(ar_key(), again.key_exchange_data, COA) != kbm


def make_mn_with_router(**settings):
    mn = make_mn(**settings)
    mn.icmp_received(_advertisement(), AR_LL, ALL_NODES, 255, T0)
    return mn


def test_rule_the_ke_sequence_number_follows_the_clock_so_a_restarted_mn_is_newer():
    _, first = _request(make_mn_with_router(), T0)
    _, after_restart = _request(make_mn_with_router(), T0 + 30)
    assert first.sequence == int(T0) % 65536
    assert (after_restart.sequence - first.sequence) % 65536 == 30


def test_rule_an_unanswered_request_is_resent_with_the_same_kbm_and_a_newer_number():
    mn = make_mn_with_router(ke_timeout=3.0, ke_attempts=2)
    _, first = _request(mn)
    assert mn.timer() == T0 + 3
    (resend,) = mn.handle_timer(T0 + 3)
    second = KeyExchangeRequest.decode(resend.data, MN_LL, AR_LL, key_octets=256)
    assert is_newer(second.sequence, first.sequence)
    assert crypto.unwrap_kbm(ar_key(), second.key_exchange_data, COA) == crypto.unwrap_kbm(
        ar_key(), first.key_exchange_data, COA)
    assert mn.timer() == T0 + 3 + 6
    assert mn.handle_timer(T0 + 9) == [LbsaLost(AR_LL, "ke-timeout")]


def test_rule_a_verified_ack_makes_the_lbsa_for_the_granted_lifetime():
    mn = make_mn_with_router()
    _, request = _request(mn)
    kbm = crypto.unwrap_kbm(ar_key(), request.key_exchange_data, COA)
    (ready,) = mn.mobility_received(_ack(request, kbm, lifetime=25), AR_LL, MN_LL, 255, T0 + 1)
    assert isinstance(ready, LbsaReady)
    assert (ready.lbsa.kbm, ready.lbsa.ar_address, ready.lbsa.expires) == (kbm, AR_GLOBAL,
                                                                           T0 + 100)


def test_rule_an_ack_that_does_not_verify_drops_the_prior_lbsa_and_the_exchange_goes_on():
    ar, mn, _, now = established()
    send, request = _request(mn, now + 10)
    forged = _ack(request, bytes(16))
    assert mn.mobility_received(forged, AR_LL, MN_LL, 255, now + 10) == [
        LbsaLost(AR_LL, "bad-ack")]
    assert mn.lbsas == []
    kbm = crypto.unwrap_kbm(ar_key(), request.key_exchange_data, COA)
    assert isinstance(mn.mobility_received(_ack(request, kbm), AR_LL, MN_LL, 255, now + 11)[0],
                      LbsaReady)


def test_rule_an_ack_for_another_exchange_or_from_off_link_is_dropped():
    mn = make_mn_with_router()
    _, request = _request(mn)
    kbm = crypto.unwrap_kbm(ar_key(), request.key_exchange_data, COA)
    other = replace(request, sequence=request.sequence + 7)
    assert mn.mobility_received(_ack(other, kbm), AR_LL, MN_LL, 255, T0) == [
        Drop("unexpected-ack")]
    assert mn.mobility_received(_ack(request, kbm), AR_LL, MN_LL, 64, T0) == [
        Drop("not-link-local")]


def test_rule_a_verified_refusal_ends_the_exchange():
    mn = make_mn_with_router()
    _, request = _request(mn)
    kbm = crypto.unwrap_kbm(ar_key(), request.key_exchange_data, COA)
    assert mn.mobility_received(_ack(request, kbm, status=131), AR_LL, MN_LL, 255, T0) == [
        LbsaLost(AR_LL, "ke-refused")]
    assert mn.timer() is None


def test_rule_the_lbsa_is_renewed_before_it_ends_while_the_mn_keeps_its_address():
    mn = make_mn_with_router(renew_margin=60)
    _, request = _request(mn)
    kbm = crypto.unwrap_kbm(ar_key(), request.key_exchange_data, COA)
    mn.mobility_received(_ack(request, kbm, lifetime=100), AR_LL, MN_LL, 255, T0)
    assert mn.timer() == T0 + 400 - 60
    (renewal,) = mn.handle_timer(T0 + 340)
    assert isinstance(renewal, SendMobility) and mn.counters["lbsa-renewal"] == 1
    assert LbsaLost(AR_LL, "expired") in mn.handle_timer(T0 + 400)


# ------------------------------------------------------------------ §2.1, §5.3 DAD


def test_rule_an_authenticated_probe_gets_a_multicast_reply_with_the_link_layer_address():
    ar, mn = make_ar(), make_mn()
    _, probe, (answer,) = key_exchange(ar, mn)
    assert (answer.source, answer.destination) == (COA, ALL_NODES)
    decoded = decode_nd(answer.data, COA, ALL_NODES)
    sent = decode_nd(probe.data, probe.source, probe.destination).message.option(
        DadAuthentication)
    reply = verify_dad(decoded, mn.lbsas[0].kbm)
    assert (reply.nonce, reply.ar_address) == (sent.nonce, AR_GLOBAL)
    assert LinkLayerAddress(2, MN_LLA) in decoded.message.options


def test_rule_a_probe_for_the_mns_address_under_another_key_gets_a_plain_na():
    _, mn, _, now = established()
    forged = NeighborSolicitation(COA, (DadAuthentication(5, AR_GLOBAL),)).encode(
        UNSPECIFIED, solicited_node(COA), kbm=bytes(16))
    (answer,) = mn.icmp_received(forged, UNSPECIFIED, solicited_node(COA), 255, now)
    message = decode_nd(answer.data, COA, ALL_NODES).message
    assert message.option(DadAuthentication) is None
    assert mn.counters["dad-foreign-probe"] == 1


def test_rule_an_impostors_na_after_a_probe_drops_the_lbsa_and_restarts_the_exchange():
    ar, mn = make_ar(), make_mn()
    key_exchange(ar, mn)
    assert mn.icmp_received(kernel_na(COA), COA, ALL_NODES, 255, T0) == []  # its own kernel
    lost, restart = mn.icmp_received(kernel_na(COA, ATTACKER_LLA), COA, ALL_NODES, 255, T0)
    assert lost == LbsaLost(AR_LL, "dad-impostor") and isinstance(restart, SendMobility)
    assert mn.lbsas == []


# ------------------------------------------------------------------ §2.1, §5.4 BU


def test_rule_after_a_move_the_bu_goes_to_the_ar_of_the_address_left():
    _, mn, _, now = established()
    (send,) = mn.moved(NEW_COA, now + 5)
    assert (send.source, send.destination) == (NEW_COA, AR_GLOBAL)
    update = LkeBindingUpdate.decode(send.data, NEW_COA, AR_GLOBAL)
    update.verify(mn.lbsas[0].kbm)
    assert update.previous == COA and update.flags == 0xC000
    assert update.lifetime == 150  # binding_lifetime 600 s


def test_rule_no_lbsa_for_the_address_left_sends_nothing():
    mn = make_mn_with_router()
    assert mn.moved(NEW_COA, T0) == [Drop("no-lbsa")]


def test_rule_the_previous_ar_binds_and_the_mn_is_told():
    ar, mn, _, now = established()
    (bu,) = mn.moved(NEW_COA, now)
    ba = deliver(ar, bu, now)[-1]
    assert deliver(mn, ba, now) == [PreviousBound(AR_LL, COA, NEW_COA, 600)]
    assert mn.timer() != now + 1  # no BU left to resend


def test_rule_a_requested_finished_is_sent():
    ar, mn = make_ar(finished_request=True), make_mn()
    now = establish(ar, mn)
    (bu,) = mn.moved(NEW_COA, now)
    ba = deliver(ar, bu, now)[-1]
    bound, finished = deliver(mn, ba, now)
    assert isinstance(bound, PreviousBound) and finished.destination == AR_GLOBAL
    assert deliver(ar, finished, now) == [] and ar.counters["finished"] == 1


def test_rule_a_135_resends_at_once_with_the_number_after_the_bas():
    _, mn, _, now = established()
    (bu,) = mn.moved(NEW_COA, now)
    kbm = mn.lbsas[0].kbm
    refusal = LkeBindingAck(135, 4000, 0, COA).encode(AR_GLOBAL, NEW_COA, kbm)
    (resend,) = mn.mobility_received(refusal, AR_GLOBAL, NEW_COA, 64, now)
    assert LkeBindingUpdate.decode(resend.data, NEW_COA, AR_GLOBAL).sequence == 4001


def test_rule_another_refusal_ends_the_bu_and_a_forged_ba_is_dropped():
    _, mn, _, now = established()
    (bu,) = mn.moved(NEW_COA, now)
    sequence = LkeBindingUpdate.decode(bu.data, NEW_COA, AR_GLOBAL).sequence
    forged = LkeBindingAck(0, sequence, 10, COA).encode(AR_GLOBAL, NEW_COA, bytes(16))
    assert mn.mobility_received(forged, AR_GLOBAL, NEW_COA, 64, now) == [Drop("bad-hmac")]
    refusal = LkeBindingAck(129, sequence, 0, COA).encode(AR_GLOBAL, NEW_COA, mn.lbsas[0].kbm)
    assert mn.mobility_received(refusal, AR_GLOBAL, NEW_COA, 64, now) == [
        PreviousRefused(AR_LL, COA, 129)]


def test_rule_an_unanswered_bu_is_resent_then_given_up():
    _, mn, _, now = established()
    (bu,) = mn.moved(NEW_COA, now)
    first = LkeBindingUpdate.decode(bu.data, NEW_COA, AR_GLOBAL).sequence
    (resend,) = [a for a in mn.handle_timer(now + 1) if isinstance(a, SendMobility)]
    assert LkeBindingUpdate.decode(resend.data, NEW_COA, AR_GLOBAL).sequence == first + 1
    mn.handle_timer(now + 3)
    assert PreviousRefused(AR_LL, COA, None) in mn.handle_timer(now + 7)


def test_the_policy_refuses_impossible_settings():
    with pytest.raises(ValueError):
        MnPolicy(lifetime=0)
    with pytest.raises(ValueError):
        MnPolicy(min_key_bits=4096, max_key_bits=2048)


def test_rule_the_link_layer_address_may_be_looked_up_per_care_of_address():
    macs = {COA: MN_LLA, NEW_COA: ATTACKER_LLA}
    ar, mn = make_ar(), make_mn(link_layer_address=macs.get)
    _, _, (answer,) = key_exchange(ar, mn)
    assert LinkLayerAddress(2, MN_LLA) in decode_nd(answer.data, COA, ALL_NODES).message.options
    assert mn.icmp_received(kernel_na(COA), COA, ALL_NODES, 255, T0) == []


def test_rule_a_plain_na_long_after_the_probe_is_no_impostor():
    ar, mn = make_ar(), make_mn(dad_window=5.0)
    key_exchange(ar, mn)
    assert mn.icmp_received(kernel_na(COA, ATTACKER_LLA), COA, ALL_NODES, 255, T0 + 5) == []
    assert mn.lbsas
