"""``mip6-aaa-gw``: run the Diameter-EAP-to-RADIUS gateway (:mod:`gateway.relay`).

Example: a gateway for realm example.net, reached over TLS by a HAC or a relay,
relaying to a local FreeRADIUS::

    mip6-aaa-gw --origin-host gw.example.net --origin-realm example.net \\
        --listen 192.0.2.5:5658 --cert gw.pem --key gw.key --peer-ca diameter-ca.pem \\
        --radius-server 127.0.0.1:1812 --radius-secret-file /etc/mip6/radius-secret

Every flag has a key in ``--config FILE`` (TOML); a flag overrides the file.
``--check-config`` checks everything a start needs (files readable, certificate and key
matching, ports free) and exits. A bad setting prints one line naming the key and flag
and exits with status 2; a failure at run time exits with 1. Signals: SIGHUP re-reads
``radius.servers``, the RADIUS secret file and ``log.level``; SIGUSR1 logs one status line; SIGTERM or SIGINT
stops the gateway (DPR to every Diameter peer, RADIUS calls failed).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aaa_mip6 import program
from aaa_mip6.addresses import format_host_port
from aaa_mip6.errors import ConfigError, StartupError

from .config import SCHEMA, GatewayConfig, load_config, named

PROGRAM = "mip6-aaa-gw"
EXIT_CONFIG = program.EXIT_CONFIG

log = logging.getLogger(PROGRAM)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Diameter EAP server (RFC 4072) that relays every Diameter-EAP-Request "
                    "to RADIUS servers (RFC 3579) and turns their replies into "
                    "Diameter-EAP-Answers, MSK included.",
        epilog="Each flag's config key is in parentheses; every key is described in "
               "docs/configuration.md (section mip6-aaa-gw). Signals: SIGHUP re-reads the "
               "RADIUS servers, secret file and log.level, SIGUSR1 logs a status line, SIGTERM stops. "
               "Exit status 1: failed at run time; 2: bad configuration. "
               "'mip6-aaa-gw peers --control PATH' lists the Diameter peers of the running "
               "gateway and its counters.")
    program.add_version_flag(parser)
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML file with any of the settings below (flags win)")
    parser.add_argument("--check-config", action="store_true",
                        help="check the configuration (files readable, certificate and key "
                             "matching, ports free), print a summary and exit: 0 good, 2 bad, 1 "
                             "a port another program holds")
    parser.add_argument("--origin-host", metavar="NAME",
                        help="this gateway's Diameter identity (Origin-Host); its TLS "
                             "certificate must name it (diameter.origin_host, required)")
    parser.add_argument("--origin-realm", metavar="REALM",
                        help="the realm it serves (diameter.origin_realm, required)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="where Diameter peers connect; default 127.0.0.1:5658 for TLS, "
                             "127.0.0.1:3868 with --insecure-tcp (diameter.listen)")
    parser.add_argument("--cert", metavar="PEM",
                        help="TLS certificate, leaf first, then its chain (tls.cert)")
    parser.add_argument("--key", metavar="PEM", help="its private key (tls.key)")
    parser.add_argument("--peer-ca", metavar="PEM",
                        help="CA certificates that sign the Diameter peers' certificates; "
                             "every peer must present one naming its Origin-Host (tls.peer_ca)")
    parser.add_argument("--insecure-tcp", action="store_true", default=None,
                        help="plain TCP instead of TLS: the MSK crosses in clear; only for "
                             "tests and packet captures (diameter.insecure_tcp)")
    parser.add_argument("--radius-server", action="append", metavar="ADDR",
                        help="RADIUS server ADDR, ADDR:PORT or [IPV6]:PORT (port 1812 by "
                             "default); repeat for failover, in order of preference "
                             "(radius.servers, required)")
    parser.add_argument("--radius-secret-file", metavar="FILE",
                        help="file holding the RADIUS shared secret, one line; re-read on "
                             "SIGHUP (radius.secret_file, required)")
    parser.add_argument("--nas-identifier", metavar="TEXT",
                        help="NAS-Identifier sent to RADIUS (default: the Origin-Host) "
                             "(radius.nas_identifier)")
    parser.add_argument("--nas-address", metavar="ADDR",
                        help="NAS-IP(v6)-Address sent to RADIUS and the RADIUS source "
                             "address (default 127.0.0.1) (radius.nas_address)")
    parser.add_argument("--multi-round-timeout", metavar="SECONDS",
                        help="how long an EAP conversation may idle between rounds, "
                             "1..86400 (default 60) (eap.multi_round_timeout)")
    parser.add_argument("--max-conversations", metavar="N",
                        help="EAP conversations held at once; more are answered 3004 "
                             "DIAMETER_TOO_BUSY (default 100000) (eap.max_conversations)")
    parser.add_argument("--watchdog", metavar="SECONDS",
                        help="Diameter watchdog Tw (RFC 3539), 6..86400 (default 30) "
                             "(diameter.watchdog)")
    parser.add_argument("--control", metavar="PATH",
                        help="UNIX control socket (mode 0600) for 'mip6-aaa-gw peers', e.g. "
                             "/run/mip6/aaa-gw.sock (control.socket)")
    program.add_log_flags(parser)
    program.add_metrics_flag(parser)
    return parser


def config_overrides(arguments: argparse.Namespace) -> dict[str, Any]:
    """The command line's flags as dotted keys (None for a flag not given)."""
    return SCHEMA.overrides(arguments)


