"""ha.core, rule by rule: each test states one rule of the home agent (with its RFC
section) and kills the mutants of ``make mutation`` (docs/mutation.md) that would break it.

Helpers come from test_ha_core (the in-test MN and core).

Equivalent mutants (survive by design, nothing observable changes):

- ``_is_newer``: ``_SEQUENCE_MODULUS / 2`` for ``// 2``: 32768.0 compares like 32768.
- ``_binding_of``, ``_tunneled_received``: ``get_by_key(None)`` instead of skipping the
  lookup for an SA without a home address: no binding is filed under None, so both
  give None.
- ``_binding_update``: ``status <= 128`` / ``< 129`` / ``> 128`` / ``>= 129`` around 128:
  the HA answers 0, 129, 135 or 176, never 128 (Reason unspecified).
- ``_granted_lifetime``: ``max(seconds, 1)``: one second is 0 lifetime units too.
- ``_needs_reinit``: ``highest or 1``: it differs from ``or 0`` only for number 0, where
  2^32 - 1 and 2^32 are both at least any allowed ``sequence_margin`` (< 2^32).
- ``_SaState.set_sa``: ``usable_until`` of a revoked SA left at its validity end (or
  +inf): it only short-cuts the path of a bound SA, and revocation removes the binding
  (``sa_changed``); the unbound path refuses a revoked SA by ``sa.revoked`` itself.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address

import pytest

from aaa_mip6.mobility.messages import (BindingAckStatus, BindingUpdateFlag, IPv4AckStatus,
                                        IPv4AddressAcknowledgement, IPv4HomeAddress)
from aaa_mip6.replay import SEQ_LIMIT
from aaa_mip6.sa import SCOPE_SIGNALING
from aaa_mip6.transform import PType
from ha.actions import (Deregistered, Drop, FetchSA, PersistSequences, Registered,
                        SendDatagram)
from ha.core import HaPolicy, HomeAgentCore
from tests.unit.test_ha_core import (CN, COA, HA, HOA, NOW, SPI, Mn, counted_once, feed,
                                     ipv6_packet, make_sa, new_core, only, registered)

HALF = 1 << 15


def ack_for(core, mn, sequence):
    return mn.ack(only(feed(core, mn, mn.bu(sequence=sequence)), SendDatagram).data)


@pytest.mark.parametrize("last", [1, 40000, 65535])
def test_bu_sequence_2_15_ahead_is_not_newer_rfc6275_9_5_1(last):
    """RFC 6275 §9.5.1: a sequence number is "less than or equal to" the last accepted one
    if it lies in the range of that number and the preceding 32768 values, inclusive;
    so last + 2^15 (mod 2^16) is refused with 135 and last + 2^15 - 1 is newer."""
    core, mn = registered()
    for step in range(20000, last, 20000):  # forward in steps well inside the window
        assert ack_for(core, mn, step).status == BindingAckStatus.ACCEPTED
    if last != 1:
        assert ack_for(core, mn, last).status == BindingAckStatus.ACCEPTED
    refused = ack_for(core, mn, (last + HALF) % (1 << 16))
    assert (refused.status, refused.sequence) == (
        BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, last)
    assert core.bindings.get(HOA).sequence == last
    accepted = ack_for(core, mn, (last + HALF - 1) % (1 << 16))
    assert accepted.status == BindingAckStatus.ACCEPTED
    assert core.bindings.get(HOA).sequence == (last + HALF - 1) % (1 << 16)


# --- Binding Updates (RFC 6275 §9.5.1, §10.3.1) --------------------------------------------

def test_a_new_sa_for_the_same_home_address_starts_a_new_sequence():
    """After a re-bootstrap the new SA's first BU (number 1) is accepted although the old
    SA's binding holds a higher number: sequence numbers belong to the SA."""
    core, old_mn = registered()
    for sequence in (20000, 40000):
        assert ack_for(core, old_mn, sequence).status == BindingAckStatus.ACCEPTED
    new_sa = make_sa(spi=SPI + 1)
    assert core.sa_found(new_sa.spi, new_sa, None, NOW) == []
    new_mn = Mn(new_sa)
    ack = new_mn.ack(only(feed(core, new_mn, new_mn.bu(sequence=1)), SendDatagram).data)
    assert ack.status == BindingAckStatus.ACCEPTED
    assert (core.bindings.get(HOA).spi, core.bindings.get(HOA).sequence) == (SPI + 1, 1)


