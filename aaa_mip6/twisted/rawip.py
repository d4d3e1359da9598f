"""Raw IPv6 sockets for the Local Key Exchange shells (root): ICMPv6 (Router Advertisements,
Neighbor Solicitations and Advertisements), the Mobility Header (IPPROTO_MH, 135) and
IPv6-in-IPv6 (41, RFC 2473) for the AR's tunnel to a previous care-of address.

Every packet received carries what the LKE rules look at besides its bytes: source,
destination, hop limit and interface (IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT). Every packet
sent goes out with hop limit 255 (draft-liu-mobileip-lke-01 §2.1 and RFC 4861 require it
for link-local messages) through one IPPROTO_RAW socket, whose packets carry the IPv6
header the shell writes: only so can a DAD probe leave from the unspecified address
(RFC 4862 §5.4.2), and the bytes sent are exactly those the core encoded, checksums
included. On receipt the kernel has checked the ICMPv6 checksum and, for IPPROTO_MH
sockets, the Mobility Header checksum (offset 4).

Why IPv6-in-IPv6 over a raw socket and not an ip6tnl device: a kernel without the ip6_tunnel
module (containers, minimal kernels) still has raw sockets, and one socket serves every
binding, where ip6tnl needs a device per (local, remote) pair.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

from aaa_mip6.errors import ConfigError

LINK_HOP_LIMIT = 255
MAX_PACKET = 65535
ICMP6_FILTER = 1  # <netinet/icmp6.h>: SOL_ICMPV6 option
READ_BATCH = 64


class PrivilegeError(ConfigError):
    """The program lacks CAP_NET_RAW (raw sockets) or CAP_NET_ADMIN (TUN, routes)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One packet from a raw socket: its payload (after the IPv6 header) and envelope."""

    data: bytes
    source: IPv6Address
    destination: IPv6Address
    hop_limit: int
    interface: int


def open_raw(protocol: int, interface: str | None = None, *,
             icmp_types: tuple[int, ...] | None = None) -> socket.socket:
    """A non-blocking raw IPv6 socket for ``protocol`` (on ``interface`` only, if given).

    ``icmp_types``: for ICMPv6, the message types to receive (the kernel filters the rest).
    PrivilegeError naming the capability when the process may not open it.
    """
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, protocol)
    except PermissionError:
        raise PrivilegeError(f"a raw IPv6 socket (protocol {protocol}) needs CAP_NET_RAW: "
                             f"run as root or grant the capability") from None
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, LINK_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, LINK_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        if interface is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        if icmp_types is not None:
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp_filter(icmp_types))
    except OSError as error:
        sock.close()
        if error.errno == errno.ENODEV:
            raise ConfigError(f"interface {interface}: no such interface") from None
        raise
    return sock


def open_sender() -> socket.socket:
    """The socket every LKE packet leaves by: the caller writes the IPv6 header (IPPROTO_RAW);
    its own multicasts are not looped back to this host's raw sockets."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        raise PrivilegeError("a raw IPv6 socket needs CAP_NET_RAW: run as root or grant the "
                             "capability") from None
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    return sock


def ipv6_packet(source: IPv6Address, destination: IPv6Address, next_header: int,
                payload: bytes, hop_limit: int = LINK_HOP_LIMIT) -> bytes:
    """``payload`` behind a fixed IPv6 header (RFC 8200 §3; traffic class and flow label 0)."""
    return (struct.pack("!IHBB", 6 << 28, len(payload), next_header, hop_limit)
            + source.packed + destination.packed + payload)


def send_packet(sock: socket.socket, source: IPv6Address, destination: IPv6Address,
                next_header: int, payload: bytes, interface: int = 0) -> bool:
    """Send ``payload`` (an ICMPv6 message or a Mobility Header, checksum filled in) from
    ``source`` (may be ``::``) to ``destination``, hop limit 255, over :func:`open_sender`'s
    socket; a link-local or multicast destination leaves by ``interface``. False when the
    kernel refuses it (no route while moving, say): the caller counts it."""
    scope = interface if (destination.is_link_local or destination.is_multicast) else 0
    packet = ipv6_packet(source, destination, next_header, payload)
    try:
        sock.sendto(packet, (str(destination), 0, 0, scope))
    except OSError:
        return False
    return True


