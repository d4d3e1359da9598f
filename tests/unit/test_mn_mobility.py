"""The MN's sans-I/O registration machine, played against an HA built from the codecs."""

import dataclasses
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.mobility import messages as mh
from aaa_mip6.mobility import payloads
from aaa_mip6.errors import ConfigError
from aaa_mip6.iana import NEXT_HEADER_IPV4, NEXT_HEADER_IPV6
from aaa_mip6.mobility.messages import BindingAckStatus
from aaa_mip6.sa import SCOPE_ALL, SCOPE_SIGNALING, HomeAgent, SecurityAssociation
from aaa_mip6.suites import SUITES, new_keys
from aaa_mip6.transform import PType, SaEndpoint, peek
from mn.actions import (
    Deliver,
    Deregistered,
    Rebootstrap,
    Registered,
    RegistrationFailed,
    Retrying,
    Transmit,
)
from mn.mobility import MobilityMachine

NOW = 1_700_000_000.0
VALID_UNTIL = datetime.fromtimestamp(NOW + 86_400, timezone.utc)
HOA6 = IPv6Address("2001:db8:1::10")
HOA4 = IPv4Address("192.0.2.10")
HA6 = IPv6Address("2001:db8:1::1")
HA4 = IPv4Address("198.51.100.1")
COA6 = IPv6Address("2001:db8:2::20")
COA6_MOVED = IPv6Address("2001:db8:3::30")
COA4 = IPv4Address("198.51.100.20")
CN6 = IPv6Address("2001:db8:1::99")
CN4 = IPv4Address("192.0.2.99")
HOME_AGENT = HomeAgent(HA6, HA4, 7872)


def make_sa(suite="AES_128_CBC_SHA", scope=SCOPE_ALL, spi=4660, hoa6=HOA6, hoa4=None,
            validity_end=VALID_UNTIL):
    return SecurityAssociation(
        spi=spi, suite=suite, **dataclasses.asdict(new_keys(SUITES[suite])),
        validity_end=validity_end, scope=scope, mn_id="mn@example.org",
        home_address6=hoa6, home_address4=hoa4,
    )


def ipv6_packet(source, destination, payload=b"ping"):
    """A minimal IPv6 header (next header 59) and payload: enough for the tunnel."""
    header = bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([59, 64])
    return header + source.packed + destination.packed + payload


def ipv4_packet(source, destination, payload=b"ping"):
    header = bytes([0x45, 0]) + (20 + len(payload)).to_bytes(2, "big") + bytes(4)
    return header + bytes([64, 253, 0, 0]) + source.packed + destination.packed + payload


class HomeAgentPeer:
    """The HA end of the SA: opens the MN's BUs and seals BAs and data for it."""

    def __init__(self, sa, home_agent=HOME_AGENT):
        self.endpoint = SaEndpoint(sa, "ha")
        self.pseudo_address = home_agent.address6 or home_agent.address4

    def open_update(self, transmit):
        opened = self.endpoint.unprotect(transmit.packet)
        assert opened.ptype is PType.MOBILITY
        return payloads.decode_binding_update_payload(
            opened.next_header, opened.payload, self.pseudo_address
        )

    def ack(self, home_address, sequence, status=BindingAckStatus.ACCEPTED, lifetime=150,
            options=()):
        ack = mh.BindingAck(status, sequence, lifetime, options=tuple(options))
        next_header, payload = payloads.encode_binding_ack_payload(
            home_address, self.pseudo_address, ack)
        return self.endpoint.protect(PType.MOBILITY, payload, next_header)

    def binding_error(self, home_address, status=1, named=None):
        """A Binding Error behind a Routing header for ``home_address``, naming ``named``."""
        error = mh.BindingError(status, named or home_address)
        next_header, payload = payloads.encode_binding_error_payload(
            home_address, self.pseudo_address, error)
        return self.endpoint.protect(PType.MOBILITY, payload, next_header)

    def answer(self, transmit, **ack_options):
        """Open a BU and grant it as asked (or answer as told): the BA datagram."""
        home_address, update = self.open_update(transmit)
        ack_options.setdefault("lifetime", update.lifetime_units)
        return self.ack(home_address, update.sequence, **ack_options)