def test_a_rejected_bu_is_answered_with_lifetime_0():
    """129 (no H flag), 135 (stale number) and 176 (reinit) grant nothing."""
    core, mn = registered()
    no_home = mn.ack(only(feed(core, mn, mn.bu(flags=BindingUpdateFlag.ACKNOWLEDGE)),
                          SendDatagram).data)
    stale = ack_for(core, mn, 1)
    revoked = make_sa(revoked=True)
    core.sa_changed(revoked)
    reinit = mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data)
    assert [(ack.status, ack.lifetime_units) for ack in (no_home, stale, reinit)] == [
        (129, 0), (135, 0), (176, 0)]


def test_deregistrations_name_the_binding_and_are_counted_each():
    core, mn = registered()
    binding = core.bindings.get(HOA)
    actions = feed(core, mn, mn.bu(lifetime=0))
    assert only(actions, Deregistered) == Deregistered(binding, "deregistered")
    feed(core, mn, mn.bu())
    feed(core, mn, mn.bu(lifetime=0))
    assert core.counters["deregistered"] == 2


def test_a_care_of_address_with_a_zone_index_is_compared_without_it_rfc6275_10_3_2():
    """A BU from the home address itself deregisters, zone index or not."""
    core, mn = registered()
    actions = feed(core, mn, mn.bu(), care_of=(f"{HOA}%eth0", 7872))
    assert only(actions, Deregistered).why == "deregistered"
    assert core.bindings.get(HOA) is None


def test_an_ipv4_home_address_asked_of_an_sa_without_one_is_refused_rfc5555_3_2_1():
    core, mn = registered()
    ack = mn.ack(only(feed(core, mn, mn.bu(options=(IPv4HomeAddress(IPv4Address(0)),))),
                      SendDatagram).data)
    assert ack.status == BindingAckStatus.ACCEPTED
    assert ack.options == (IPv4AddressAcknowledgement(
        IPv4AckStatus.DYNAMIC_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_AVAILABLE, IPv4Address(0)),)


# --- sequence marks and restarts --------------------------------------------------------

def test_a_number_at_the_reserved_floor_reserves_nothing_new():
    """The floor saved is the highest number a crash may have used: a packet carrying
    exactly that number needs no new block; the next one does."""
    core, mn = registered()
    floor = core._sas[SPI].inbound_floor
    mn.endpoint._next_sequence = floor
    at_floor = feed(core, mn, mn.bu())
    assert not [a for a in at_floor if isinstance(a, PersistSequences)]
    data = feed(core, mn, mn.data(ipv6_packet(HOA, CN)))
    assert isinstance(data[0], PersistSequences) and data[0].inbound_floor == floor + 1 + 4096
    mn.endpoint._next_sequence = data[0].inbound_floor
    assert not [a for a in feed(core, mn, mn.data(ipv6_packet(HOA, CN)))
                if isinstance(a, PersistSequences)]


def test_the_reserved_floor_never_passes_the_last_32_bit_number():
    core, mn = registered()
    mn.endpoint._next_sequence = SEQ_LIMIT - 5
    actions = feed(core, mn, mn.bu())
    assert only(actions, PersistSequences).inbound_floor == SEQ_LIMIT - 1
    assert mn.ack(only(actions, SendDatagram).data).status == 176


def crashed() -> tuple:
    core, mn = registered()
    state = core._sas[SPI]
    fresh = HomeAgentCore(core.policy)
    fresh.sa_found(SPI, mn.sa, (state.inbound_floor, state.outbound_ceiling), NOW)
    return fresh, mn


def test_after_a_crash_each_176_goes_to_the_sender_is_counted_and_grants_nothing():
    core, mn = crashed()
    for count, care_of in ((1, ("198.51.100.9", 40001)), (2, ("198.51.100.10", 40002))):
        send = only(feed(core, mn, mn.bu(), care_of=care_of), SendDatagram)
        assert (send.host, send.port) == care_of
        ack = mn.ack(send.data)
        assert (ack.status, ack.lifetime_units) == (176, 0)
        assert core.counters["ba-status-176"] == count


def test_after_a_crash_a_forged_bu_below_the_floor_is_a_replay_drop():
    core, mn = crashed()
    forged = bytearray(mn.bu())
    forged[-1] ^= 1
    before = core.counters.copy()
    assert feed(core, mn, bytes(forged)) == [Drop("replay")]
    assert counted_once(core, before, "replay")


