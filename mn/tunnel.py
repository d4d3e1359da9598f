"""The MN's end of the tunnel: a Linux TUN interface holding the home address (root).

Ordinary programs send from the home address through routes that point into the
TUN interface; :class:`mn.session.MobileSession` reads those packets, has them
encapsulated to the HA, and writes the packets the HA tunnels back into the
interface. The interface exists as long as its file descriptor is open, so its
addresses and routes vanish with it; only a host route pinned for the HA (when a
route through the tunnel would otherwise cover the HA itself) is removed by hand.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
from collections.abc import Iterable
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_network

from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import IPAddress

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
DEFAULT_MTU = 1400  # leaves room for outer IPv6 + UDP + RFC 6618 header, IV, padding and ICV
MAX_PACKET = 65535

Network = IPv4Network | IPv6Network


class TunnelError(Exception):
    """The TUN interface could not be created or configured (the message says which step)."""


def parse_route(text: str) -> list[Network]:
    """``PREFIX`` or ``default`` (both families) as networks, for ``--route``."""
    if text == "default":
        return [IPv6Network("::/0"), IPv4Network("0.0.0.0/0")]
    try:
        return [ip_network(text, strict=False)]
    except ValueError:
        raise ConfigError(f"--route {text!r}: expected an IP prefix or 'default'") from None


def _ip(*arguments: str) -> str:
    """Run one ``ip`` command; its stdout, or TunnelError with its stderr."""
    try:
        done = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
    except OSError as error:
        raise TunnelError(f"cannot run ip: {error}") from None
    if done.returncode:
        raise TunnelError(f"ip {' '.join(arguments)}: {done.stderr.strip()}")
    return done.stdout


def open_tun(name: str) -> tuple[int, str]:
    """Create a TUN interface (no packet information header); (non-blocking fd, name)."""
    if not 0 < len(name.encode()) < IFNAMSIZ:
        raise ConfigError(f"interface name {name!r} must have 1..{IFNAMSIZ - 1} octets")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise TunnelError(f"cannot open /dev/net/tun: {error.strerror} (root needed)") from None
    try:
        request = struct.pack(f"{IFNAMSIZ}sH", name.encode(), IFF_TUN | IFF_NO_PI)
        answer = fcntl.ioctl(fd, TUNSETIFF, request)
    except OSError as error:
        os.close(fd)
        raise TunnelError(f"cannot create TUN interface {name}: {error.strerror}") from None
    return fd, answer[:IFNAMSIZ].rstrip(b"\0").decode()


class Tunnel:
    """An up TUN interface with the MN's home addresses and routes through it."""

    def __init__(self, fd: int, name: str):
        self._fd = fd
        self.name = name
        self._pinned: list[str] = []

    def __repr__(self) -> str:
        return f"Tunnel({self.name})"

    @classmethod
    def open(
        cls,
        name: str,
        addresses: Iterable[IPv4Interface | IPv6Interface],
        routes: Iterable[Network] = (),
        *,
        keep_reachable: Iterable[IPAddress] = (),
        mtu: int = DEFAULT_MTU,
    ) -> Tunnel:
        """Create ``name``, give it ``addresses``, route ``routes`` into it from the home
        address of their family, and keep each of ``keep_reachable`` (the HA) on the
        route it has now when a tunnel route would cover it."""
        tunnel = cls(*open_tun(name))
        try:
            tunnel._configure(list(addresses), list(routes), list(keep_reachable), mtu)
        except BaseException:
            tunnel.close()
            raise
        return tunnel

    def _configure(self, addresses, routes, keep_reachable, mtu) -> None:
        _ip("link", "set", "dev", self.name, "addrgenmode", "none")  # no link-local chatter
        _ip("link", "set", "dev", self.name, "mtu", str(mtu), "up")
        sources = {}
        for interface in addresses:
            extra = ("nodad",) if interface.version == 6 else ()
            _ip("address", "add", str(interface), "dev", self.name, *extra)
            sources.setdefault(interface.version, interface.ip)
        for address in keep_reachable:
            if any(address.version == net.version and address in net for net in routes):
                self._pin(address)
        for network in routes:
            source = sources.get(network.version)
            if source is None:
                raise TunnelError(f"route {network}: no home address of that IP version")
            family = "-6" if network.version == 6 else "-4"
            _ip(family, "route", "replace", str(network), "dev", self.name, "src", str(source))

    def _pin(self, address: IPAddress) -> None:
        """A host route for ``address`` over the path the kernel uses for it now."""
        [now] = json.loads(_ip("-j", "route", "get", str(address)))
        host = f"{address}/{address.max_prefixlen}"
        via = ("via", now["gateway"]) if "gateway" in now else ()
        _ip("route", "replace", host, *via, "dev", now["dev"])
        self._pinned.append(host)

    def fileno(self) -> int:
        return self._fd

    def read(self) -> bytes:
        """One packet the kernel routed into the interface (OSError EAGAIN when none)."""
        return os.read(self._fd, MAX_PACKET)

    def write(self, packet: bytes) -> None:
        """Hand one packet that came through the tunnel to the kernel."""
        try:
            os.write(self._fd, packet)
        except BlockingIOError:
            pass  # the kernel's queue is full: drop, as a link would

    def close(self) -> None:
        """Remove the pinned routes and the interface (with its addresses and routes)."""
        for host in self._pinned:
            try:
                _ip("route", "del", host)
            except TunnelError:
                pass  # the interface under it went away already
        self._pinned = []
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