def registered_machine(sa=None, care_of=COA6, **options):
    sa = sa or make_sa()
    machine = MobilityMachine(sa, HOME_AGENT, first_sequence=100, **options)
    ha = HomeAgentPeer(sa)
    [bu] = machine.register(care_of, NOW)
    [event] = machine.receive(ha.answer(bu), NOW + 0.1)
    assert isinstance(event, Registered)
    return machine, ha


# --------------------------------------------------------------------------- Binding Update


@pytest.mark.parametrize("suite", list(SUITES))
def test_binding_update_is_protected_home_registration(suite):
    sa = make_sa(suite)
    machine = MobilityMachine(sa, HOME_AGENT, lifetime=600, first_sequence=7)
    [bu] = machine.register(COA6, NOW)
    assert isinstance(bu, Transmit)
    assert (bu.address, bu.port) == (HA6, 7872)
    assert peek(bu.packet) == (PType.MOBILITY, sa.spi, 0)
    home_address, update = HomeAgentPeer(sa).open_update(bu)
    assert home_address == HOA6
    assert update.sequence == 7
    assert update.lifetime_seconds == 600
    assert update.flags == mh.BindingUpdateFlag.ACKNOWLEDGE | mh.BindingUpdateFlag.HOME_REGISTRATION
    assert update.options == ()


def test_ipv4_only_mn_over_ipv4_uses_mapped_home_address_and_ipv4_options():
    sa = make_sa(hoa6=None, hoa4=HOA4)
    machine = MobilityMachine(sa, HOME_AGENT, first_sequence=1)
    [bu] = machine.register(COA4, NOW)
    assert bu.address == HA4
    home_address, update = HomeAgentPeer(sa).open_update(bu)
    assert home_address.ipv4_mapped == HOA4
    assert mh.IPv4HomeAddress(HOA4) in update.options
    assert mh.IPv4CareOfAddress(COA4) in update.options


def test_ipv4_home_agent_only_is_mapped_in_pseudo_header():
    sa = make_sa()
    home_agent = HomeAgent(None, HA4, 7000)
    machine = MobilityMachine(sa, home_agent)
    [bu] = machine.register(COA4, NOW)
    assert (bu.address, bu.port) == (HA4, 7000)
    # The HA's parser checks the checksum against ::ffff:HA4.
    home_address, _ = HomeAgentPeer(sa, home_agent).open_update(bu)
    assert home_address == HOA6


def test_care_of_family_without_home_agent_address_fails_the_registration_at_once():
    machine = MobilityMachine(make_sa(), HomeAgent(None, HA4))
    assert machine.register(COA6, NOW) == [RegistrationFailed("no-home-agent-address")]
    assert machine.timer() is None
    machine = MobilityMachine(make_sa(), HomeAgent(HA6, None))
    assert machine.register(COA4, NOW) == [RegistrationFailed("no-home-agent-address")]


def test_ipv4_home_address_can_be_requested_for_assignment():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT, request_ipv4_home=True)
    [bu] = machine.register(COA6, NOW)
    _, update = HomeAgentPeer(sa).open_update(bu)
    assert update.options == (mh.IPv4HomeAddress(IPv4Address(0)),)


def test_sa_without_home_address_is_refused():
    with pytest.raises(ConfigError, match="no home address"):
        MobilityMachine(make_sa(hoa6=None), HOME_AGENT)


def test_lifetime_is_capped_by_the_sa_validity():
    sa = make_sa(validity_end=datetime.fromtimestamp(NOW + 400, timezone.utc))
    machine = MobilityMachine(sa, HOME_AGENT, lifetime=3600, sa_margin=60)
    [bu] = machine.register(COA6, NOW)
    _, update = HomeAgentPeer(sa).open_update(bu)
    assert update.lifetime_seconds == 340