def icmp_filter(passed: tuple[int, ...]) -> bytes:
    """An ICMP6_FILTER value that blocks every type but ``passed`` (a set bit blocks)."""
    words = [0xFFFFFFFF] * 8
    for kind in passed:
        words[kind >> 5] &= ~(1 << (kind & 31))
    return struct.pack("8I", *words)


def join_group(sock: socket.socket, group: IPv6Address, interface: int) -> None:
    """Receive ``group`` (a solicited-node or all-routers address) on ``interface``."""
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                        group.packed + struct.pack("@I", interface))
    except OSError as error:
        if error.errno != errno.EADDRINUSE:  # joined already: nothing to do
            raise


def leave_group(sock: socket.socket, group: IPv6Address, interface: int) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP,
                        group.packed + struct.pack("@I", interface))
    except OSError:
        pass  # not joined (or the interface went away): nothing to leave


def receive(sock: socket.socket) -> Received | None:
    """The next waiting packet, or None when there is none."""
    try:
        data, ancillary, _, address = sock.recvmsg(MAX_PACKET, 256)
    except (BlockingIOError, InterruptedError):
        return None
    destination, interface, hop_limit = IPv6Address(0), 0, 0
    for level, kind, value in ancillary:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == socket.IPV6_PKTINFO:
            destination = IPv6Address(value[:16])
            interface = struct.unpack("@I", value[16:20])[0]
        elif kind == socket.IPV6_HOPLIMIT:
            hop_limit = struct.unpack("@i", value[:4])[0]
    source = IPv6Address(address[0].split("%")[0])
    return Received(data, source, destination, hop_limit, interface)


def send(sock: socket.socket, data: bytes, destination: IPv6Address, *,
         source: IPv6Address | None = None, interface: int = 0) -> bool:
    """Send ``data`` to ``destination`` (link-local or multicast: on ``interface``), from
    ``source`` if given; False (counted by the caller) when the kernel refuses it."""
    ancillary = []
    if source is not None or interface:
        info = (source or IPv6Address(0)).packed + struct.pack("@I", interface)
        ancillary.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info))
    scope = interface if (destination.is_link_local or destination.is_multicast) else 0
    try:
        sock.sendmsg([data], ancillary, 0, (str(destination), 0, 0, scope))
    except OSError:
        return False
    return True


def interface_index(name: str) -> int:
    """The index of interface ``name``; ConfigError when there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise ConfigError(f"interface {name}: no such interface") from None


@implementer(IReadDescriptor)
class SocketReader:
    """Lets a reactor read a raw socket: every waiting packet (up to READ_BATCH a wake-up)
    goes to ``receive`` as a :class:`Received`."""

    def __init__(self, sock: socket.socket, deliver: Callable[[Received], object], name: str):
        self.sock = sock
        self.deliver = deliver
        self.name = name

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:  # noqa: N802 (Twisted API)
        return self.name

    def doRead(self) -> None:  # noqa: N802 (Twisted API)
        for _ in range(READ_BATCH):
            packet = receive(self.sock)
            if packet is None:
                return
            self.deliver(packet)

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted API)
        """Nothing to do: the socket's owner closes it."""


@dataclass(frozen=True, slots=True)
class Interface:
    """What the LKE shells need to know of one network interface."""

    name: str
    index: int
    link_layer_address: bytes
    link_local: IPv6Address | None
    addresses: tuple[IPv6Address, ...]


def interface(name: str) -> Interface:
    """``name``'s index, MAC, link-local and other IPv6 addresses (from ``ip -j``);
    ConfigError when there is no such interface."""
    index = interface_index(name)
    try:
        links = json.loads(subprocess.run(["ip", "-j", "link", "show", "dev", name],
                                          capture_output=True, text=True, check=True).stdout)
        addresses = json.loads(subprocess.run(["ip", "-j", "-6", "address", "show", "dev", name],
                                              capture_output=True, text=True,
                                              check=True).stdout)
    except (OSError, subprocess.CalledProcessError, ValueError) as error:
        raise ConfigError(f"interface {name}: cannot read its addresses ({error})") from None
    mac = bytes.fromhex(links[0].get("address", "").replace(":", "")) if links else b""
    found = [IPv6Address(entry["local"]) for link in addresses
             for entry in link.get("addr_info", ()) if entry.get("family") == "inet6"]
    link_local = next((address for address in found if address.is_link_local), None)
    return Interface(name, index, mac, link_local,
                     tuple(address for address in found if not address.is_link_local))
