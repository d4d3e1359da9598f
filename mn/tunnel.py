"""The MN's end of the tunnel: a Linux TUN interface holding the home address (root).

Ordinary programs send from the home address through routes that point into the
TUN interface; :class:`mn.session.MobileSession` reads those packets, has them
encapsulated to the HA, and writes the packets the HA tunnels back into the
interface. The interface exists as long as its file descriptor is open, so its
addresses and routes vanish with it; only a host route pinned for the HA (when a
route through the tunnel would otherwise cover the HA itself) is removed by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_network

from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import IPAddress
from aaa_mip6.twisted.tun import Network, SilentTunDevice, TunnelError, route_into, run_ip

__all__ = ["DEFAULT_MTU", "Tunnel", "TunnelError", "parse_route"]

DEFAULT_MTU = 1400  # leaves room for outer IPv6 + UDP + RFC 6618 header, IV, padding and ICV


def parse_route(text: str) -> list[Network]:
    """``PREFIX`` or ``default`` (both families) as networks, for ``--route``."""
    if text == "default":
        return [IPv6Network("::/0"), IPv4Network("0.0.0.0/0")]
    try:
        return [ip_network(text, strict=False)]
    except ValueError:
        raise ConfigError(f"--route {text!r}: expected an IP prefix or 'default'") from None


class Tunnel(SilentTunDevice):
    """An up TUN interface with the MN's home addresses and routes through it."""

    def __init__(self, fd: int, name: str):
        super().__init__(fd, name)
        self._pinned: list[str] = []

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
        return cls.create(name, list(addresses), list(routes), list(keep_reachable), mtu)

    def _configure(self, addresses, routes, keep_reachable, mtu) -> None:
        super()._configure(mtu)  # without a link-local address
        sources = {}
        for interface in addresses:
            extra = ("nodad",) if interface.version == 6 else ()
            run_ip("address", "add", str(interface), "dev", self.name, *extra)
            sources.setdefault(interface.version, interface.ip)
        for address in keep_reachable:
            if any(address.version == net.version and address in net for net in routes):
                self._pin(address)
        for network in routes:
            source = sources.get(network.version)
            if source is None:
                raise TunnelError(f"route {network}: no home address of that IP version")
            route_into(self.name, network, "src", str(source))

    def _pin(self, address: IPAddress) -> None:
        """A host route for ``address`` over the path the kernel uses for it now."""
        [now] = json.loads(run_ip("-j", "route", "get", str(address)))
        host = f"{address}/{address.max_prefixlen}"
        via = ("via", now["gateway"]) if "gateway" in now else ()
        run_ip("route", "replace", host, *via, "dev", now["dev"])
        self._pinned.append(host)

    def close(self) -> None:
        """Remove the pinned routes and the interface (with its addresses and routes)."""
        for host in self._pinned:
            try:
                run_ip("route", "del", host)
            except TunnelError:
                pass  # the interface under it went away already
        self._pinned = []
        super().close()