# --------------------------------------------------------------------------- Binding Ack


@pytest.mark.parametrize("status", [BindingAckStatus.ACCEPTED,
                                    BindingAckStatus.ACCEPTED_PREFIX_DISCOVERY_NECESSARY])
def test_accepted_ba_registers(status):
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT, first_sequence=100, refresh_fraction=0.5)
    [bu] = machine.register(COA6, NOW)
    [event] = machine.receive(HomeAgentPeer(sa).answer(bu, status=status, lifetime=100), NOW + 0.2)
    binding = event.binding
    assert binding == machine.binding
    assert (binding.spi, binding.home_address, binding.care_of) == (sa.spi, HOA6, COA6)
    assert (binding.sequence, binding.status, binding.lifetime) == (100, status, 400)
    # The lifetime counts from when the BU was sent, not when the BA came.
    assert (binding.registered_at, binding.expires_at) == (NOW, NOW + 400)
    assert binding.refresh_at == NOW + 200
    assert machine.timer() == NOW + 200


@pytest.mark.parametrize(
    "status",
    [s for s in BindingAckStatus if s >= 128 and s not in (135, 176)] + [200],
)
def test_rejected_ba_fails_and_stops(status):
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT)
    [bu] = machine.register(COA6, NOW)
    events = machine.receive(HomeAgentPeer(sa).answer(bu, status=status), NOW + 0.1)
    assert events == [RegistrationFailed("rejected", status)]
    assert machine.binding is None
    assert machine.timer() is None
    assert machine.handle_timer(NOW + 100) == []


def test_reinit_sa_with_hac_asks_for_rebootstrap():
    machine, ha = registered_machine()
    [bu] = machine.handle_timer(machine.binding.refresh_at)
    events = machine.receive(ha.answer(bu, status=BindingAckStatus.REINIT_SA_WITH_HAC), NOW + 500)
    assert events == [Rebootstrap("reinit-sa-with-hac")]
    assert machine.timer() is None
    assert machine.encapsulate(ipv6_packet(HOA6, CN6), NOW + 500) is None
    assert machine.drops["not-registered"] == 1


def test_sequence_out_of_window_resyncs_and_resends():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT, first_sequence=5)
    ha = HomeAgentPeer(sa)
    [bu] = machine.register(COA6, NOW)
    ha.open_update(bu)
    refusal = ha.ack(HOA6, 40_000, status=BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW)
    [again] = machine.receive(refusal, NOW + 0.1)
    _, update = ha.open_update(again)
    assert update.sequence == 40_001
    [event] = machine.receive(ha.ack(HOA6, 40_001), NOW + 0.2)
    assert isinstance(event, Registered)
    assert event.binding.registered_at == NOW + 0.1


def test_binding_refresh_advice_brings_the_refresh_forward():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT)
    [bu] = machine.register(COA6, NOW)
    advice = mh.BindingRefreshAdvice(10)  # 40 s
    [event] = machine.receive(HomeAgentPeer(sa).answer(bu, options=[advice]), NOW)
    assert event.binding.refresh_at == NOW + 40


def test_ipv4_home_address_acknowledgement_is_recorded():
    sa = make_sa(hoa4=HOA4)
    machine = MobilityMachine(sa, HOME_AGENT)
    [bu] = machine.register(COA6, NOW)
    ack4 = mh.IPv4AddressAcknowledgement(mh.IPv4AckStatus.SUCCESS, HOA4)
    [event] = machine.receive(HomeAgentPeer(sa).answer(bu, options=[ack4]), NOW)
    assert (event.binding.home_address4, event.binding.ipv4_status) == (HOA4, 0)
    assert HOA4 in machine.home_addresses()


def test_refused_ipv4_home_address_fails_an_ipv4_only_mn():
    sa = make_sa(hoa6=None, hoa4=HOA4)
    machine = MobilityMachine(sa, HOME_AGENT)
    [bu] = machine.register(COA4, NOW)
    refused = mh.IPv4AddressAcknowledgement(mh.IPv4AckStatus.ADMINISTRATIVELY_PROHIBITED, HOA4)
    events = machine.receive(HomeAgentPeer(sa).answer(bu, options=[refused]), NOW)
    assert events == [RegistrationFailed("ipv4-home-address-refused", 129)]


