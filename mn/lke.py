"""The MN's Local Key Exchange shell (``mip6-mn --lke``; draft-liu-mobileip-lke-01, docs/lke.md).

Moves bytes and time between an :class:`aaa_mip6.lke.mn.MnCore` and the MN's links:
Router Advertisements (the core learns the LKE-capable access routers), the AR's
authenticated DAD probes (the core answers them), the Key Exchange Acknowledgement and
the Binding Acknowledgement of a previous AR. The session tells it two things: a home
registration completed (:meth:`LocalKeyExchange.registered`: the core starts a key
exchange with the AR of that care-of address) and the MN is about to register a new
care-of address (:meth:`LocalKeyExchange.moving`: the core sends the Binding Update to
the previous AR before the home BU leaves).

Once a previous AR accepts, the MN keeps its previous care-of address on a TUN device
(``--lke-tun``): packets the AR tunnels to the new care-of address (IPv6-in-IPv6) are
written into it, so they reach the programs bound to the old address; what those programs
send from it is routed into the device (a source rule and table of its own) and
reverse-tunneled to the AR. That ends when the binding's lifetime does.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network

from twisted.internet import task

from aaa_mip6.iana import NEXT_HEADER_ICMPV6, NEXT_HEADER_IPV6, NEXT_HEADER_MOBILITY
from aaa_mip6.errors import ConfigError, PacketError
from aaa_mip6.lke import actions as lke
from aaa_mip6.lke.nd import NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, ROUTER_ADVERTISEMENT
from aaa_mip6.twisted import rawip
from aaa_mip6.twisted.timer import rearm
from aaa_mip6.twisted.tun import DeviceReader, SilentTunDevice, TunnelError, run_ip

from .mobility import inner_addresses

log = logging.getLogger("mip6.mn.lke")

ICMP_TYPES = (ROUTER_ADVERTISEMENT, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT)  # to the core
TUNNEL_MTU = 1400
ROUTE_TABLE = "4242"  # the source-routing table of the previous care-of addresses
GAVE_UP = ("ke-timeout", "ke-refused", "expired")  # LbsaLost: the core stopped trying


class PreviousAddressDevice(SilentTunDevice):
    """The TUN device holding the MN's previous care-of addresses while an AR forwards them."""

    @classmethod
    def open(cls, name: str) -> PreviousAddressDevice:
        return cls.create(name, TUNNEL_MTU)

    def hold(self, previous: IPv6Address) -> None:
        """``previous`` on the device; packets from it routed into the device."""
        run_ip("-6", "address", "replace", f"{previous}/128", "dev", self.name, "nodad")
        run_ip("-6", "route", "replace", "default", "dev", self.name, "table", ROUTE_TABLE)
        try:
            run_ip("-6", "rule", "del", "from", str(IPv6Network(previous)), "table", ROUTE_TABLE)
        except TunnelError:
            pass  # there was none
        run_ip("-6", "rule", "add", "from", str(IPv6Network(previous)), "table", ROUTE_TABLE)

    def release(self, previous: IPv6Address) -> None:
        for arguments in (("rule", "del", "from", str(IPv6Network(previous)), "table",
                           ROUTE_TABLE),
                          ("address", "del", f"{previous}/128", "dev", self.name)):
            try:
                run_ip("-6", *arguments)
            except TunnelError:
                pass  # gone already


