"""The HA's configuration: a TOML file (``--config``) and command-line flags over it.

Every setting has a key (flat, lower case with underscores, ``max_lifetime``; the
``[diameter]`` table and ``log.level`` as the other programs write them), one parser
and a default, on the schema every program shares (:mod:`aaa_mip6.settings`); flags
override the file, and every problem is a :class:`ConfigError` naming the key and its
flag. Until December 2026 the keys were hyphenated (``max-lifetime``); those names are
still read, with a warning naming the new key. docs/configuration.md (section HA)
documents each key; etc/ha.toml is a commented sample.

:class:`HaSettings` is what the file and the flags say; :class:`HaConfig`, what the HA
runs with (defaults filled in from each other, the policy built).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aaa_mip6 import settings as parsers
from aaa_mip6.diameter.sa_app import NodeSettings, node_settings
from aaa_mip6.errors import ConfigError
from aaa_mip6.iana import MIPV6TLS_PORT
from aaa_mip6.replay import MAX_WINDOW, MIN_WINDOW, SEQ_LIMIT
from aaa_mip6.settings import Schema, setting
from aaa_mip6.twisted.tun import IFNAMSIZ

from .core import HaPolicy

DEFAULT_LISTEN = "[::]:7872"


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings")
    return value


def _listen(value: Any) -> tuple[tuple[str, int], ...]:
    """``[v6]:port``, ``v4:port``, ``[v6]`` or ``v4`` each; port 7872 if none."""
    return tuple(parsers.host_port(text, MIPV6TLS_PORT) for text in _strings(value))


def _routes(value: Any) -> tuple:
    routes = []
    for text in _strings(value):
        try:
            routes.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP prefix") from None
    return tuple(routes)


def _tun(value: Any) -> str:
    name = parsers.string(value)
    if not 0 < len(name.encode()) < IFNAMSIZ:
        raise ValueError(f"the interface name {name!r} must have 1..{IFNAMSIZ - 1} octets")
    return name


def _diameter(table: Any) -> NodeSettings:
    return node_settings(table, "diameter")  # ConfigError naming diameter.KEY


@dataclass(frozen=True)
class HaSettings:
    """Every HA setting as given (None: not given, the default applies)."""

    listen: tuple = setting("listen", _listen, (parsers.host_port(DEFAULT_LISTEN),),
                            flag="--listen")
    store: str | None = setting("store", parsers.string, None, flag="--store",
                                secret=True)  # a PostgreSQL URL may carry a password
    home_agent: ipaddress.IPv4Address | ipaddress.IPv6Address | None = setting(
        "home_agent", parsers.ip, None, flag="--home-agent")
    tun: str | None = setting("tun", _tun, None, flag="--tun")
    tun_routes: tuple = setting("tun_route", _routes, (), flag="--tun-route")
    state: Path | None = setting("state", parsers.path, None, flag="--state")
    status_file: str | None = setting("status_file", parsers.string, None,
                                      flag="--status-file")
    log_level: str = setting("log.level", parsers.log_level, "info", flag="--log-level")
    log_format: str = setting("log.format", parsers.log_format, "text", flag="--log-format")
    metrics: tuple[str, int] | None = setting("metrics.listen", parsers.host_port, None,
                                              flag="--metrics")
    diameter: NodeSettings | None = setting("diameter", _diameter, None)
    control_socket: Path | None = setting("control.socket", parsers.control_socket, None,
                                          flag="--control")
    sa_refresh: float = setting("sa_refresh", parsers.seconds(0.1), 30.0)
    stats_interval: float = setting("stats_interval", parsers.seconds(0.1), 60.0)
    ledger_purge_interval: float = setting("ledger_purge_interval",
                                           parsers.seconds(1, 86_400 * 7), 3600.0)
    # HaPolicy's (None: its default)
    max_lifetime: int | None = setting("max_lifetime", parsers.integer(4, 262_140), None,
                                       flag="--max-lifetime")
    reinit_margin: float | None = setting("reinit_margin", parsers.seconds(0, 86_400 * 365),
                                          None, flag="--reinit-margin")
    sequence_margin: int | None = setting("sequence_margin",
                                          parsers.integer(0, SEQ_LIMIT - 1), None)
    replay_window: int | None = setting("replay_window",
                                        parsers.integer(MIN_WINDOW, MAX_WINDOW), None)
    sequence_block: int | None = setting("sequence_block", parsers.integer(1, 1 << 24), None)
    max_pending_lookups: int | None = setting("max_pending_lookups",
                                              parsers.integer(1, 1 << 20), None)
    lookup_timeout: float | None = setting("lookup_timeout", parsers.seconds(0.1, 3600), None)
    lookup_rate: float | None = setting("lookup_rate", parsers.number(0.01, 1e6), None)
    lookup_burst: int | None = setting("lookup_burst", parsers.integer(1, 1 << 20), None)
    lookup_sources: int | None = setting("lookup_sources", parsers.integer(1, 1 << 24), None)
    negative_cache_ttl: float | None = setting("negative_cache_ttl",
                                               parsers.seconds(0, 3600), None)
    negative_cache_size: int | None = setting("negative_cache_size",
                                              parsers.integer(1, 1 << 24), None)


_POLICY_SETTINGS = ("max_lifetime", "reinit_margin", "sequence_margin", "replay_window",
                    "sequence_block", "max_pending_lookups", "lookup_timeout", "lookup_rate",
                    "lookup_burst", "lookup_sources", "negative_cache_ttl",
                    "negative_cache_size")
_RENAMED = {key.replace("_", "-"): key for key in (
    "home_agent", "tun_route", "status_file", "sa_refresh", "stats_interval",
    "ledger_purge_interval", *_POLICY_SETTINGS)}
_RENAMED["log-level"] = "log.level"
SCHEMA = Schema(HaSettings, renamed=_RENAMED)
SETTINGS = SCHEMA.settings
named = SCHEMA.named


@dataclass(frozen=True)
class HaConfig:
    """Validated HA settings; defaults as in docs/configuration.md (section HA)."""

    listen: tuple[tuple[str, int], ...]
    store: str | None = field(repr=False)  # a PostgreSQL URL may carry a password
    state: Path
    policy: HaPolicy
    tun: str | None = None
    tun_routes: tuple = ()
    sa_refresh: float = 30.0
    stats_interval: float = 60.0
    ledger_purge_interval: float = 3600.0
    status_file: str | None = None
    log_level: str = "info"
    log_format: str = "text"
    diameter: NodeSettings | None = None  # SAs over Diameter instead of from the store
    control_socket: Path | None = None  # mip6-ha bindings, sas, stats, flush
    metrics: tuple[str, int] | None = None  # Prometheus metrics over HTTP here


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` store URL, as the store opens it."""
    return Path("/" + unquote(urlsplit(url).path).lstrip("/"))