def test_zero_lifetime_for_a_registration_fails():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT)
    [bu] = machine.register(COA6, NOW)
    events = machine.receive(HomeAgentPeer(sa).answer(bu, lifetime=0), NOW)
    assert events == [RegistrationFailed("zero-lifetime", 0)]


# --------------------------------------------------------------------------- drops


def test_tampered_replayed_stale_and_foreign_bas_are_dropped_without_state_change():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT, first_sequence=100)
    ha = HomeAgentPeer(sa)
    [bu] = machine.register(COA6, NOW)
    ha.open_update(bu)
    good = ha.ack(HOA6, 100)
    tampered = good[:-1] + bytes([good[-1] ^ 1])
    stale = ha.ack(HOA6, 99)
    other_hoa = ha.ack(IPv6Address("2001:db8:1::11"), 100)
    wrong_spi = SaEndpoint(make_sa(spi=4661), "ha").protect(PType.MOBILITY, b"x" * 8, 43)
    for datagram in (tampered, stale, other_hoa, wrong_spi, b"", b"\x80" * 7):
        assert machine.receive(datagram, NOW) == []
    assert machine.binding is None
    assert dict(machine.drops) == {
        "bad-icv": 1, "stale-ba": 1, "wrong-hoa": 1, "wrong-spi": 1, "malformed": 2
    }
    [event] = machine.receive(good, NOW)
    assert isinstance(event, Registered)
    assert machine.receive(good, NOW) == []
    assert machine.drops["replay"] == 1
    assert machine.receive(ha.ack(HOA6, 100), NOW) == []
    assert machine.drops["unexpected-ba"] == 1


@given(st.binary(max_size=200))
def test_arbitrary_datagrams_are_only_ever_counted(datagram):
    machine = MobilityMachine(make_sa(), HOME_AGENT)
    machine.register(COA6, NOW)
    assert machine.receive(datagram, NOW) == []
    assert sum(machine.drops.values()) == 1


# --------------------------------------------------------------------------- timing


def test_retransmissions_back_off_with_new_sequence_numbers_then_give_up():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT, first_sequence=0xFFFE, max_attempts=4)
    ha = HomeAgentPeer(sa)
    sent = machine.register(COA6, NOW)
    times = [NOW]
    progress = []
    while True:
        due = machine.timer()
        assert machine.handle_timer(due - 0.01) == []
        actions = machine.handle_timer(due)
        if not isinstance(actions[0], Transmit):
            break
        transmit, retrying = actions
        sent.append(transmit)
        progress.append(retrying)
        times.append(due)
    assert actions == [RegistrationFailed("no-answer", attempts=4)]
    assert [b - a for a, b in zip(times, times[1:])] == [1.5, 3.0, 6.0]
    assert progress == [Retrying(2, 4, 3.0, False), Retrying(3, 4, 6.0, False),
                        Retrying(4, 4, 12.0, True)]
    assert [ha.open_update(bu)[1].sequence for bu in sent] == [0xFFFE, 0xFFFF, 0, 1]
    assert machine.timer() is None


def test_give_up_at_bounds_the_retransmissions_of_a_registration():
    machine = MobilityMachine(make_sa(), HOME_AGENT)
    machine.register(COA6, NOW, give_up_at=NOW + 5)
    actions = machine.handle_timer(NOW + 1.5)
    assert isinstance(actions[0], Transmit)
    assert actions[1] == Retrying(2, 7, 3.0, False)
    actions = machine.handle_timer(NOW + 4.5)  # the next try would be at 10.5: after the deadline
    assert isinstance(actions[0], Transmit)
    assert actions[1] == Retrying(3, 7, 0.5, True)
    assert machine.timer() == NOW + 5
    assert machine.handle_timer(NOW + 5) == [RegistrationFailed("no-answer", attempts=3)]
    assert machine.timer() is None