class LocalKeyExchange:
    """One MN's LKE: the core, raw sockets on every interface, the previous-address device.

    ``report(event, fields)`` prints an event (``lke-established``, ``lke-lost``,
    ``lke-bound``, ``lke-refused``) the way the session's other events are printed.
    """

    def __init__(self, reactor, core, device: PreviousAddressDevice,
                 sockets: dict[str, socket.socket], report: Callable[[str, dict], None]):
        self.reactor = reactor
        self.core = core
        self.device = device
        self.sockets = sockets
        self.report = report
        self._keyed: IPv6Address | None = None  # the care-of address an LKE was started for
        self._waiting: tuple[IPv6Address, IPv6Address] | None = None  # (care-of, link-local)
        #  of a key exchange waiting for its AR's first RA
        self.routers: dict[IPv6Address, int] = {}  # AR link-local -> interface index
        self.ar_addresses: dict[IPv6Address, IPv6Address] = {}  # AR link-local -> global
        self.forwarding: dict[IPv6Address, tuple[IPv6Address, IPv6Address, float]] = {}
        #  previous CoA -> (AR global address, current CoA, until)
        self.send_failures = 0
        self._readers = []
        self._timer = None
        self._expiring: task.LoopingCall | None = None

    @classmethod
    def open(cls, reactor, core, device_name: str,
             report: Callable[[str, dict], None]) -> LocalKeyExchange:
        """Raw sockets and the TUN device; PrivilegeError (a ConfigError) without root."""
        sockets = {
            "icmp": rawip.open_raw(NEXT_HEADER_ICMPV6, icmp_types=ICMP_TYPES),
            "mobility": rawip.open_raw(NEXT_HEADER_MOBILITY),
            "tunnel": rawip.open_raw(NEXT_HEADER_IPV6),
            "sender": rawip.open_sender(),
        }
        try:
            device = PreviousAddressDevice.open(device_name)
        except TunnelError as error:
            for sock in sockets.values():
                sock.close()
            raise rawip.PrivilegeError(f"--lke-tun {device_name}: {error} (needs "
                                       f"CAP_NET_ADMIN: run as root)") from None
        return cls(reactor, core, device, sockets, report)

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        for name, deliver in (("icmp", self._icmp), ("mobility", self._mobility),
                              ("tunnel", self._from_tunnel)):
            reader = rawip.SocketReader(self.sockets[name], deliver, f"mip6-mn-lke-{name}")
            self.reactor.addReader(reader)
            self._readers.append(reader)
        reader = DeviceReader(self.device, self._from_device, "mip6-mn-lke-tun")
        self.reactor.addReader(reader)
        self._readers.append(reader)
        self._expiring = task.LoopingCall(self._expire)
        self._expiring.clock = self.reactor
        self._expiring.start(1.0, now=False)

    def stop(self) -> None:
        if self._expiring is not None and self._expiring.running:
            self._expiring.stop()
        for reader in self._readers:
            self.reactor.removeReader(reader)
        self._readers = []
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        for previous in list(self.forwarding):
            self.device.release(previous)
        self.device.close()
        for sock in self.sockets.values():
            sock.close()

    def registered(self, care_of) -> None:
        """The HA accepted ``care_of``: set up an LBSA with its link's LKE-capable AR, once
        per care-of address (a refresh changes nothing; the core renews the LBSA itself)."""
        if care_of.version != 6 or care_of == self._keyed:
            return  # LKE is IPv6 only
        link = interface_holding(care_of)
        if link is None or link.link_local is None:
            log.warning("LKE: no interface holds %s with a link-local address", care_of)
            return
        self._keyed = care_of
        self._exchange(care_of, link.link_local)

    def moving(self, care_of) -> None:
        """The MN is registering ``care_of``: Binding Updates to the previous AR(s) first."""
        if care_of is None or care_of.version != 6:
            return
        self._waiting = None
        self._perform(self.core.moved(care_of, self.reactor.seconds()))

    def _exchange(self, care_of: IPv6Address, link_local: IPv6Address) -> None:
        actions = self.core.key_exchange(care_of, link_local, self.reactor.seconds())
        no_router = any(isinstance(action, lke.Drop) and action.reason == "no-lke-router"
                        for action in actions)
        self._waiting = (care_of, link_local) if no_router else None
        self._perform(actions)

    def status(self) -> dict:
        """The LKE part of the MN's SIGUSR1 status: ARs, LBSAs, forwarding, counters."""
        now = self.reactor.seconds()
        return {
            "routers": [str(router.link_local) for router in self.core.routers],
            "lbsas": [{"ar": str(lbsa.ar_address), "care-of": str(lbsa.care_of),
                       "expires-in": max(0, round(lbsa.expires - now))}
                      for lbsa in self.core.lbsas],
            "forwarded-by": {str(previous): str(router)
                             for previous, (router, _, _) in self.forwarding.items()},
            "counters": dict(sorted(self.core.counters.items())),
            "send-failures": self.send_failures,
        }

    # ----------------------------------------------------------------- input

    def _icmp(self, received: rawip.Received) -> None:
        advertisement = (received.source.is_link_local
                         and received.data[:1] == bytes([ROUTER_ADVERTISEMENT]))
        if advertisement:
            self.routers[received.source] = received.interface
        self._perform(self.core.icmp_received(received.data, received.source,
                                              received.destination, received.hop_limit,
                                              self.reactor.seconds()))
        if advertisement and self._waiting is not None:
            self._exchange(*self._waiting)

    def _mobility(self, received: rawip.Received) -> None:
        self._perform(self.core.mobility_received(received.data, received.source,
                                                  received.destination, received.hop_limit,
                                                  self.reactor.seconds()))

    def _from_tunnel(self, received: rawip.Received) -> None:
        """A packet a previous AR tunneled: for a previous CoA it forwards, into the device."""
        try:
            _, _, destination = inner_addresses(received.data)
        except PacketError:
            return
        binding = self.forwarding.get(destination)
        if binding is None or binding[0] != received.source:
            return
        self.device.write(received.data)

    def _from_device(self, packet: bytes) -> None:
        """A packet from a previous CoA: reverse-tunneled to the AR that forwards it."""
        try:
            _, source, _ = inner_addresses(packet)
        except PacketError:
            return
        binding = self.forwarding.get(source)
        if binding is None:
            return
        router, current, _ = binding
        if not rawip.send(self.sockets["tunnel"], packet, router, source=current):
            self.send_failures += 1

    def _timer_fired(self) -> None:
        self._timer = None
        self._perform(self.core.handle_timer(self.reactor.seconds()))

    def _expire(self) -> None:
        now = self.reactor.seconds()
        for previous, (_, _, until) in list(self.forwarding.items()):
            if until <= now:
                self._release(previous)

    # ----------------------------------------------------------------- output

    def _perform(self, actions) -> None:
        for action in actions:
            if isinstance(action, lke.SendIcmp):
                self._send(action, NEXT_HEADER_ICMPV6)
            elif isinstance(action, lke.SendMobility):
                self._send(action, NEXT_HEADER_MOBILITY)
            elif isinstance(action, lke.LbsaReady):
                self.ar_addresses[action.router] = action.lbsa.ar_address
                self.report("lke-established", {
                    "ar": str(action.lbsa.ar_address), "router": str(action.router),
                    "care-of": str(action.lbsa.care_of),
                    "expires-in": round(action.lbsa.expires - self.reactor.seconds())})
            elif isinstance(action, lke.LbsaLost):
                if action.why in GAVE_UP:
                    self._keyed = None  # the next registration tries again
                self.report("lke-lost", {"router": str(action.router), "why": action.why})
            elif isinstance(action, lke.PreviousBound):
                self._bound(action)
            elif isinstance(action, lke.PreviousRefused):
                self.report("lke-refused", {"router": str(action.router),
                                            "previous": str(action.previous),
                                            "status": action.status})
        self._schedule()

    def _bound(self, action: lke.PreviousBound) -> None:
        router = self.ar_addresses.get(action.router, action.router)
        if action.lifetime == 0:
            self._release(action.previous)
        else:
            try:
                self.device.hold(action.previous)
            except TunnelError as error:
                log.warning("cannot hold the previous care-of address %s: %s",
                            action.previous, error)
                return
            self.forwarding[action.previous] = (router, action.care_of,
                                                self.reactor.seconds() + action.lifetime)
        self.report("lke-bound", {"ar": str(router), "previous": str(action.previous),
                                  "care-of": str(action.care_of),
                                  "lifetime": action.lifetime})

    def _release(self, previous: IPv6Address) -> None:
        if self.forwarding.pop(previous, None) is not None:
            self.device.release(previous)

    def _send(self, action, next_header: int) -> None:
        interface = 0
        if action.destination.is_link_local or action.destination.is_multicast:
            interface = self._interface_for(action)
        if not rawip.send_packet(self.sockets["sender"], action.source, action.destination,
                                 next_header, action.data, interface):
            self.send_failures += 1

    def _interface_for(self, action) -> int:
        """The link a link-scope packet leaves by: the AR's (a KE Request), or the one
        holding its source address (the DAD answer, from the care-of address)."""
        if action.destination in self.routers:
            return self.routers[action.destination]
        link = interface_holding(action.source)
        return link.index if link is not None else 0

    def _schedule(self) -> None:
        self._timer = rearm(self.reactor, self._timer, self.core.timer(), self._timer_fired)


def open_for(reactor, device_name: str, report: Callable[[str, dict], None]) -> LocalKeyExchange:
    """``mip6-mn --lke``: the core, its sockets and the device; PrivilegeError (exit 2)
    without root."""
    from aaa_mip6.lke.mn import MnCore, MnPolicy

    core = MnCore(MnPolicy(link_layer_address=link_layer_address_of))
    return LocalKeyExchange.open(reactor, core, device_name, report)


def link_layer_address_of(address: IPv6Address) -> bytes | None:
    """The MAC of the interface holding ``address``: the Target Link-Layer Address the MN's
    DAD answers carry (each link its own, as the MN's kernel answers with it)."""
    link = interface_holding(address)
    return link.link_layer_address or None if link is not None else None


def interface_holding(address: IPv6Address) -> rawip.Interface | None:
    """The interface that has ``address`` (global or link-local), or None."""
    for _, name in socket.if_nameindex():
        try:
            link = rawip.interface(name)
        except ConfigError:
            continue  # it went away meanwhile
        if address in link.addresses or address == link.link_local:
            return link
    return None
