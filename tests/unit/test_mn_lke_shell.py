"""``mip6-mn --lke``'s shell (mn/lke.py) around a recording core: when it asks the core,
what it does with the core's answers, and what its reverse tunnel lets through."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from twisted.internet.task import Clock

from aaa_mip6.lke import actions as lke
from aaa_mip6.lke.lbsa import Lbsa
from aaa_mip6.twisted import rawip
from mn import lke as shell

ROUTER = IPv6Address("fe80::1")
AR = IPv6Address("2001:db8:a1::1")
PREVIOUS = IPv6Address("2001:db8:a1::100")
CURRENT = IPv6Address("2001:db8:a2::100")
CN = IPv6Address("2001:db8:c::2")
MAC = bytes.fromhex("020000000001")
LINK = rawip.Interface("l1", 7, MAC, IPv6Address("fe80::100"), (PREVIOUS,))


class RecordingCore:
    def __init__(self):
        self.calls: list[tuple] = []
        self.answers: list[list] = []
        self.routers, self.lbsas, self.counters = [], [], {}

    def _answer(self, *call):
        self.calls.append(call)
        return self.answers.pop(0) if self.answers else []

    def icmp_received(self, data, source, destination, hop_limit, now):
        return self._answer("icmp", data, source)

    def mobility_received(self, data, source, destination, hop_limit, now):
        return self._answer("mobility", data, source)

    def key_exchange(self, care_of, link_local, now):
        return self._answer("key_exchange", care_of, link_local)

    def moved(self, care_of, now):
        return self._answer("moved", care_of)

    def timer(self):
        return None


class FakeDevice:
    def __init__(self):
        self.held: list[IPv6Address] = []
        self.written: list[bytes] = []

    def hold(self, previous):
        self.held.append(previous)

    def release(self, previous):
        self.held.remove(previous)

    def write(self, packet):
        self.written.append(packet)
        return True


@pytest.fixture
def mn(monkeypatch):
    sent = []
    monkeypatch.setattr(shell, "interface_holding", lambda address: LINK)
    monkeypatch.setattr(rawip, "send", lambda sock, data, destination, source=None,
                        interface=0: sent.append(("tunnel", data, destination, source)) or True)
    monkeypatch.setattr(rawip, "send_packet", lambda sock, source, destination, next_header,
                        payload, interface=0: sent.append(("packet", payload, destination,
                                                           interface)) or True)
    events = []
    result = shell.LocalKeyExchange(Clock(), RecordingCore(), FakeDevice(),
                                    {"tunnel": None, "sender": None},
                                    lambda event, fields: events.append((event, fields)))
    result.sent, result.events = sent, events
    return result


def advertisement(source=ROUTER) -> rawip.Received:
    return rawip.Received(b"\x86" + bytes(15), source, IPv6Address("ff02::1"), 255, 7)


def test_a_registration_starts_a_key_exchange_from_the_link_local_of_its_link(mn):
    mn._icmp(advertisement())
    mn.registered(PREVIOUS)
    assert [call[0] for call in mn.core.calls] == ["icmp", "key_exchange"]
    assert mn.core.calls[1][1:] == (PREVIOUS, LINK.link_local)


def test_the_link_layer_address_is_that_of_the_interface_holding_the_address(monkeypatch):
    monkeypatch.setattr(shell, "interface_holding",
                        lambda address: LINK if address == PREVIOUS else None)
    assert shell.link_layer_address_of(PREVIOUS) == MAC
    assert shell.link_layer_address_of(CURRENT) is None


def test_a_key_exchange_without_a_known_router_waits_for_the_next_advertisement(mn):
    core = mn.core
    core.answers = [[lke.Drop("no-lke-router")], [], []]
    core.calls.clear()
    mn.registered(PREVIOUS)
    mn._icmp(advertisement())
    assert [call[0] for call in core.calls] == ["key_exchange", "icmp", "key_exchange"]
    mn._icmp(advertisement())  # the exchange started: no third attempt
    assert [call[0] for call in core.calls][-1] == "icmp"


def test_the_key_exchange_request_leaves_by_the_routers_link(mn):
    mn._icmp(advertisement())
    mn.core.answers = [[lke.SendMobility(LINK.link_local, ROUTER, b"request")]]
    mn.registered(PREVIOUS)
    assert mn.sent == [("packet", b"request", ROUTER, 7)]


def test_a_move_asks_the_core_for_the_previous_routers_update_only_for_ipv6(mn):
    mn.registered(PREVIOUS)
    mn.moving(IPv4Address("198.51.100.6"))
    mn.moving(CURRENT)
    mn.moving(None)
    assert [call for call in mn.core.calls if call[0] == "moved"] == [("moved", CURRENT)]


def bound(lifetime: int) -> lke.PreviousBound:
    return lke.PreviousBound(ROUTER, PREVIOUS, CURRENT, lifetime)


def ready() -> lke.LbsaReady:
    return lke.LbsaReady(ROUTER, Lbsa(PREVIOUS, AR, ROUTER, LINK.link_local, bytes(16),
                                      1e10, 1))


def packet(source, destination) -> bytes:
    return rawip.ipv6_packet(source, destination, 17, b"payload!", hop_limit=64)


def test_once_bound_the_previous_address_is_held_and_both_directions_flow(mn):
    mn.registered(PREVIOUS)
    mn._perform([ready(), bound(600)])
    assert mn.device.held == [PREVIOUS]
    assert [event for event, _ in mn.events] == ["lke-established", "lke-bound"]
    assert mn.events[1][1]["ar"] == str(AR)
    inbound = packet(CN, PREVIOUS)
    mn._from_tunnel(rawip.Received(inbound, AR, CURRENT, 64, 0))
    mn._from_tunnel(rawip.Received(inbound, IPv6Address("2001:db8:a1::66"), CURRENT, 64, 0))
    mn._from_tunnel(rawip.Received(packet(CN, CURRENT), AR, CURRENT, 64, 0))
    assert mn.device.written == [inbound]
    outbound = packet(PREVIOUS, CN)
    mn._from_device(outbound)
    mn._from_device(packet(IPv6Address("2001:db8:a1::5"), CN))
    assert mn.sent == [("tunnel", outbound, AR, CURRENT)]


def test_a_binding_ends_at_lifetime_zero_or_when_its_time_is_up(mn):
    mn.registered(PREVIOUS)
    mn._perform([ready(), bound(600)])
    mn._perform([bound(0)])
    assert mn.device.held == []
    mn._perform([bound(5)])
    mn.reactor.advance(5)
    mn._expire()
    assert mn.device.held == [] and mn.forwarding == {}


def test_the_status_names_what_forwards_and_no_key(mn):
    assert mn.status()["lbsas"] == [] and mn.status()["forwarded-by"] == {}
    mn.registered(PREVIOUS)
    core = mn.core
    core.counters = {"ke-sent": 1}
    core.lbsas = [ready().lbsa]
    mn._perform([ready(), bound(600)])
    status = mn.status()
    assert status["lbsas"][0]["ar"] == str(AR) and status["counters"] == {"ke-sent": 1}
    assert status["forwarded-by"] == {str(PREVIOUS): str(AR)}
    assert "kbm" not in str(status) and bytes(16).hex() not in str(status)


def test_one_key_exchange_per_care_of_address_unless_the_core_gave_up(mn):
    mn.registered(PREVIOUS)
    mn.registered(PREVIOUS)  # a refresh
    core = mn.core
    assert [call[0] for call in core.calls] == ["key_exchange"]
    mn._perform([lke.LbsaLost(ROUTER, "dad-impostor")])  # the core starts again itself
    mn.registered(PREVIOUS)
    assert [call[0] for call in core.calls] == ["key_exchange"]
    mn._perform([lke.LbsaLost(ROUTER, "ke-timeout")])
    mn.registered(PREVIOUS)
    assert [call[0] for call in core.calls] == ["key_exchange", "key_exchange"]
    assert ("lke-lost", {"router": str(ROUTER), "why": "ke-timeout"}) in mn.events
