"""The LKE lab's negative cases (:mod:`lab.lke`), each from a host of its own on link 1 or
from the MN's namespace, each to be refused by AR1 and counted under its reason:

- ``forged_key_exchange``: ``atk`` sends a Key Exchange Request for the MN's care-of
  address (which already has a DAD-confirmed LBSA) under a key of its own: "ke-coa-bound";
- ``impostor_dad``: ``vic`` runs an honest key exchange (the MN side's core, driven here)
  and ``atk`` answers AR1's DAD probe for ``vic``'s address with its own link-layer
  address: "dad-impostor";
- ``replay_binding_update``: the MN's Binding Update to AR1, captured at AR1, is sent
  again from the MN's new care-of address: "bu-replay".
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from ipaddress import IPv6Address

from aaa_mip6.iana import NEXT_HEADER_ICMPV6, NEXT_HEADER_MOBILITY
from aaa_mip6.lke import actions as lke
from aaa_mip6.lke import crypto, nd
from aaa_mip6.lke.messages import KeyExchangeRequest
from aaa_mip6.twisted import rawip

from .netns import LabError, in_namespace

CASES = {"forged_ke_request": "ke-coa-bound", "impostor_dad": "dad-impostor",
         "replayed_bu": "bu-replay"}
RA_WAIT = 5.0  # seconds to wait for AR1's Router Advertisement
DAD_WINDOW = 3.0  # seconds the victim and the impostor stay on the link for AR1's probe
MH_BINDING_UPDATE = 5


def _next_ra(sock: socket.socket, timeout: float) -> tuple[IPv6Address, nd.LkeCapability]:
    """(AR link-local, its LKE Capability) from the next LKE-capable RA on ``sock``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        received = rawip.receive(sock)
        if received is None or received.data[:1] != bytes([nd.ROUTER_ADVERTISEMENT]):
            continue
        decoded = nd.decode_nd(received.data, received.source, received.destination)
        capability = decoded.message.option(nd.LkeCapability)
        if capability is not None:
            return received.source, capability
    raise LabError(f"no LKE-capable Router Advertisement within {timeout:g} s")


def forged_key_exchange(lab) -> None:
    """``atk`` asks AR1 for an LBSA on the MN's care-of address, with a Kbm of its own."""
    target = lab.mn.care_of(1)

    def attack() -> None:
        link = rawip.interface("l1")
        listener = rawip.open_raw(NEXT_HEADER_ICMPV6, "l1", icmp_types=(134,))
        sender = rawip.open_sender()
        try:
            router, capability = _next_ra(listener, RA_WAIT)
            public_key = crypto.decode_public_key(capability.public_key)
            request = KeyExchangeRequest(
                int.from_bytes(os.urandom(2), "big"), target, 100,
                crypto.wrap_kbm(public_key, os.urandom(16), target))
            rawip.send_packet(sender, link.link_local, router, NEXT_HEADER_MOBILITY,
                              request.encode(link.link_local, router), link.index)
        finally:
            listener.close()
            sender.close()

    in_namespace(lab.name("atk"), attack)


def impostor_dad(lab) -> None:
    """``vic`` runs an honest key exchange; ``atk`` answers AR1's DAD probe for it."""
    victim = lab.address_of("vic")
    ready = threading.Event()
    impostor = threading.Thread(target=in_namespace, daemon=True,
                                args=(lab.name("atk"), lambda: _impostor(victim, ready)))
    impostor.start()
    if not ready.wait(RA_WAIT):
        raise LabError("the DAD impostor did not start")
    in_namespace(lab.name("vic"), lambda: _honest_key_exchange(victim))
    impostor.join(DAD_WINDOW + 1)


