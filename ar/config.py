"""``mip6-ar``'s settings: every flag and its TOML key (docs/configuration.md, section
mip6-ar)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aaa_mip6 import settings as parsers
from aaa_mip6.settings import Schema, setting

DEFAULT_MAX_LIFETIME = 7200  # seconds, the draft's §4.1 recommendation
CODE_POINTS = ("experimental", "draft")


def _ipv6(value: Any) -> ipaddress.IPv6Address:
    address = parsers.ip(value)
    if address.version != 6 or address.is_link_local or address.is_multicast:
        raise ValueError("expected a global (or unique local) IPv6 address of this router")
    return address


def _prefix(value: Any) -> ipaddress.IPv6Network | None:
    if value in (None, ""):
        return None
    try:
        network = ipaddress.IPv6Network(parsers.string(value))
    except ValueError:
        raise ValueError("expected the link's IPv6 prefix, as 2001:db8:a::/64") from None
    if network.prefixlen != 64:
        raise ValueError("the advertised on-link prefix must be a /64")
    return network


def _interface(value: Any) -> str:
    name = parsers.string(value)
    if not 0 < len(name.encode()) < 16 or "/" in name or name.strip() != name:
        raise ValueError("expected a network interface name (1..15 octets)")
    return name


@dataclass(frozen=True)
class ArConfig:
    """Which link the AR serves, its key, where its LBSAs live and how it advertises."""

    interface: str = setting("ar.interface", _interface, flag="--interface")
    address: ipaddress.IPv6Address = setting("ar.address", _ipv6, flag="--address")
    key: Path = setting("ar.key", parsers.path, flag="--key")
    state: Path = setting("ar.state", parsers.path, flag="--state")
    prefix: ipaddress.IPv6Network | None = setting("ar.prefix", _prefix, None, flag="--prefix")
    generate_key: bool = setting("ar.generate_key", parsers.boolean, False,
                                 flag="--generate-key")
    max_lbsas: int = setting("ar.max_lbsas", parsers.integer(1, 1_000_000), 4096,
                             flag="--max-lbsas")
    max_lifetime: float = setting("ar.max_lifetime", parsers.seconds(4, 65535),
                                  DEFAULT_MAX_LIFETIME, flag="--max-lifetime")
    ra_interval: float = setting("ar.ra_interval", parsers.seconds(0.05, 1800), 3.0,
                                 flag="--ra-interval")
    tun: str = setting("ar.tun", _interface, "mip6ar0", flag="--tun")
    request_finished: bool = setting("ar.request_finished", parsers.boolean, False,
                                     flag="--request-finished")
    code_points: str = setting("ar.code_points", parsers.choice(CODE_POINTS), "experimental",
                               flag="--code-points")
    status_file: Path | None = setting("ar.status_file", parsers.optional_path, None,
                                       flag="--status-file")
    log_level: str = setting("log.level", parsers.log_level, "info", flag="--log-level")
    log_format: str = setting("log.format", parsers.log_format, "text", flag="--log-format")


SCHEMA = Schema(ArConfig)
