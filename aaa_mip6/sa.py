"""The MN-HA security association and bootstrap data (RFC 6618 §4.3, §5.6, §5.7).

These are the values the HAC provisions, the store keeps and the HA and MN use.
Keys never appear in ``repr``: a logged SA shows its SPI, suite and scope only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime

from .iana import MIPV6TLS_PORT

SPI_MIN = 1
SPI_MAX = 268_435_455  # 28 bits (RFC 6618 §5.6.1)

SCOPE_SIGNALING = 0  # mip6-sas 0: Binding Update/Ack only
SCOPE_ALL = 1  # mip6-sas 1: signaling and user data

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class SecurityAssociation:
    """One SA, used in both directions under one SPI."""

    spi: int
    suite: str  # a name of aaa_mip6.suites.SUITES, e.g. "AES_128_CBC_SHA"
    mn_to_ha_ikey: bytes = field(repr=False)
    ha_to_mn_ikey: bytes = field(repr=False)
    mn_to_ha_ekey: bytes = field(repr=False)
    ha_to_mn_ekey: bytes = field(repr=False)
    validity_end: datetime  # timezone-aware UTC, whole seconds (rfc1123-date)
    scope: int  # SCOPE_SIGNALING or SCOPE_ALL
    mn_id: str
    home_address6: ipaddress.IPv6Address | None = None
    home_address4: ipaddress.IPv4Address | None = None
    revoked: bool = False

    def replace(self, **changes) -> SecurityAssociation:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class HomeAgent:
    """One HA as the MN is told about it: its addresses and UDP port."""

    address6: ipaddress.IPv6Address | None
    address4: ipaddress.IPv4Address | None
    port: int = MIPV6TLS_PORT


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """Mobile IPv6 bootstrapping parameters of RFC 6618 §5.7."""

    home_agent: HomeAgent
    home_address6: ipaddress.IPv6Address | None = None
    home_address4: ipaddress.IPv4Address | None = None
    home_prefix6: ipaddress.IPv6Network | None = None
    home_prefix4: ipaddress.IPv4Network | None = None
    dns6: ipaddress.IPv6Address | None = None
    dns4: ipaddress.IPv4Address | None = None
