"""``mip6-ha``: the home agent's data plane on UDP (RFC 6618 §6), SAs from the HAC's store.

Settings come from an optional TOML file (``--config``, keys as in docs/configuration.md,
section HA, and :mod:`ha.config`) with flags over it. A bad value stops the program
with a message naming the key. Every start-up failure is one line and exit status 2 (the
configuration: a value, a file, a right) or 1 (the world: the store unreachable, the
port taken); ``--check-config`` runs the same checks and exits. SIGHUP reloads what can
change while running (:func:`reload`), SIGUSR1 reports the counters, SIGTERM stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import socket
import sys
from pathlib import Path

from aaa_mip6 import program
from aaa_mip6.addresses import format_host_port
from aaa_mip6.errors import ConfigError, StartupError

from .config import SCHEMA, HaConfig, changed_keys, ineffective_settings, load_config, \
    sqlite_path

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

Counters are logged every stats_interval seconds and on SIGUSR1 (and written to
--status-file as JSON). SIGHUP re-reads --config and the flags: log.level and
status_file take effect at once, every held SA is re-read from its source, and any
other changed key is named in a warning (it takes a restart). SIGTERM stops cleanly.

Verbs on the running HA's control socket (--control PATH): 'mip6-ha bindings', 'mip6-ha
sas', 'mip6-ha stats' and 'mip6-ha flush --spi N' (see 'mip6-ha VERB --help').

Exit status: 0 stopped cleanly (or --check-config found nothing wrong); 2 a bad
setting, file or right (one line naming the key); 1 the store unreachable or a port
taken, or another failure at run time. Every key is documented in
docs/configuration.md, section HA.
"""


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
             "specific --listen address (home_agent)")
    add("--tun", metavar="NAME", help="TUN device to the home network; without it nothing is "
                                      "forwarded (tun)")
    add("--tun-route", metavar="PREFIX", action="append",
        help="home prefix to route into the TUN device, repeatable (tun_route)")
    add("--state", metavar="FILE",
        help="sequence ledger file (0600); default: the SQLite store path + .ha-state (state)")
    add("--status-file", metavar="FILE", help="write the counters here as JSON (status_file)")
    add("--max-lifetime", metavar="SECONDS",
        help="longest binding lifetime granted (max_lifetime)")
    add("--reinit-margin", metavar="SECONDS",
        help="answer 176 this long before the SA's validity end, at most half the SA's "
             "lifetime (reinit_margin)")
    add("--control", metavar="PATH",
        help="UNIX control socket (mode 0600) for the verbs bindings, sas, stats and flush, "
             "e.g. /run/mip6/ha.sock (control.socket)")
    program.add_log_flags(parser)
    program.add_metrics_flag(parser)
    add("--check-config", action="store_true",
        help="check the configuration (store reachable, state file and status-file "
             "directory usable, ports free, TUN device possible) and exit: 0 with a "
             "summary, 2 or 1 with the one-line error; nothing is served")
    program.add_version_flag(parser)
    return parser


def _load(args: argparse.Namespace) -> HaConfig:
    """The configuration of ``--config`` and the flags."""
    return load_config(args.config, SCHEMA.overrides(args))