def _impostor(victim: IPv6Address, ready: threading.Event) -> None:
    """Answer every DAD probe for ``victim`` with a Neighbor Advertisement of our own."""
    link = rawip.interface("l1")
    listener = rawip.open_raw(NEXT_HEADER_ICMPV6, "l1", icmp_types=(135,))
    rawip.join_group(listener, nd.solicited_node(victim), link.index)
    sender = rawip.open_sender()
    ready.set()
    deadline = time.monotonic() + DAD_WINDOW + RA_WAIT
    try:
        while time.monotonic() < deadline:
            select.select([listener], [], [], 0.1)
            received = rawip.receive(listener)
            if received is None or received.source != nd.UNSPECIFIED:
                continue
            try:
                probe = nd.decode_nd(received.data, received.source, received.destination)
            except Exception:  # noqa: BLE001 (not ours to judge: the impostor only listens)
                continue
            if probe.message.target != victim:
                continue
            answer = nd.NeighborAdvertisement(victim, nd.NA_OVERRIDE, (
                nd.LinkLayerAddress(nd.TARGET_LINK_LAYER_ADDRESS, link.link_layer_address),))
            rawip.send_packet(sender, victim, nd.ALL_NODES, NEXT_HEADER_ICMPV6,
                              answer.encode(victim, nd.ALL_NODES), link.index)
    finally:
        listener.close()
        sender.close()


def _honest_key_exchange(care_of: IPv6Address) -> None:
    """The MN side's core, driven by a blocking loop: learn AR1, key exchange, answer DAD."""
    from aaa_mip6.lke.mn import MnCore, MnPolicy

    link = rawip.interface("l1")
    core = MnCore(MnPolicy(link_layer_address=link.link_layer_address))
    icmp = rawip.open_raw(NEXT_HEADER_ICMPV6, "l1", icmp_types=(134, 135, 136))
    mobility = rawip.open_raw(NEXT_HEADER_MOBILITY)
    sender = rawip.open_sender()
    sockets = {icmp: core.icmp_received, mobility: core.mobility_received}
    started = False
    deadline = time.monotonic() + RA_WAIT + DAD_WINDOW
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select(list(sockets), [], [], 0.05)
            actions = []
            for sock in readable:
                received = rawip.receive(sock)
                if received is not None:
                    actions += sockets[sock](received.data, received.source,
                                             received.destination, received.hop_limit,
                                             time.time())
            if not started and core.routers:
                actions += core.key_exchange(care_of, link.link_local, time.time())
                started = True
            timer = core.timer()
            if timer is not None and timer <= time.time():
                actions += core.handle_timer(time.time())
            for action in actions:
                if isinstance(action, (lke.SendIcmp, lke.SendMobility)):
                    kind = NEXT_HEADER_ICMPV6 if isinstance(action, lke.SendIcmp) \
                        else NEXT_HEADER_MOBILITY
                    rawip.send_packet(sender, action.source, action.destination, kind,
                                      action.data, link.index)
    finally:
        for sock in (icmp, mobility, sender):
            sock.close()
    if not started:
        raise LabError("the victim never saw AR1's LKE capability")


class BindingUpdateSniffer:
    """A copy of the first Binding Update AR1 receives from the MN's link-2 care-of address."""

    def __init__(self, lab):
        self.lab = lab
        self.source = lab.mn.care_of(2)
        self.captured: bytes | None = None
        self._socket = in_namespace(lab.name("ar1"), lambda: rawip.open_raw(NEXT_HEADER_MOBILITY))
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + 120
        while self.captured is None and time.monotonic() < deadline:
            select.select([self._socket], [], [], 0.2)
            received = rawip.receive(self._socket)
            if (received is not None and received.source == self.source
                    and len(received.data) > 2 and received.data[2] == MH_BINDING_UPDATE):
                self.captured = received.data
        self._socket.close()


def replay_binding_update(lab, sniffer: BindingUpdateSniffer) -> None:
    """Send the captured BU again, byte for byte, from the MN's namespace."""
    deadline = time.monotonic() + 5
    while sniffer.captured is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if sniffer.captured is None:
        raise LabError("AR1 never received the MN's Binding Update")
    destination = lab.ar_address(1)

    def replay() -> None:
        sender = rawip.open_sender()
        try:
            rawip.send_packet(sender, sniffer.source, destination, NEXT_HEADER_MOBILITY,
                              sniffer.captured)
        finally:
            sender.close()

    in_namespace(lab.mn.namespace, replay)
