"""``mip6-ha``: the home agent's data plane on UDP (RFC 6618 §6), SAs from the HAC's store.

Settings come from an optional TOML file (``--config``, flat keys as in
docs/configuration.md, section HA) with flags over it. A bad value stops the program
with a message naming the key. Every start-up failure is one line and exit status 2 (the
configuration: a value, a file, a right) or 1 (the world: the store unreachable, the
port taken); ``--check-config`` runs the same checks and exits. SIGHUP reloads what can
change while running (:func:`reload`), SIGUSR1 reports the counters, SIGTERM stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import ipaddress
import logging
import math
import os
import socket
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aaa_mip6 import program
from aaa_mip6.addresses import format_host_port, parse_host_port, refuse_unbracketed_port
from aaa_mip6.diameter.sa_app import NodeSettings, node_settings
from aaa_mip6.errors import ConfigError
from aaa_mip6.iana import MIPV6TLS_PORT
from aaa_mip6.replay import MAX_WINDOW, MIN_WINDOW, SEQ_LIMIT
from aaa_mip6.tun import IFNAMSIZ

from .core import HaPolicy

PROGRAM = "mip6-ha"

log = logging.getLogger("mip6.ha")

EPILOG = """\
examples:
  mip6-ha --listen [2001:db8::1]:7872 --store sqlite:///var/lib/mip6/sa.db
  mip6-ha --listen [::]:7872 --home-agent 2001:db8::1 --store sqlite:///var/lib/mip6/sa.db \\
          --tun mip6home --tun-route 2001:db8:1::/64
  mip6-ha --config ha.toml   # SAs pushed by the HAC over Diameter: state and a [diameter] table
  mip6-ha --config ha.toml --check-config   # check it all, start nothing

Without --store, SAs come over Diameter from the HAC's SA delivery application: the
[diameter] table of --config (no flags) and state are required (docs/diameter.md).

Counters are logged every stats-interval seconds and on SIGUSR1 (and written to
--status-file as JSON). SIGHUP re-reads --config and the flags: log-level and
status-file take effect at once, every held SA is re-read from its source, and any
other changed key is named in a warning (it takes a restart). SIGTERM stops cleanly.

Exit status: 0 stopped cleanly (or --check-config found nothing wrong); 2 a bad
setting, file or right (one line naming the key); 1 the store unreachable or a port
taken, or another failure at run time. Every key is documented in
docs/configuration.md, section HA.
"""


def _host_port(key: str, text: str) -> tuple[str, int]:
    """``[v6]:port``, ``v4:port``, ``[v6]``, ``v4`` or a bare IPv6 address; default port 7872."""
    try:
        refuse_unbracketed_port(text)
        host, port = parse_host_port(text)
    except ValueError as error:
        raise ConfigError(f"{key} {text!r}: {error}") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{key} {text!r}: {host!r} is not an IP address") from None
    return host, MIPV6TLS_PORT if port is None else port


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


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` store URL, as the store opens it."""
    return Path("/" + unquote(urlsplit(url).path).lstrip("/"))


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
    listen = tuple(_host_port("listen", text) for text in values.get("listen") or [f"[::]:{MIPV6TLS_PORT}"])
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
        state = f"{sqlite_path(store)}.ha-state"
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
    if tun is not None and not 0 < len(tun.encode()) < IFNAMSIZ:
        raise ConfigError(f"tun: the interface name {tun!r} must have 1..{IFNAMSIZ - 1} octets")
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
    add("--check-config", action="store_true",
        help="check the configuration (store reachable, state file and status-file "
             "directory usable, ports free, TUN device possible) and exit: 0 with a "
             "summary, 2 or 1 with the one-line error; nothing is served")
    program.add_version_flag(parser)
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


def ineffective_settings(values: dict[str, Any]) -> list[str]:
    """Settings given that do nothing with the others given, one warning text each."""
    notes = []
    if values.get("tun-route") and "tun" not in values:
        notes.append("tun-route (--tun-route) has no effect without tun (--tun): "
                     "nothing is routed or forwarded")
    return notes


def check_status_file(path: str | None) -> None:
    """A status file's directory must exist and be writable: checked at start (and on
    reload), not found out at the first write."""
    if path is None:
        return
    directory = Path(path).parent
    if not directory.is_dir():
        raise ConfigError(f"status-file {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"status-file {path}: directory {directory} is not writable")


def startup_failure(error: BaseException) -> tuple[str, int]:
    """The one line and the exit status for what stopped the HA from starting.

    2 when the configuration must change (a value, a file, a right); 1 when the world
    must (the store unreachable, a port another program holds)."""
    from aaa_mip6.store.base import StoreError
    from aaa_mip6.tun import TunnelError
    from twisted.internet.error import CannotListenError

    if isinstance(error, ConfigError):
        return str(error), program.EXIT_CONFIG
    if isinstance(error, StoreError):
        return str(error), program.EXIT_RUNTIME
    if isinstance(error, TunnelError):
        return f"tun: {error}", program.EXIT_CONFIG
    if isinstance(error, CannotListenError):
        return _listen_failure((error.interface, error.port), error.socketError)
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}", program.EXIT_RUNTIME
    return (f"unexpected error at start-up: {type(error).__name__}: {error}",
            program.EXIT_RUNTIME)


