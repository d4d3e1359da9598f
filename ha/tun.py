"""The HA's home-network side: a Linux TUN device (root), no packet-information header.

Packets the MNs tunnel to the HA are written into it, so the kernel forwards them on
the home network; packets the kernel routes into it (the operator routes the home
prefixes, or single home addresses, to the device) are read in batches
(:meth:`aaa_mip6.twisted.tun.TunDevice.read_batch`) and tunneled to the MNs.
"""

from __future__ import annotations

from collections.abc import Iterable

from aaa_mip6.twisted.tun import Network, TunDevice, route_into


class HomeNetworkTun(TunDevice):
    """An up TUN device whose routed packets the HA reads and into which it writes."""

    @classmethod
    def open(cls, name: str, routes: Iterable[Network] = (), mtu: int = 1500) -> HomeNetworkTun:
        """Create ``name``, bring it up and route ``routes`` (home prefixes) into it."""
        return cls.create(name, list(routes), mtu)

    def _configure(self, routes, mtu) -> None:
        super()._configure(mtu)
        for network in routes:
            route_into(self.name, network)