def test_once_a_newer_number_arrived_an_old_bu_is_a_replay_not_a_176():
    """The restart zone ends with the first number above the floor: from then on a BU
    below it is an ordinary replay, dropped and never answered."""
    core, mn = crashed()
    old_bu = mn.bu()  # below the floor
    mn.endpoint._next_sequence = core._sas[SPI].inbound_floor + 1
    assert mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data).status == 0
    assert feed(core, mn, old_bu) == [Drop("replay")]


def test_a_clean_stop_saves_the_marks_of_every_sa_used_and_only_those():
    core, mn = registered()
    quiet = make_sa(spi=SPI + 1, hoa=IPv6Address("2001:db8:1::101"))
    core.sa_found(quiet.spi, quiet, None, NOW)  # loaded, never used: nothing to save
    restored = make_sa(spi=SPI + 2, hoa=IPv6Address("2001:db8:1::102"))
    core.sa_found(restored.spi, restored, (-1, 10), NOW)  # sent only, before a restart
    silent = make_sa(spi=SPI + 3, hoa=IPv6Address("2001:db8:1::103"))
    core.sa_found(silent.spi, silent, None, NOW)
    silent_mn = Mn(silent, home_address=silent.home_address6)
    actions = feed(core, silent_mn, silent_mn.bu(flags=BindingUpdateFlag.HOME_REGISTRATION))
    assert only(actions, Registered) and not [a for a in actions if isinstance(a, SendDatagram)]
    # received only: no BA asked for
    saved = {marks.spi: (marks.inbound_floor, marks.outbound_next) for marks in core.shutdown()}
    assert saved == {SPI: (0, 1), SPI + 2: (-1, 10), SPI + 3: (0, 0)}


# --- expiry and revocation --------------------------------------------------------------

def test_an_unbound_sa_is_forgotten_only_after_its_grace_period():
    sa = make_sa(validity=timedelta(seconds=100))
    core = new_core(sa, expired_sa_grace=60)
    end = NOW + 100
    core.handle_timer(end + 60)
    assert core.spis == [SPI]
    core.handle_timer(end + 60.5)
    assert core.spis == []


def test_a_bound_sa_past_its_grace_is_forgotten_once_its_binding_goes():
    core, _ = registered()
    core.sa_changed(make_sa(validity=timedelta(seconds=100)))  # a new, earlier end
    binding = core.bindings.get(HOA)
    assert binding.expires > NOW + 161
    core.handle_timer(NOW + 161)
    assert core.spis == [SPI]  # still bound
    assert only(core.handle_timer(binding.expires), Deregistered).why == "expired"
    assert core.spis == []


def test_an_sa_given_a_later_validity_end_is_kept_until_then():
    core = new_core(make_sa(validity=timedelta(seconds=100)), expired_sa_grace=60)
    core.sa_changed(make_sa(validity=timedelta(seconds=1000)))
    core.handle_timer(NOW + 161)
    assert core.spis == [SPI]
    core.handle_timer(NOW + 1060.5)
    assert core.spis == []


def test_the_validity_end_queue_stays_bounded_when_an_sa_keeps_changing():
    core = new_core(make_sa())
    for seconds in range(1, 1000):
        core.sa_changed(make_sa(validity=timedelta(hours=2, seconds=seconds)))
    assert len(core._ends) <= 2 * len(core.spis) + 64 + 1


def test_expiry_and_revocation_name_the_binding_they_remove():
    core, mn = registered()
    binding = core.bindings.get(HOA)
    assert core.sa_changed(make_sa(revoked=True)) == [Deregistered(binding, "revoked")]
    core, mn = registered()
    binding = core.bindings.get(HOA)
    assert core.handle_timer(NOW + 600) == [Deregistered(binding, "expired")]


def test_revoking_an_sa_leaves_the_binding_of_a_newer_sa_alone():
    core, mn = registered()
    new_sa = make_sa(spi=SPI + 1)
    core.sa_found(new_sa.spi, new_sa, None, NOW)
    new_mn = Mn(new_sa)
    feed(core, new_mn, new_mn.bu())
    assert core.sa_changed(make_sa(revoked=True)) == []
    assert core.bindings.get(HOA).spi == SPI + 1


def test_revoking_an_sa_without_a_binding_changes_nothing():
    sa = make_sa()
    core = new_core(sa)
    assert core.sa_changed(make_sa(revoked=True)) == []


