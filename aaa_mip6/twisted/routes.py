"""What the kernel's routing table says, for the shells that pick a local address."""

from __future__ import annotations

import ipaddress
import socket


def source_address_towards(remote: ipaddress.IPv4Address | ipaddress.IPv6Address,
                           port: int = 9) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The local address the kernel would send to ``remote`` from (its route's source).

    A connected UDP socket sends nothing. An IPv6 scope (``%eth0``) is dropped. OSError
    when there is no route (or no socket of that family).
    """
    family = socket.AF_INET6 if remote.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((str(remote), port))
        return ipaddress.ip_address(probe.getsockname()[0].split("%")[0])