def test_a_refresh_has_no_give_up_time_of_its_own():
    machine, _ = registered_machine()
    refresh = machine.binding.refresh_at
    [bu] = machine.handle_timer(refresh)
    assert isinstance(bu, Transmit)
    assert machine.timer() == refresh + 1.0


def test_ba_for_an_earlier_transmission_counts_from_its_send_time():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT)
    ha = HomeAgentPeer(sa)
    [first] = machine.register(COA6, NOW)
    second, _ = machine.handle_timer(NOW + 1.5)
    ha.open_update(second)
    [event] = machine.receive(ha.answer(first), NOW + 2)
    assert event.binding.registered_at == NOW


def test_refresh_happens_before_the_lifetime_ends():
    machine, ha = registered_machine(refresh_fraction=0.75)
    binding = machine.binding
    assert binding.refresh_at == NOW + 450 < binding.expires_at
    assert machine.handle_timer(binding.refresh_at - 1) == []
    [bu] = machine.handle_timer(binding.refresh_at)
    home_address, update = ha.open_update(bu)
    assert (home_address, update.sequence) == (HOA6, 101)
    # Retransmissions of a refresh start at 1 s, not the first registration's 1.5 s.
    assert machine.timer() == binding.refresh_at + 1.0
    [event] = machine.receive(ha.ack(HOA6, 101), binding.refresh_at + 0.1)
    assert event.binding.expires_at == binding.refresh_at + 600


def test_binding_lapses_when_refreshes_go_unanswered():
    machine, _ = registered_machine(max_attempts=50)
    expires_at = machine.binding.expires_at
    while machine.timer() < expires_at:
        machine.handle_timer(machine.timer())
    machine.handle_timer(expires_at)
    assert machine.binding is None
    assert machine.encapsulate(ipv6_packet(HOA6, CN6), expires_at) is None


def test_sa_expiry_sends_the_mn_back_to_the_hac():
    sa = make_sa(validity_end=datetime.fromtimestamp(NOW + 1000, timezone.utc))
    machine, ha = registered_machine(sa=sa, sa_margin=100)
    assert machine.binding.lifetime == 600
    [refresh] = machine.handle_timer(machine.binding.refresh_at)
    [event] = machine.receive(ha.answer(refresh), NOW + 450)
    # The refreshed binding may not outlive the time left before the SA's end.
    deadline = NOW + 900
    assert NOW + 890 < event.binding.expires_at <= deadline
    assert machine.handle_timer(deadline) == [Rebootstrap("sa-expiry")]
    assert machine.timer() is None


# --------------------------------------------------------------------------- handover and rekey


def test_handover_reregisters_the_new_care_of_address_under_the_same_sa():
    machine, ha = registered_machine()
    spi = machine.sa.spi
    [bu] = machine.register(COA6_MOVED, NOW + 10)
    # Same SA: the HA's endpoint opens it, the transform sequence simply goes on.
    assert peek(bu.packet) == (PType.MOBILITY, spi, 1)
    [event] = machine.receive(ha.answer(bu), NOW + 10.1)
    assert (event.binding.spi, event.binding.care_of) == (spi, COA6_MOVED)
    assert event.binding.sequence == 101


def test_handover_to_ipv4_switches_the_outer_transport():
    machine, ha = registered_machine()
    [bu] = machine.register(COA4, NOW + 10)
    assert bu.address == HA4
    _, update = ha.open_update(bu)
    assert update.options == (mh.IPv4CareOfAddress(COA4),)
    data = machine.encapsulate(ipv6_packet(HOA6, CN6), NOW + 11)
    assert data.address == HA4