# --- data both ways --------------------------------------------------------------------

def test_no_data_flows_under_an_expired_sa_either_way():
    """The binding may outlive the SA until the next tick; the data may not."""
    sa = make_sa(scope=SCOPE_SIGNALING, validity=timedelta(seconds=900))
    core, mn = new_core(sa), Mn(sa)
    feed(core, mn, mn.bu(lifetime=3600))
    later = NOW + 901
    assert core.tun_packet(ipv6_packet(CN, HOA), later) == [Drop("sa-expired")]
    assert feed(core, mn, mn.data(ipv6_packet(HOA, CN)), now=later) == [Drop("sa-expired")]


def test_an_empty_packet_from_the_home_network_is_malformed():
    core, _ = registered()
    before = core.counters.copy()
    assert core.tun_packet(b"", NOW) == [Drop("malformed")]
    assert counted_once(core, before, "malformed")


def test_tunneled_packets_are_counted_each_way_and_marks_come_first():
    core, mn = registered()
    out = core.tun_packet(ipv6_packet(CN, HOA), NOW)
    assert [type(a) for a in out] == [SendDatagram]
    core._sas[SPI].endpoint._next_sequence = core._sas[SPI].outbound_ceiling
    out = core.tun_packet(ipv6_packet(CN, HOA), NOW)
    assert [type(a) for a in out] == [PersistSequences, SendDatagram]
    for _ in range(2):
        feed(core, mn, mn.data(ipv6_packet(HOA, CN)))
    assert (core.counters["tunneled-out"], core.counters["tunneled-in"]) == (2, 2)


def test_a_ha_that_does_not_forward_drops_decapsulated_packets_as_not_forwarding():
    sa = make_sa()
    core, mn = new_core(sa, forwarding=False), Mn(sa)
    feed(core, mn, mn.bu())
    assert feed(core, mn, mn.data(ipv6_packet(HOA, CN))) == [Drop("not-forwarding")]


# --- policy -------------------------------------------------------------------------------

@pytest.mark.parametrize("changes", [dict(reinit_margin=0), dict(expired_sa_grace=0),
                                     dict(sequence_margin=0),
                                     dict(sequence_margin=SEQ_LIMIT - 1)])
def test_zero_margins_and_grace_are_valid_policy(changes):
    assert HaPolicy(home_agent=HA, **changes)


@pytest.mark.parametrize("changes, message", [
    (dict(max_lifetime=0), "max_lifetime must be at least 1"),
    (dict(reinit_margin=-1), "reinit_margin and expired_sa_grace cannot be negative"),
    (dict(expired_sa_grace=-0.5), "reinit_margin and expired_sa_grace cannot be negative"),
    (dict(sequence_margin=SEQ_LIMIT), "sequence_margin must be 0..2**32-1"),
])
def test_an_unusable_policy_is_refused_saying_which_setting(changes, message):
    with pytest.raises(ValueError) as caught:
        HaPolicy(home_agent=HA, **changes)
    assert str(caught.value) == message


# --- more BU rules ------------------------------------------------------------------------

def test_the_sequence_margin_is_a_strict_bound_rfc6618_176():
    """176 once fewer than ``sequence_margin`` inbound numbers are left: exactly that many
    left is still fine."""
    sa = make_sa()
    core, mn = new_core(sa, sequence_margin=1000), Mn(sa)
    mn.endpoint._next_sequence = SEQ_LIMIT - 1000
    assert mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data).status == 0
    assert mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data).status == 176


def test_the_outbound_wrap_margin_is_the_policys():
    sa = make_sa()
    core = HomeAgentCore(HaPolicy(home_agent=HA, sequence_margin=1000))
    core.sa_found(SPI, sa, (-1, SEQ_LIMIT - 5000), NOW)  # 5000 numbers left to send
    mn = Mn(sa)
    assert mn.ack(only(feed(core, mn, mn.bu()), SendDatagram).data).status == 0


def test_the_replay_window_is_the_policys():
    sa = make_sa()
    core, mn = new_core(sa, replay_window=128), Mn(sa)
    late = mn.bu(sequence=1)  # number 0 on the wire
    mn.endpoint._next_sequence = 100
    feed(core, mn, mn.bu(sequence=2))
    assert mn.ack(only(feed(core, mn, late), SendDatagram).data).status == 135  # not a replay


