"""``mip6-ha``: the home agent's data plane on UDP (RFC 6618 §6), SAs from the HAC's store.

Settings come from an optional TOML file (``--config``, flat keys as in
docs/configuration.md, section HA) with flags over it. A bad value stops the program
with a message naming the key.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aaa_mip6.addresses import parse_host_port
from aaa_mip6.diameter.sa_app import NodeSettings, node_settings
from aaa_mip6.errors import ConfigError
from aaa_mip6.replay import MAX_WINDOW, MIN_WINDOW, SEQ_LIMIT

from .core import HaPolicy

DEFAULT_PORT = 7872

EPILOG = """\
examples:
  mip6-ha --listen [2001:db8::1]:7872 --store sqlite:///var/lib/mip6/sa.db
  mip6-ha --listen [::]:7872 --home-agent 2001:db8::1 --store sqlite:///var/lib/mip6/sa.db \\
          --tun mip6home --tun-route 2001:db8:1::/64
  mip6-ha --config ha.toml   # SAs pushed by the HAC over Diameter: state and a [diameter] table

Without --store, SAs come over Diameter from the HAC's SA delivery application: the
[diameter] table of --config (no flags) and state are required (docs/diameter.md).

Counters are logged every stats-interval seconds and on SIGUSR1 (and written to
--status-file as JSON). Every key is documented in docs/configuration.md, section HA.
"""


def _host_port(key: str, text: str) -> tuple[str, int]:
    """``[v6]:port``, ``v4:port``, ``[v6]``, ``v4`` or a bare IPv6 address; default port 7872."""
    try:
        host, port = parse_host_port(text)
    except ValueError as error:
        raise ConfigError(f"{key} {text!r}: {error}") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{key} {text!r}: {host!r} is not an IP address") from None
    return host, DEFAULT_PORT if port is None else port


def _number(key: str, value: Any, low: float, high: float, integer: bool) -> float | int:
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"{key}: must be {'an integer' if integer else 'a number'}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{key}: {value} is outside {low}..{high}")
    return value


# key -> (low, high, integer); an absent key takes the default of HaPolicy or HaConfig
_NUMBERS = {
    "max-lifetime": (4, 262_140, True),
    "reinit-margin": (0, 86_400 * 365, False),
    "sequence-margin": (0, SEQ_LIMIT - 1, True),
    "replay-window": (MIN_WINDOW, MAX_WINDOW, True),
    "sequence-block": (1, 1 << 24, True),
    "sa-refresh": (0.1, 86_400, False),
    "stats-interval": (0.1, 86_400, False),
    "ledger-purge-interval": (1, 86_400 * 7, False),
    "max-pending-lookups": (1, 1 << 20, True),
    "lookup-timeout": (0.1, 3600, False),
    "lookup-rate": (0.01, 1e6, False),
    "lookup-burst": (1, 1 << 20, True),
    "lookup-sources": (1, 1 << 24, True),
    "negative-cache-ttl": (0, 3600, False),
    "negative-cache-size": (1, 1 << 24, True),
}
_POLICY_NUMBERS = ("max_lifetime", "reinit_margin", "sequence_margin", "replay_window",
                   "sequence_block", "max_pending_lookups", "lookup_timeout", "lookup_rate",
                   "lookup_burst", "lookup_sources", "negative_cache_ttl", "negative_cache_size")
_STRINGS = ("store", "home-agent", "tun", "state", "status-file", "log-level")
_LISTS = ("listen", "tun-route")
KEYS = frozenset(_NUMBERS) | frozenset(_STRINGS) | frozenset(_LISTS) | {"diameter"}


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
    diameter: NodeSettings | None = None  # SAs over Diameter instead of from the store


def load_config(values: dict[str, Any]) -> HaConfig:
    """Validate the merged file + flag values; ConfigError names the offending key."""
    unknown = set(values) - KEYS
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown setting")
    for key in _STRINGS:
        if key in values and (not isinstance(values[key], str) or not values[key]):
            raise ConfigError(f"{key}: must be a non-empty string")
    for key in _LISTS:
        if key in values and (not isinstance(values[key], list)
                              or not all(isinstance(v, str) for v in values[key])):
            raise ConfigError(f"{key}: must be a list of strings")
    numbers = {key.replace("-", "_"): _number(key, values[key], low, high, integer)
               for key, (low, high, integer) in _NUMBERS.items() if key in values}
    listen = tuple(_host_port("listen", text) for text in values.get("listen") or ["[::]:7872"])
    store = values.get("store")
    diameter = None if "diameter" not in values else node_settings(values["diameter"], "diameter")
    if (store is None) == (diameter is None):
        raise ConfigError("store: required (the HAC's store URL, e.g. sqlite:///var/lib/mip6/sa.db)"
                          " unless SAs come over Diameter ([diameter]), and not both")
    home_agent = values.get("home-agent")
    if home_agent is None:
        specific = [host for host, _ in listen if not ipaddress.ip_address(host).is_unspecified]
        if not specific:
            raise ConfigError("home-agent: required when listening on a wildcard address "
                              "(the address the MNs were given for this HA)")
        home_agent = specific[0]
    try:
        home_agent_address = ipaddress.ip_address(home_agent)
    except ValueError:
        raise ConfigError(f"home-agent: {home_agent!r} is not an IP address") from None
    state = values.get("state")
    if state is None:
        parts = urlsplit(store or "")
        if parts.scheme != "sqlite":
            raise ConfigError("state: required unless the store is a SQLite file")
        state = unquote(parts.path) + ".ha-state"
    routes = []
    for text in values.get("tun-route", []):
        try:
            routes.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(f"tun-route: {text!r} is not an IP prefix") from None
    level = values.get("log-level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log-level: must be debug, info, warning or error")
    tun = values.get("tun")
    try:
        policy = HaPolicy(
            home_agent=home_agent_address,
            forwarding=tun is not None,
            **{name: numbers.pop(name) for name in _POLICY_NUMBERS if name in numbers},
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return HaConfig(listen, store, Path(state), policy, tun, tuple(routes),
                    status_file=values.get("status-file"), log_level=level, diameter=diameter,
                    **numbers)  # sa_refresh, stats_interval, ledger_purge_interval


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mip6-ha",
        description="RFC 6618 home agent: protected Binding Updates and tunneled traffic over "
                    "UDP, SAs read from the HAC's store or pushed by the HAC over Diameter.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--config", metavar="FILE", help="TOML file with the keys below (flags override it)")
    add("--listen", metavar="HOST:PORT", action="append",
        help="UDP address to listen on, repeatable; [::]:7872 (dual-stack) by default (listen). "
             "On a wildcard address the kernel picks each reply's source address, and an MN "
             "drops replies not from the HA address it was given: the HA logs a warning at "
             "start; on a host with several addresses listen on the HA's own address(es)")
    add("--store", metavar="URL", help="the HAC's SA store, sqlite:///... or postgresql://...; "
                                       "not with a [diameter] table (store)")
    add("--home-agent", metavar="ADDR",
        help="the address the MNs know this HA by (Mobility Header checksum); defaults to a "
             "specific --listen address (home-agent)")
    add("--tun", metavar="NAME", help="TUN device to the home network; without it nothing is "
                                      "forwarded (tun)")
    add("--tun-route", metavar="PREFIX", action="append",
        help="home prefix to route into the TUN device, repeatable (tun-route)")
    add("--state", metavar="FILE",
        help="sequence ledger file (0600); default: the SQLite store path + .ha-state (state)")
    add("--status-file", metavar="FILE", help="write the counters here as JSON (status-file)")
    add("--max-lifetime", metavar="SECONDS", help="longest binding lifetime granted (max-lifetime)")
    add("--reinit-margin", metavar="SECONDS",
        help="answer 176 this long before the SA's validity end, at most half the SA's "
             "lifetime (reinit-margin)")
    add("--log-level", metavar="LEVEL", help="debug, info, warning or error (log-level)")
    return parser


def _values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config, "rb") as config_file:
                values = tomllib.load(config_file)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--config {args.config}: {exc}") from None
    for key in KEYS:
        flag = getattr(args, key.replace("-", "_"), None)
        if flag is not None:
            values[key] = flag
    return values


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(_values(args))
    except ConfigError as exc:
        print(f"mip6-ha: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from twisted.internet import reactor

    from .assemble import assemble_home_agent

    try:
        server = assemble_home_agent(config, reactor)
    except Exception as exc:  # configuration and OS errors alike end the program plainly
        print(f"mip6-ha: {exc}", file=sys.stderr)
        return 2
    try:
        for host, port in config.listen:
            listening = server.listen(host, port)
            logging.getLogger("mip6.ha").info(
                "listening on [%s]:%d", host, listening.getHost().port)
    except Exception as exc:
        print(f"mip6-ha: cannot listen: {exc}", file=sys.stderr)
        return 2
    server.start()
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    if config.diameter is not None:  # DPR to the peers while the reactor still runs
        reactor.addSystemEventTrigger("before", "shutdown", server.source.close)
    reactor.run()
    server.ledger.close()
    if config.diameter is None:
        server.source.close()
    if server.tun is not None:
        server.tun.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
