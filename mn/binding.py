"""The binding the MN holds with its HA: state the mobility core keeps and its
:class:`~mn.actions.Registered` action reports."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from aaa_mip6.sa import IPAddress


@dataclass(frozen=True, slots=True)
class Binding:
    """The binding the HA acknowledged.

    ``home_address`` is the one in the Home Address option (IPv6, or IPv4-mapped
    for an IPv4-only MN); ``home_address4`` the IPv4 home address the HA
    acknowledged (None when none was asked for or it was refused, then
    ``ipv4_status`` says why). Times are POSIX seconds.
    """

    spi: int
    suite: str
    home_address: IPv6Address
    home_address4: IPv4Address | None
    care_of: IPAddress
    sequence: int
    status: int
    lifetime: int
    registered_at: float
    refresh_at: float
    expires_at: float
    ipv4_status: int | None = None