def test_rekey_after_176_registers_under_the_new_sa():
    machine, ha = registered_machine()
    [bu] = machine.register(COA6, NOW + 5)
    machine.receive(ha.answer(bu, status=BindingAckStatus.REINIT_SA_WITH_HAC), NOW + 5)
    new_sa = make_sa(spi=9999)
    [bu] = machine.rekey(new_sa, HOME_AGENT, NOW + 6)
    assert peek(bu.packet) == (PType.MOBILITY, 9999, 0)
    new_ha = HomeAgentPeer(new_sa)
    _, update = new_ha.open_update(bu)
    assert update.sequence == 102
    [event] = machine.receive(new_ha.ack(HOA6, 102), NOW + 6)
    assert event.binding.spi == 9999


def test_deregistration():
    machine, ha = registered_machine()
    [bu] = machine.deregister(NOW + 5)
    _, update = ha.open_update(bu)
    assert update.lifetime_units == 0
    assert machine.receive(ha.ack(HOA6, update.sequence, lifetime=0), NOW + 5) == [Deregistered()]
    assert machine.binding is None


# --------------------------------------------------------------------------- Binding Error


def test_binding_error_for_the_home_address_re_registers_at_once():
    machine, ha = registered_machine()
    refresh_at = machine.binding.refresh_at
    [bu] = machine.receive(ha.binding_error(HOA6), NOW + 20)
    assert isinstance(bu, Transmit) and (bu.address, bu.port) == (HA6, 7872)
    home_address, update = ha.open_update(bu)
    assert home_address == HOA6 and update.sequence == 101
    assert update.lifetime_seconds == machine.lifetime
    assert machine.counters["binding-error"] == 1 and not machine.drops
    assert machine.timer() == NOW + 21  # the new BU's retransmission, not the refresh
    assert machine.timer() < refresh_at
    # a second one while that BU is outstanding sends nothing more
    assert machine.receive(ha.binding_error(HOA6), NOW + 20.5) == []
    assert machine.counters["binding-error"] == 2
    [event] = machine.receive(ha.ack(HOA6, 101, lifetime=update.lifetime_units), NOW + 21)
    assert isinstance(event, Registered) and event.binding.registered_at == NOW + 20


def test_binding_errors_that_do_not_apply_are_dropped():
    machine, ha = registered_machine()
    other = IPv6Address("2001:db8:1::11")
    forged = ha.binding_error(HOA6)
    forged = forged[:-1] + bytes([forged[-1] ^ 1])
    cases = {
        "wrong-hoa": [ha.binding_error(other), ha.binding_error(HOA6, named=other)],
        "unhandled-binding-error": [
            ha.binding_error(HOA6, mh.BindingErrorStatus.UNRECOGNIZED_MH_TYPE)],
        "bad-icv": [forged],
    }
    for reason, datagrams in cases.items():
        for datagram in datagrams:
            assert machine.receive(datagram, NOW + 20) == [], reason
        assert machine.drops[reason] == len(datagrams), reason
    assert machine.counters["binding-error"] == 0
    assert machine.timer() == machine.binding.refresh_at  # nothing pending


def test_binding_error_after_deregistration_does_not_register_again():
    machine, ha = registered_machine()
    [bu] = machine.deregister(NOW + 5)
    _, update = ha.open_update(bu)
    machine.receive(ha.ack(HOA6, update.sequence, lifetime=0), NOW + 5)
    assert machine.receive(ha.binding_error(HOA6), NOW + 6) == []
    assert machine.counters["binding-error"] == 1 and machine.binding is None


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("hoa4", "build", "source", "next_header"),
    [(None, ipv6_packet, HOA6, NEXT_HEADER_IPV6), (HOA4, ipv4_packet, HOA4, NEXT_HEADER_IPV4)],
)
def test_data_is_protected_both_ways_when_the_sa_covers_data(hoa4, build, source, next_header):
    sa = make_sa(hoa4=hoa4)
    machine = MobilityMachine(sa, HOME_AGENT)
    ha = HomeAgentPeer(sa)
    [bu] = machine.register(COA6, NOW)
    options = [mh.IPv4AddressAcknowledgement(0, hoa4)] if hoa4 else []
    machine.receive(ha.answer(bu, options=options), NOW)
    correspondent = CN6 if hoa4 is None else CN4
    packet = build(source, correspondent)
    out = machine.encapsulate(packet, NOW + 1)
    opened = ha.endpoint.unprotect(out.packet)
    assert (opened.ptype, opened.payload, opened.next_header) == (
        PType.ENCRYPTED_IP, packet, next_header)
    reply = build(correspondent, source, b"pong")
    sealed = ha.endpoint.protect(PType.ENCRYPTED_IP, reply, next_header)
    assert machine.receive(sealed, NOW + 1) == [Deliver(reply)]