def check_status_file(path: str | None) -> None:
    """A status file's directory must exist and be writable: checked at start (and on
    reload), not found out at the first write."""
    if path is None:
        return
    directory = Path(path).parent
    if not directory.is_dir():
        raise ConfigError(f"status_file {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"status_file {path}: directory {directory} is not writable")


def startup_failure(error: BaseException) -> tuple[str, int]:
    """The one line and the exit status for what stopped the HA from starting.

    2 when the configuration must change (a value, a file, a right); 1 when the world
    must (the store unreachable, a port another program holds)."""
    from aaa_mip6.store.base import StoreError
    from aaa_mip6.twisted.tun import TunnelError
    from twisted.internet.error import CannotListenError

    if isinstance(error, ConfigError):
        return str(error), program.EXIT_CONFIG
    if isinstance(error, (StoreError, StartupError)):
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
    from aaa_mip6.twisted.tun import open_tun

    from .sasource import SequenceLedger

    lines = []
    check_status_file(config.status_file)
    if config.status_file:
        lines.append(f"status_file {config.status_file}: directory writable")
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
    if config.metrics is not None:
        host, port = config.metrics
        try:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted does
                probe.bind((host, port))
        except OSError as error:
            message, status = _listen_failure((host, port), error)
            raise _CheckFailed(f"metrics.listen (--metrics): {message}", status) from None
        lines.append(f"metrics.listen {format_host_port(host, port)}: free")
    if config.tun:
        fd, _ = open_tun(config.tun)
        os.close(fd)
        lines.append(f"tun {config.tun}: can be created")
    lines.append(f"home_agent {config.policy.home_agent}")
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
    """SIGHUP: read --config and the flags again. log.level and status_file take effect
    at once and every held SA is re-read from its source (a revocation or a changed SA
    in the store counts now, not at the next sa_refresh); other changed keys are named
    in a warning and wait for a restart. A configuration that no longer loads changes
    nothing."""
    try:
        new = _load(args)
        check_status_file(new.status_file)
    except ConfigError as exc:
        log.warning("reload: %s; the running settings stay", exc)
        return
    for note in SCHEMA.deprecations():
        log.warning("%s", note)
    old = running[0]
    logging.getLogger().setLevel(new.log_level.upper())
    server.reload(new.status_file)
    running[0] = dataclasses.replace(old, log_level=new.log_level, status_file=new.status_file)
    later = [key for key in changed_keys(old, new) if key not in ("log.level", "status_file")]
    if later:
        log.warning("reload: %s changed; that takes a restart", ", ".join(later))
    log.info("reloaded: log.level %s, status_file %s, %d SAs re-read from the source",
             new.log_level, new.status_file or "none", len(server.core.spis))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in ("bindings", "sas", "stats", "flush"):  # ask the running HA
        from .verbs import VERBS
        return VERBS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    try:
        config = _load(args)
        check_status_file(config.status_file)
    except ConfigError as exc:
        return program.fail(PROGRAM, str(exc), program.EXIT_CONFIG)
    program.configure_logging(PROGRAM, config.log_level, config.log_format,
                              "%(asctime)s %(name)s %(levelname)s %(message)s")
    for note in SCHEMA.deprecations() + ineffective_settings(config):
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

    from aaa_mip6.twisted.control import listen_control

    from .assemble import assemble_home_agent
    from .control import handlers

    try:
        server = assemble_home_agent(config, reactor)
    except Exception as error:  # noqa: BLE001 (every failure is one line)
        return program.fail(PROGRAM, *startup_failure(error))
    running = [config]
    # before the first "listening on" line, which is when a supervisor may signal
    program.install_signals(reactor.callFromThread,
                            reload=lambda: reload(args, server, running),
                            status=server.report)
    control = None  # before the "listening on" lines: then the verbs answer
    try:
        if config.control_socket is not None:
            control = listen_control(config.control_socket, handlers(server), reactor)
            reactor.addSystemEventTrigger("before", "shutdown", control.stopListening)
        for host, port in config.listen:
            listening = server.listen(host, port)
            log.info("listening on [%s]:%d", host, listening.getHost().port)
        if config.metrics is not None:
            from aaa_mip6.twisted.metrics import serve_metrics

            from .metrics import ha_registry
            metrics = serve_metrics(ha_registry(server), *config.metrics, reactor)
            log.info("metrics on http://%s:%d/metrics", config.metrics[0],
                     metrics.getHost().port)
    except Exception as error:  # noqa: BLE001 (every failure is one line)
        for listening in server.ports:
            listening.stopListening()
        if control is not None:
            control.stopListening()
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
