"""``mip6-aaa-gw``'s settings: every flag and its TOML key, validated (docs/configuration.md,
section mip6-aaa-gw)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aaa_mip6 import settings as parsers
from aaa_mip6.errors import ConfigError
from aaa_mip6.settings import Schema, setting

DEFAULT_LISTEN_HOST = "127.0.0.1"
MIN_WATCHDOG = 6.0  # RFC 3539's smallest Tw


# --- value parsers: raw TOML or flag value -> typed value, ValueError on a bad one -------


def _radius_servers(value: Any) -> tuple:
    """``ADDR``, ``ADDR:PORT`` or ``[IPV6]:PORT`` (port 1812), one or a list, in order."""
    from aaa_mip6.radius.servers import RadiusServer

    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not entries:
        raise ValueError("must be an address or a non-empty list of them")
    servers = []
    for entry in entries:
        try:
            servers.append(RadiusServer.parse(parsers.string(entry), b"the secret comes apart"))
        except ConfigError as error:
            raise ValueError(str(error)) from None
    return tuple(servers)


@dataclass(frozen=True)
class GatewayConfig:
    """Every gateway setting, validated; build it with :func:`load_config`."""

    origin_host: str = setting("diameter.origin_host", parsers.diameter_identity,
                               flag="--origin-host")
    origin_realm: str = setting("diameter.origin_realm", parsers.diameter_identity,
                                flag="--origin-realm")
    radius_servers: tuple = setting("radius.servers", _radius_servers, flag="--radius-server")
    radius_secret_file: Path = setting("radius.secret_file", parsers.path,
                                       flag="--radius-secret-file")
    listen: tuple[str, int] | None = setting("diameter.listen", parsers.host_port, None,
                                             flag="--listen")
    insecure_tcp: bool = setting("diameter.insecure_tcp", parsers.boolean, False,
                                 flag="--insecure-tcp")
    watchdog: float = setting("diameter.watchdog", parsers.seconds(MIN_WATCHDOG), 30.0,
                              flag="--watchdog")
    cert: Path | None = setting("tls.cert", parsers.path, None, flag="--cert")
    key: Path | None = setting("tls.key", parsers.path, None, flag="--key")
    peer_ca: Path | None = setting("tls.peer_ca", parsers.path, None, flag="--peer-ca")
    nas_identifier: str | None = setting("radius.nas_identifier", parsers.string, None,
                                         flag="--nas-identifier")
    nas_address: ipaddress.IPv4Address | ipaddress.IPv6Address = setting(
        "radius.nas_address", parsers.ip, ipaddress.ip_address(DEFAULT_LISTEN_HOST),
        flag="--nas-address")
    multi_round_timeout: float = setting("eap.multi_round_timeout", parsers.seconds(1.0), 60.0,
                                         flag="--multi-round-timeout")
    max_conversations: int = setting("eap.max_conversations", parsers.integer(1, 10_000_000),
                                     100_000, flag="--max-conversations")
    control_socket: Path | None = setting("control.socket", parsers.control_socket, None,
                                          flag="--control")
    log_level: str = setting("log.level", parsers.log_level, "info", flag="--log-level")
    log_format: str = setting("log.format", parsers.log_format, "text", flag="--log-format")
    metrics: tuple[str, int] | None = setting("metrics.listen", parsers.host_port, None,
                                              flag="--metrics")

    @property
    def listen_address(self) -> tuple[str, int]:
        """``diameter.listen``, or 127.0.0.1 on the transport's IANA port."""
        if self.listen is not None:
            return self.listen
        from aaa_mip6.iana import DIAMETER_TCP_PORT, DIAMETER_TLS_PORT

        return DEFAULT_LISTEN_HOST, DIAMETER_TCP_PORT if self.insecure_tcp else DIAMETER_TLS_PORT


SCHEMA = Schema(GatewayConfig)
SETTINGS = SCHEMA.settings
named = SCHEMA.named
read_toml = SCHEMA.read_toml


def load_config(path: Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> GatewayConfig:
    """Validate the file's settings with ``overrides`` (dotted key -> flag value) on top."""
    config = SCHEMA.load(path, overrides)
    if not config.insecure_tcp and not (config.cert and config.key and config.peer_ca):
        missing = next(key for key in ("tls.cert", "tls.key", "tls.peer_ca")
                       if getattr(config, SETTINGS[key].name) is None)
        raise ConfigError(f"{named(missing)} is required: TLS needs tls.cert, tls.key and "
                          f"tls.peer_ca, or {named('diameter.insecure_tcp')} for tests")
    return config