def test_a_verified_bu_that_does_not_parse_is_a_malformed_drop():
    core, mn = registered()
    before = core.counters.copy()
    packet = mn.endpoint.protect(PType.MOBILITY, b"\x3b\x00\x05\x00", 135)
    assert feed(core, mn, packet) == [Drop("malformed")]
    assert counted_once(core, before, "malformed")


def test_registrations_acks_and_rejections_are_counted_each():
    core, mn = registered()
    actions = feed(core, mn, mn.bu())  # no new block either way: a binding and its BA only
    assert [type(action) for action in actions] == [Registered, SendDatagram]
    for _ in range(2):
        ack_for(core, mn, 1)
    assert (core.counters["registered"], core.counters["ba-sent"],
            core.counters["ba-status-135"]) == (2, 4, 2)


def test_a_ba_that_needs_a_new_outbound_block_saves_the_marks_first():
    core, mn = registered()
    state = core._sas[SPI]
    state.endpoint._next_sequence = state.outbound_ceiling
    actions = feed(core, mn, mn.bu())
    assert [type(a) for a in actions if not isinstance(a, Registered)][-2:] == [
        PersistSequences, SendDatagram]
    marks = [a for a in actions if isinstance(a, PersistSequences)][-1]
    assert marks == PersistSequences(SPI, make_sa().validity_end.timestamp(),
                                     state.inbound_floor, state.outbound_ceiling)


def test_an_sa_out_of_outbound_numbers_sends_nothing():
    core, mn = registered()
    core._sas[SPI].endpoint._next_sequence = SEQ_LIMIT
    before = core.counters.copy()
    assert core.tun_packet(ipv6_packet(CN, HOA), NOW)[-1] == Drop("sequence-exhausted")
    assert core.counters["sequence-exhausted"] == before["sequence-exhausted"] + 1


def test_a_datagram_parked_for_the_sa_lookup_is_answered_at_its_own_address():
    sa = make_sa()
    core, mn = HomeAgentCore(HaPolicy(home_agent=HA)), Mn(sa)
    assert feed(core, mn, mn.bu()) == [FetchSA(SPI)]
    send = only(core.sa_found(SPI, sa, None, NOW), SendDatagram)
    assert (send.host, send.port) == COA


def test_each_unusable_sa_is_counted_and_not_kept():
    core = HomeAgentCore(HaPolicy(home_agent=HA))
    for count in (1, 2):
        core.sa_found(SPI, make_sa().replace(suite="RC4_MD5"), None, NOW)
        assert (core.counters["unusable-sa"], core.spis) == (count, [])


def test_the_first_mobility_message_before_any_inbound_number_saves_floor_minus_1():
    """A Binding Error may be the SA's first use: it reserves outbound numbers with the
    inbound floor still "nothing received" (-1)."""
    core, mn = registered()
    state = core._sas[SPI]
    fresh = HomeAgentCore(core.policy)
    fresh.sa_found(SPI, mn.sa, None, NOW)  # a restart that lost the ledger entry
    mn.endpoint._next_sequence = 50
    actions = feed(fresh, mn, mn.data(ipv6_packet(HOA, CN)), now=NOW + 10)
    marks = only(actions, PersistSequences)
    assert (marks.inbound_floor, marks.outbound_next) == (-1, 4096)
    assert state.inbound_floor > 0


def test_a_restored_floor_of_0_still_refuses_number_0():
    """After a restart whose ledger says "number 0 was received", a replayed BU 0 gets no
    binding: the floor 0 counts like any other."""
    sa = make_sa()
    core = HomeAgentCore(HaPolicy(home_agent=HA))
    core.sa_found(SPI, sa, (0, 1), NOW)
    mn = Mn(sa)
    first = mn.bu()  # number 0, as the MN sent it before the restart
    actions = feed(core, mn, first)
    assert not [a for a in actions if isinstance(a, Registered)]
    assert core.bindings.get(HOA) is None


def test_an_sa_without_a_home_address_authorizes_no_binding_and_no_data():
    sa = make_sa(hoa=None)
    core, mn = new_core(sa), Mn(sa)
    before = core.counters.copy()
    assert feed(core, mn, mn.bu()) == [Drop("unauthorized-hoa")]
    assert feed(core, mn, mn.data(ipv6_packet(HOA, CN))) == [Drop("no-binding")]
    assert core.counters == before + Counter({"unauthorized-hoa": 1, "no-binding": 1})