def load_config(path: Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> HaConfig:
    """The file's settings with ``overrides`` (key -> flag value) on top, validated;
    ConfigError names the offending key."""
    return resolve(SCHEMA.load(path, overrides))


def resolve(given: HaSettings) -> HaConfig:
    """What the HA runs with: the settings given, with the defaults that depend on
    other settings (``home_agent``, ``state``) and the policy."""
    if (given.store is None) == (given.diameter is None):
        raise ConfigError(f"{named('store')}: required (the HAC's store URL, e.g. "
                          "sqlite:///var/lib/mip6/sa.db) unless SAs come over Diameter "
                          "([diameter]), and not both")
    home_agent = given.home_agent
    if home_agent is None:
        specific = [host for host, _ in given.listen
                    if not ipaddress.ip_address(host).is_unspecified]
        if not specific:
            raise ConfigError(f"{named('home_agent')}: required when listening on a wildcard "
                              "address (the address the MNs were given for this HA)")
        home_agent = ipaddress.ip_address(specific[0])
    state = given.state
    if state is None:
        if urlsplit(given.store or "").scheme != "sqlite":
            raise ConfigError(f"{named('state')}: required unless the store is a SQLite file")
        state = Path(f"{sqlite_path(given.store)}.ha-state")
    try:
        policy = HaPolicy(home_agent=home_agent, forwarding=given.tun is not None,
                          **{name: getattr(given, name) for name in _POLICY_SETTINGS
                             if getattr(given, name) is not None})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return HaConfig(given.listen, given.store, state, policy, given.tun, given.tun_routes,
                    sa_refresh=given.sa_refresh, stats_interval=given.stats_interval,
                    ledger_purge_interval=given.ledger_purge_interval,
                    status_file=given.status_file, log_level=given.log_level,
                    log_format=given.log_format,
                    diameter=given.diameter, control_socket=given.control_socket,
                    metrics=given.metrics)


def ineffective_settings(config: HaConfig) -> list[str]:
    """Settings given that do nothing with the others given, one warning text each."""
    notes = []
    if config.tun_routes and config.tun is None:
        notes.append(f"{named('tun_route')} has no effect without {named('tun')}: "
                     "nothing is routed or forwarded")
    return notes


def changed_keys(old: HaConfig, new: HaConfig) -> list[str]:
    """The keys whose value differs between two configurations (for a reload)."""
    changed = []
    for spec in fields(HaConfig):
        if getattr(old, spec.name) != getattr(new, spec.name):
            changed.append(_KEYS_OF_FIELD.get(spec.name, spec.name))
    return changed


_KEYS_OF_FIELD = {
    "policy": "home_agent, tun or a policy key (max_lifetime, reinit_margin, "
              "sequence_margin, replay_window, sequence_block, the lookup_* and "
              "negative_cache_* keys)",
    "tun_routes": "tun_route", "log_level": "log.level",
    "log_format": "log.format", "control_socket": "control.socket",
    "metrics": "metrics.listen"}