def test_signaling_only_sa_tunnels_data_plain():
    sa = make_sa(scope=SCOPE_SIGNALING)
    machine, ha = registered_machine(sa=sa)
    packet = ipv6_packet(HOA6, CN6)
    out = machine.encapsulate(packet, NOW + 1)
    assert out.packet == bytes(8) + packet
    reply = ipv6_packet(CN6, HOA6)
    assert machine.receive(bytes(8) + reply, NOW + 1) == [Deliver(reply)]
    # Protected data is outside a signaling-only SA's scope.
    assert machine.receive(b"\x10\x00\x12\x34" + bytes(40), NOW + 1) == []
    assert machine.drops["wrong-ptype"] == 1


def test_data_not_from_or_to_a_home_address_is_dropped():
    machine, ha = registered_machine()
    assert machine.encapsulate(ipv6_packet(COA6, CN6), NOW + 1) is None
    assert machine.encapsulate(b"\x60short", NOW + 1) is None
    foreign = ha.endpoint.protect(PType.ENCRYPTED_IP, ipv6_packet(CN6, COA6), NEXT_HEADER_IPV6)
    assert machine.receive(foreign, NOW + 1) == []
    assert dict(machine.drops) == {"not-home-address": 2, "malformed": 1}


def test_data_before_registration_is_not_sent():
    machine = MobilityMachine(make_sa(), HOME_AGENT)
    machine.register(COA6, NOW)
    assert machine.encapsulate(ipv6_packet(HOA6, CN6), NOW) is None
    assert machine.drops["not-registered"] == 1


def test_exhausted_sequence_space_asks_for_a_new_sa():
    machine, _ = registered_machine()
    machine.endpoint = SaEndpoint(machine.sa, "mn", next_sequence=1 << 32)
    assert machine.encapsulate(ipv6_packet(HOA6, CN6), NOW + 1) is None
    assert machine.drops["sequence-exhausted"] == 1
    assert machine.timer() < NOW
    assert machine.handle_timer(NOW + 1) == [Rebootstrap("sequence-exhausted")]


def test_repr_holds_no_key():
    sa = make_sa()
    machine = MobilityMachine(sa, HOME_AGENT)
    text = repr(machine) + repr(machine.register(COA6, NOW))
    for key in (sa.mn_to_ha_ikey, sa.mn_to_ha_ekey, sa.ha_to_mn_ikey):
        assert key.hex() not in text
    assert ip_address("2001:db8:1::10") == machine.home_address


def test_a_silent_home_agent_sends_an_mn_that_stays_back_to_the_hac():
    machine, _ = registered_machine(max_attempts=3, rebootstrap_when_silent=True)
    refresh = machine.binding.refresh_at
    machine.handle_timer(refresh)  # the refresh BU, then 1 s and 2 s retransmissions
    machine.handle_timer(refresh + 1)
    machine.handle_timer(refresh + 3)
    assert machine.handle_timer(refresh + 7 - 0.01) == []
    assert machine.handle_timer(refresh + 7) == [Rebootstrap("home-agent-silent")]
    assert machine.timer() is None


def test_a_command_deadline_still_fails_the_registration_when_silence_rebootstraps():
    machine = MobilityMachine(make_sa(), HOME_AGENT, rebootstrap_when_silent=True)
    machine.register(COA6, NOW, give_up_at=NOW + 1)
    assert machine.handle_timer(NOW + 1) == [RegistrationFailed("no-answer", attempts=1)]