# --- checks before anything starts ---------------------------------------------------


def read_secret(config: GatewayConfig) -> bytes:
    """The RADIUS shared secret: the first line of ``radius.secret_file``."""
    path = config.radius_secret_file
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise ConfigError(f"{named('radius.secret_file')} {path}: cannot read "
                          f"({error.strerror or error})") from None
    secret = lines[0].strip() if lines else b""
    if not secret:
        raise ConfigError(f"{named('radius.secret_file')} {path} is empty")
    return secret


def _check_bind(kind: socket.SocketKind, host: str, port: int, key: str) -> None:
    """ConfigError naming ``key`` when ``host:port`` cannot be bound now."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    with socket.socket(family, kind) as probe:
        if kind == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted does
        try:
            probe.bind((host, port))
        except OSError as error:
            where = format_host_port(host, port) if port else host
            if error.errno == errno.EADDRINUSE:
                raise StartupError(f"{named(key)} {where}: cannot bind (the port is in "
                                   "use)") from None
            if error.errno == errno.EADDRNOTAVAIL:
                problem = "not an address of this host"
            else:
                problem = error.strerror or str(error)
            raise ConfigError(f"{named(key)} {where}: cannot bind ({problem})") from None


@dataclass
class Prepared:
    """What the checks read, for :func:`start`."""

    config: GatewayConfig
    secret: bytes = field(repr=False)
    server_tls: Any = None  # tls.ServerTLS, None with diameter.insecure_tcp


def prepare(config: GatewayConfig) -> Prepared:
    """Every check a start needs, without starting anything; ConfigError names the key.

    Reads the secret file and the TLS files (certificate and key must match), checks
    that the RADIUS source address belongs to this host, and warns (once) about a
    secret file or key others can read and a certificate that does not name the
    Origin-Host.
    """
    from aaa_mip6.twisted import tls

    secret = read_secret(config)
    program.warn_if_exposed(config.radius_secret_file, "RADIUS secret file", log)
    server_tls = None
    if not config.insecure_tcp:
        steps = (("tls.cert", lambda: tls.load_certificates(config.cert)),
                 ("tls.key", lambda: tls.load_private_key(config.key)),
                 ("tls.peer_ca", lambda: tls.load_certificates(config.peer_ca, "CA file")),
                 ("tls.key", lambda: tls.ServerTLS(config.cert, config.key,
                                                   client_ca_file=config.peer_ca,
                                                   require_client_cert=True)))
        done = []
        for key, step in steps:
            try:
                done.append(step())
            except ConfigError as error:
                raise ConfigError(f"{named(key)}: {error}") from None
        leaf, server_tls = done[0][0], done[-1]
        program.warn_if_exposed(config.key, "TLS key", log)
        try:
            tls.check_identity(leaf, config.origin_host)
        except (tls.CertificateRejected, ConfigError):
            log.warning("%s %s does not name %s %s (subjectAltName dNSName): peers that "
                        "check it will refuse the gateway", named("tls.cert"), config.cert,
                        named("diameter.origin_host"), config.origin_host)
    _check_bind(socket.SOCK_DGRAM, str(config.nas_address), 0, "radius.nas_address")
    return Prepared(config, secret, server_tls)


def summary(config: GatewayConfig) -> str:
    host, port = config.listen_address
    servers = ", ".join(format_host_port(server.address, server.port)
                        for server in config.radius_servers)
    transport = "TCP, no TLS" if config.insecure_tcp else "TLS"
    return (f"{config.origin_host} (realm {config.origin_realm}) on "
            f"{format_host_port(host, port)} ({transport}); RADIUS {servers} from "
            f"{config.nas_address}")


# --- running ------------------------------------------------------------------------


_COUNTERS = ("requests", "challenge", "accept", "reject", "refused", "malformed",
             "retransmissions")  # the relay's, as the status line and `peers` show them


class GatewayProgram:
    """The running gateway and what its signals do."""

    def __init__(self, prepared: Prepared, reactor, config_path: Path | None,
                 flags: Mapping[str, Any]):
        from aaa_mip6.diameter.eap import EAP_APPLICATION_ID
        from aaa_mip6.diameter.peer import LocalNode, WatchdogTimers
        from aaa_mip6.radius.codec import Nas
        from aaa_mip6.radius.servers import RadiusServer
        from aaa_mip6.twisted.diameter_node import DiameterNode
        from aaa_mip6.twisted.radius_client import RadiusClient

        from .relay import EapGateway

        config = prepared.config
        self.config = config
        self._config_path = config_path
        self._flags = flags
        local = LocalNode(config.origin_host, config.origin_realm,
                          host_ip_addresses=(str(config.nas_address),),
                          auth_applications=frozenset({EAP_APPLICATION_ID}))
        servers = [RadiusServer(server.address, server.port, prepared.secret)
                   for server in config.radius_servers]
        self.radius = RadiusClient(servers, Nas(config.nas_identifier or config.origin_host,
                                                config.nas_address), reactor=reactor)
        self.node = DiameterNode(local, reactor=reactor,
                                 watchdog=WatchdogTimers(config.watchdog,
                                                         min(2.0, config.watchdog / 10)))
        self.gateway = EapGateway(self.node, self.radius,
                                  multi_round_timeout=config.multi_round_timeout,
                                  max_conversations=config.max_conversations)
        host, port = config.listen_address
        if prepared.server_tls is None:
            self.listening = self.node.listen_tcp(port, interface=host)
        else:
            self.listening = self.node.listen_tls(prepared.server_tls, port, interface=host)

    def reload(self) -> None:
        """SIGHUP: ``radius.servers``, the RADIUS secret file and ``log.level`` from the
        config file and flags again (a flag still wins). Anything else needs
        a restart. A bad file keeps the settings in force; RADIUS conversations under
        way end on the server they started with."""
        from aaa_mip6.radius.servers import RadiusServer

        try:
            config = self.config
            if self._config_path is not None:
                config = load_config(self._config_path, self._flags)
            secret = read_secret(config)
        except ConfigError as error:
            log.error("reload failed, settings unchanged: %s", error)
            return
        program.warn_if_exposed(config.radius_secret_file, "RADIUS secret file", log)
        self.radius.set_servers([RadiusServer(server.address, server.port, secret)
                                 for server in config.radius_servers])
        logging.getLogger().setLevel(config.log_level.upper())
        log.info("reloaded: RADIUS secret from %s, servers %s, log level %s",
                 config.radius_secret_file, self.radius, config.log_level)

    def peers(self, _request: dict) -> dict:
        """The control socket's ``peers``: every Diameter peer connection and its state
        (RFC 6733 5.6), the relay's counters and the RADIUS client's."""
        from aaa_mip6.control import ok

        return ok(peers=[{"peer": name, "state": state}
                         for name, state in self.node.peer_states()],
                  counters={name: self.gateway.counters[name] for name in _COUNTERS},
                  conversations=len(self.gateway.sessions),
                  radius=dict(sorted(self.radius.counters.items())))

    def status(self) -> None:
        """SIGUSR1: one line with the peers and their states and the counters."""
        peers = ", ".join(f"{name} {state}" for name, state in self.node.peer_states())
        counters = self.gateway.counters
        answers = " ".join(f"{name} {counters[name]}" for name in _COUNTERS[1:])
        radius = " ".join(f"{name} {count}"
                          for name, count in sorted(self.radius.counters.items()))
        log.info("status: peers [%s]; requests %d, answers: %s; conversations %d; RADIUS: %s",
                 peers or "none", counters["requests"], answers, len(self.gateway.sessions),
                 radius or "none")


def start(prepared: Prepared, reactor, config_path: Path | None = None,
          flags: Mapping[str, Any] | None = None) -> GatewayProgram:
    """Build and start the gateway on ``reactor``; ConfigError when it cannot listen."""
    from twisted.internet.error import CannotListenError

    try:
        running = GatewayProgram(prepared, reactor, config_path, flags or {})
    except CannotListenError as error:
        host, port = prepared.config.listen_address
        reason = getattr(error.socketError, "strerror", None) or error.socketError
        message = (f"{named('diameter.listen')} {format_host_port(host, port)}: "
                   f"cannot listen ({reason})")
        if getattr(error.socketError, "errno", None) == errno.EADDRINUSE:
            raise StartupError(message) from None
        raise ConfigError(message) from None
    if prepared.config.control_socket is not None:
        from aaa_mip6.twisted.control import listen_control

        try:
            control = listen_control(prepared.config.control_socket,
                                     {"peers": running.peers}, reactor)
        except BaseException:
            running.listening.stopListening()
            raise
        reactor.addSystemEventTrigger("before", "shutdown", control.stopListening)
    return running


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["peers"]:  # ask the running gateway
        from .verbs import peers_main
        return peers_main(argv[1:])
    arguments = build_parser().parse_args(argv)
    flags = config_overrides(arguments)
    try:
        config = load_config(arguments.config, flags)
        program.configure_logging(PROGRAM, config.log_level, config.log_format)
        prepared = prepare(config)
        if arguments.check_config:
            host, port = config.listen_address
            _check_bind(socket.SOCK_STREAM, host, port, "diameter.listen")
            if config.metrics is not None:
                _check_bind(socket.SOCK_STREAM, *config.metrics, "metrics.listen")
            print(f"{PROGRAM}: configuration OK: {summary(config)}")
            return program.EXIT_OK
        from twisted.internet import reactor

        running = start(prepared, reactor, arguments.config, flags)
        if config.metrics is not None:
            from aaa_mip6.twisted.metrics import serve_metrics

            from .metrics import gateway_registry
            metrics = serve_metrics(gateway_registry(running), *config.metrics, reactor)
            log.info("metrics on http://%s:%d/metrics", config.metrics[0],
                     metrics.getHost().port)
    except ConfigError as error:
        return program.fail(PROGRAM, str(error), program.EXIT_CONFIG)
    except StartupError as error:
        return program.fail(PROGRAM, str(error), program.EXIT_RUNTIME)
    except Exception as error:  # a bug or an unforeseen OS error: still one line
        log.debug("start-up failed", exc_info=True)
        return program.fail(PROGRAM, f"cannot start: {type(error).__name__}: {error} "
                                     "(--log-level debug shows where)", program.EXIT_RUNTIME)
    address = running.listening.getHost()
    log.info("Diameter EAP gateway %s listening on %s (%s)", config.origin_host,
             format_host_port(address.host, address.port),
             "TCP, no TLS" if config.insecure_tcp else "TLS")
    program.install_signals(reactor.callFromThread, reload=running.reload,
                            status=running.status)
    reactor.addSystemEventTrigger("before", "shutdown", running.gateway.stop)
    reactor.run()
    return program.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
