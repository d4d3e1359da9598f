"""``mip6-aaa-gw``: run the Diameter-EAP-to-RADIUS gateway (:mod:`aaa_mip6.gateway`).

Example: a gateway for realm example.net, reached over TLS by a HAC or a relay,
relaying to a local FreeRADIUS::

    mip6-aaa-gw --origin-host gw.example.net --origin-realm example.net \\
        --listen 192.0.2.5:5658 --cert gw.pem --key gw.key --peer-ca diameter-ca.pem \\
        --radius-server 127.0.0.1:1812 --radius-secret-file /etc/mip6/radius-secret

Bad settings print a message naming the flag and exit with status 2. SIGTERM or
SIGINT stops the gateway: DPR to every Diameter peer, RADIUS calls failed.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from .errors import ConfigError

EXIT_CONFIG = 2
DEFAULT_LISTEN_HOST = "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mip6-aaa-gw",
        description="Diameter EAP server (RFC 4072) that relays every Diameter-EAP-Request "
                    "to RADIUS servers (RFC 3579) and turns their replies into "
                    "Diameter-EAP-Answers, MSK included.",
        epilog="Every flag is described in docs/configuration.md (section mip6-aaa-gw). "
               "Exit status 2: bad configuration.")
    parser.add_argument("--origin-host", required=True, metavar="NAME",
                        help="this gateway's Diameter identity (Origin-Host); its TLS "
                             "certificate must name it")
    parser.add_argument("--origin-realm", required=True, metavar="REALM",
                        help="the realm it serves (Origin-Realm)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="where Diameter peers connect; default 127.0.0.1:5658 for TLS, "
                             "127.0.0.1:3868 with --insecure-tcp")
    parser.add_argument("--cert", type=Path, metavar="PEM",
                        help="TLS certificate (leaf first, then its chain)")
    parser.add_argument("--key", type=Path, metavar="PEM", help="its private key")
    parser.add_argument("--peer-ca", type=Path, metavar="PEM",
                        help="CA certificates that sign the Diameter peers' certificates; "
                             "every peer must present one naming its Origin-Host")
    parser.add_argument("--insecure-tcp", action="store_true",
                        help="plain TCP instead of TLS: the MSK crosses in clear; only for "
                             "tests and packet captures")
    parser.add_argument("--radius-server", action="append", required=True, metavar="ADDR",
                        help="RADIUS server ADDR, ADDR:PORT or [IPV6]:PORT (port 1812 by "
                             "default); repeat for failover, in order of preference")
    parser.add_argument("--radius-secret-file", type=Path, required=True, metavar="FILE",
                        help="file holding the RADIUS shared secret (one line)")
    parser.add_argument("--nas-identifier", metavar="TEXT",
                        help="NAS-Identifier sent to RADIUS (default: the Origin-Host)")
    parser.add_argument("--nas-address", default=DEFAULT_LISTEN_HOST, metavar="ADDR",
                        help="NAS-IP(v6)-Address sent to RADIUS and the RADIUS source "
                             "address (default 127.0.0.1)")
    parser.add_argument("--multi-round-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long an EAP conversation may idle between rounds "
                             "(default 60)")
    parser.add_argument("--watchdog", type=float, default=30.0, metavar="SECONDS",
                        help="Diameter watchdog Tw (RFC 3539; default 30, at least 6)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    return parser


def _listen_address(text: str | None, default_port: int) -> tuple[str, int]:
    if text is None:
        return DEFAULT_LISTEN_HOST, default_port
    from .diameter.sa_app import address_port

    try:
        return address_port(text)
    except ValueError as error:
        raise ConfigError(f"--listen {error}") from None


def _secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"--radius-secret-file {path}: {error.strerror}") from None
    if not secret:
        raise ConfigError(f"--radius-secret-file {path} is empty")
    return secret


def start(arguments: argparse.Namespace, reactor):
    """Build and start the gateway on ``reactor``; returns (EapGateway, listening port)."""
    from . import tls
    from .diameter.eap import EAP_APPLICATION_ID
    from .diameter.peer import LocalNode, WatchdogTimers
    from .diameter.twisted_peer import DIAMETER_TCP_PORT, DIAMETER_TLS_PORT, DiameterNode
    from .gateway import EapGateway
    from .radius.client import RadiusClient
    from .radius.codec import Nas
    from .radius.servers import RadiusServer

    secret = _secret(arguments.radius_secret_file)
    servers = [RadiusServer.parse(text, secret) for text in arguments.radius_server]
    try:
        nas_address = ipaddress.ip_address(arguments.nas_address)
        local = LocalNode(arguments.origin_host, arguments.origin_realm,
                          host_ip_addresses=(str(nas_address),),
                          auth_applications=frozenset({EAP_APPLICATION_ID}))
        watchdog = WatchdogTimers(tw=arguments.watchdog)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if arguments.watchdog < 6:
        raise ConfigError("--watchdog must be at least 6 seconds (RFC 3539)")
    if arguments.insecure_tcp:
        host, port = _listen_address(arguments.listen, DIAMETER_TCP_PORT)
        server_tls = None
    else:
        host, port = _listen_address(arguments.listen, DIAMETER_TLS_PORT)
        if not (arguments.cert and arguments.key and arguments.peer_ca):
            raise ConfigError("TLS needs --cert, --key and --peer-ca (or --insecure-tcp)")
        server_tls = tls.ServerTLS(arguments.cert, arguments.key,
                                   client_ca_file=arguments.peer_ca, require_client_cert=True)
    nas = Nas(arguments.nas_identifier or arguments.origin_host, nas_address)
    node = DiameterNode(local, reactor=reactor, watchdog=watchdog)
    gateway = EapGateway(node, RadiusClient(servers, nas, reactor=reactor),
                         multi_round_timeout=arguments.multi_round_timeout)
    if server_tls is None:
        listening = node.listen_tcp(port, interface=host)
    else:
        listening = node.listen_tls(server_tls, port, interface=host)
    return gateway, listening


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=arguments.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    try:
        gateway, listening = start(arguments, reactor)
    except (ConfigError, CannotListenError) as error:
        print(f"mip6-aaa-gw: {error}", file=sys.stderr)
        return EXIT_CONFIG
    address = listening.getHost()
    logging.getLogger("mip6-aaa-gw").info(
        "Diameter EAP gateway %s listening on %s port %d (%s)", arguments.origin_host,
        address.host, address.port, "TCP, no TLS" if arguments.insecure_tcp else "TLS")
    reactor.addSystemEventTrigger("before", "shutdown", gateway.stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
