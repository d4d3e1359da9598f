"""The AR's temporary-home-agent data plane: packets to a previous care-of address go to
the MN's new one, IPv6-in-IPv6 (RFC 2473), and the MN's reverse-tunneled packets go on.

A binding (previous CoA -> new CoA, until a time) is a host route for the previous CoA
into a TUN device: the kernel hands the daemon every packet sent to that address, and
the daemon sends it, whole, as the payload of an IPv6 packet (next header 41) from the
AR's address to the new CoA over a raw socket. Packets arriving the other way (next
header 41 from a bound new CoA, inner source the previous CoA bound to it) are written
into the TUN device, so the kernel forwards them like any packet it routes. Anything
else arriving on the raw socket is counted and dropped.

Why a TUN device and a raw socket rather than an ip6tnl device per binding: they need
no kernel module beyond TUN, and one device and one socket serve every binding.
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from aaa_mip6.twisted import rawip
from aaa_mip6.twisted.tun import SilentTunDevice, TunnelError, run_ip

IPV6_HEADER = 40
TUNNEL_MTU = 1400  # the inner packet plus the outer IPv6 header fit a 1500-octet link


@dataclass(slots=True)
class Forwarding:
    """One temporary home agent binding: what is sent to ``previous`` goes to ``current``."""

    previous: IPv6Address
    current: IPv6Address
    expires_at: float


def inner_addresses(packet: bytes) -> tuple[IPv6Address, IPv6Address] | None:
    """(source, destination) of an IPv6 packet, or None if it is not one."""
    if len(packet) < IPV6_HEADER or packet[0] >> 4 != 6:
        return None
    return IPv6Address(packet[8:24]), IPv6Address(packet[24:40])


class TunnelDevice(SilentTunDevice):
    """The TUN device the AR routes previous care-of addresses into."""

    @classmethod
    def open(cls, name: str) -> TunnelDevice:
        return cls.create(name, TUNNEL_MTU)

    def route(self, previous: IPv6Address) -> None:
        run_ip("-6", "route", "replace", str(IPv6Network(previous)), "dev", self.name)

    def unroute(self, previous: IPv6Address) -> None:
        try:
            run_ip("-6", "route", "del", str(IPv6Network(previous)), "dev", self.name)
        except TunnelError:
            pass  # already gone (the device was recreated): nothing to undo


class Forwarder:
    """Bindings, the TUN device and the IPv6-in-IPv6 socket; counters by outcome."""

    def __init__(self, device, tunnel_socket: socket.socket, local: IPv6Address):
        self.device = device
        self.socket = tunnel_socket
        self.local = local
        self.by_previous: dict[IPv6Address, Forwarding] = {}
        self.counters: Counter[str] = Counter()

    def bind(self, previous: IPv6Address, current: IPv6Address, expires_at: float) -> None:
        if previous not in self.by_previous:
            self.device.route(previous)
        self.by_previous[previous] = Forwarding(previous, current, expires_at)

    def unbind(self, previous: IPv6Address) -> None:
        if self.by_previous.pop(previous, None) is not None:
            self.device.unroute(previous)

    def expire(self, now: float) -> list[IPv6Address]:
        """Remove the bindings whose lifetime is over; their previous CoAs."""
        over = [previous for previous, binding in self.by_previous.items()
                if binding.expires_at <= now]
        for previous in over:
            self.unbind(previous)
        return over

    def from_device(self, packet: bytes) -> None:
        """A packet the kernel routed to a previous CoA: tunnel it to the new one."""
        addresses = inner_addresses(packet)
        if addresses is not None and addresses[1].is_multicast:
            return  # the kernel's own (MLD on the device coming up), not routed to us
        binding = self.by_previous.get(addresses[1]) if addresses else None
        if binding is None:
            self.counters["no-binding"] += 1
            return
        if rawip.send(self.socket, packet, binding.current, source=self.local):
            self.counters["forwarded"] += 1
        else:
            self.counters["send-failed"] += 1

    def from_tunnel(self, received: rawip.Received) -> None:
        """An IPv6-in-IPv6 packet to the AR: a bound MN's reverse-tunneled packet goes on."""
        addresses = inner_addresses(received.data)
        if addresses is None:
            self.counters["reverse-malformed"] += 1
            return
        binding = self.by_previous.get(addresses[0])
        if binding is None or binding.current != received.source:
            self.counters["reverse-unbound"] += 1
            return
        if self.device.write(received.data):
            self.counters["reverse-forwarded"] += 1
        else:
            self.counters["reverse-dropped"] += 1