def _listen_failure(address: tuple[str, int], error: BaseException) -> tuple[str, int]:
    where = f"listen {format_host_port(*address)}"
    number = getattr(error, "errno", None)
    text = getattr(error, "strerror", None) or str(error)
    if number == errno.EADDRINUSE:
        return f"{where}: {text} (another program, or another mip6-ha, holds it)", \
            program.EXIT_RUNTIME
    if number == errno.EACCES:
        return f"{where}: {text} (a port below 1024 needs root or CAP_NET_BIND_SERVICE)", \
            program.EXIT_CONFIG
    if number == errno.EADDRNOTAVAIL:
        return f"{where}: {text} (not an address of this host)", program.EXIT_CONFIG
    return f"{where}: {text}", program.EXIT_RUNTIME


def check_config(config: HaConfig) -> list[str]:
    """What ``--check-config`` checks, as start-up would, without serving: one summary
    line per part; the first failure propagates (see :func:`startup_failure`)."""
    from aaa_mip6.tun import open_tun

    from .sasource import SequenceLedger

    lines = []
    check_status_file(config.status_file)
    if config.status_file:
        lines.append(f"status-file {config.status_file}: directory writable")
    if config.diameter is None:
        from aaa_mip6.store import open_store

        open_store(config.store).close()
        lines.append(f"store: opened ({config.store.partition(':')[0]})")
    else:
        lines.append("diameter: settings valid (--check-config does not contact the peers)")
    SequenceLedger(config.state).close()
    lines.append(f"state {config.state}: opened")
    for host, port in config.listen:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((host, port))
        except OSError as error:
            message, status = _listen_failure((host, port), error)
            raise _CheckFailed(message, status) from None
        lines.append(f"listen {format_host_port(host, port)}: free")
    if config.tun:
        fd, _ = open_tun(config.tun)
        os.close(fd)
        lines.append(f"tun {config.tun}: can be created")
    lines.append(f"home-agent {config.policy.home_agent}")
    return lines


class _CheckFailed(Exception):
    """A failed check that already has its line and exit status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _warn_exposed(config: HaConfig) -> None:
    """The files holding SA keys or a private key, if others may read them."""
    if config.store and config.store.startswith("sqlite:"):
        program.warn_if_exposed(sqlite_path(config.store), "store", log)
    key = getattr(config.diameter, "key", None)
    if key:
        program.warn_if_exposed(Path(key), "diameter.key", log)


def reload(args: argparse.Namespace, server, running: list[HaConfig]) -> None:
    """SIGHUP: read --config and the flags again. log-level and status-file take effect
    at once and every held SA is re-read from its source (a revocation or a changed SA
    in the store counts now, not at the next sa-refresh); other changed keys are named
    in a warning and wait for a restart. A configuration that no longer loads changes
    nothing."""
    try:
        new = load_config(_values(args))
        check_status_file(new.status_file)
    except ConfigError as exc:
        log.warning("reload: %s; the running settings stay", exc)
        return
    old = running[0]
    logging.getLogger().setLevel(new.log_level.upper())
    server.reload(new.status_file)
    running[0] = dataclasses.replace(old, log_level=new.log_level, status_file=new.status_file)
    later = [_KEY_OF_FIELD.get(name, name.replace("_", "-"))
             for name in (f.name for f in dataclasses.fields(HaConfig))
             if name not in ("log_level", "status_file")
             and getattr(old, name) != getattr(new, name)]
    if later:
        log.warning("reload: %s changed; that takes a restart", ", ".join(later))
    log.info("reloaded: log-level %s, status-file %s, %d SAs re-read from the source",
             new.log_level, new.status_file or "none", len(server.core.spis))


_KEY_OF_FIELD = {"policy": "home-agent, tun or a policy key (max-lifetime, reinit-margin, "
                           "sequence-margin, replay-window, sequence-block)",
                 "tun_routes": "tun-route"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        values = _values(args)
        config = load_config(values)
        check_status_file(config.status_file)
    except ConfigError as exc:
        return program.fail(PROGRAM, str(exc), program.EXIT_CONFIG)
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for note in ineffective_settings(values):
        log.warning("%s", note)
    _warn_exposed(config)
    if args.check_config:
        try:
            summary = check_config(config)
        except _CheckFailed as failed:
            return program.fail(PROGRAM, str(failed), failed.status)
        except Exception as error:  # noqa: BLE001 (every failure is one line)
            return program.fail(PROGRAM, *startup_failure(error))
        print("\n".join(summary))
        print(f"{PROGRAM}: configuration OK")
        return program.EXIT_OK
    from twisted.internet import reactor

    from .assemble import assemble_home_agent

    try:
        server = assemble_home_agent(config, reactor)
    except Exception as error:  # noqa: BLE001 (every failure is one line)
        return program.fail(PROGRAM, *startup_failure(error))
    running = [config]
    # before the first "listening on" line, which is when a supervisor may signal
    program.install_signals(reactor.callFromThread,
                            reload=lambda: reload(args, server, running),
                            status=server.report)
    try:
        for host, port in config.listen:
            listening = server.listen(host, port)
            log.info("listening on [%s]:%d", host, listening.getHost().port)
    except Exception as error:  # noqa: BLE001 (every failure is one line)
        for listening in server.ports:
            listening.stopListening()
        _close(server, config)
        return program.fail(PROGRAM, *startup_failure(error))
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
    return program.EXIT_OK


def _close(server, config: HaConfig) -> None:
    """What assemble_home_agent opened, when the HA does not start after all."""
    server.ledger.close()
    server.source.close()
    if server.tun is not None:
        server.tun.close()


if __name__ == "__main__":
    sys.exit(main())
