"""``mip6-hac``: run the Home Agent Controller.

Quick start, no config file::

    mip6-hac --listen 192.0.2.10:7443 --cert hac.pem --key hac.key --psk-file psk \\
             --store sqlite:///var/lib/mip6/sa.db --ha '[2001:db8::1]' --hoa-prefix 2001:db8:1::/64

EAP relayed to RADIUS (RFC 6618 §5.9): add ``--radius-server 192.0.2.5:1812
--radius-secret-file /etc/mip6/radius.secret`` (repeat ``--radius-server`` for fail-over);
with ``--auth-methods eap`` the HAC runs EAP only and needs no ``--psk-file``.
EAP over Diameter (RFC 4072, TLS only): ``--aaa-backend diameter
--diameter-origin-host hac1.example.org --diameter-origin-realm example.org
--diameter-realm aaa.example.net --diameter-peer relay.example.org=192.0.2.6
--diameter-ca ca.pem --diameter-cert hac-diameter.pem --diameter-key hac-diameter.key``.

Everything else lives in ``--config FILE`` (TOML); a flag overrides the file; every flag
has its key. A start-up failure prints one line: exit status 2 for the configuration (the
message names the setting), 1 for the rest (e.g. the store does not answer).
``--check-config`` loads everything, checks the ports and the store, and exits 0 with a
summary or 2 with that line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aaa_mip6.errors import ConfigError
from aaa_mip6.program import (EXIT_CONFIG, add_log_flags, add_metrics_flag, add_version_flag,
                              configure_logging, fail)

from .config import SCHEMA, load_config

PROGRAM = "mip6-hac"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Home Agent Controller (RFC 6618): authenticates Mobile Nodes over TLS "
                    "with a pre-shared key or with EAP relayed to an AAA server, and hands "
                    "each a security association and its Mobile IPv6 bootstrap data.",
        epilog="Flags override the config file. Every config key is documented in "
               "docs/configuration.md (section HAC); etc/hac.toml is a commented sample. "
               "Signals: SIGHUP re-reads log.level and the RADIUS servers and reloads the PSK "
               "file, the TLS certificate and key and the RADIUS secret file, SIGUSR1 logs a status line, SIGTERM stops (exit 0). "
               "Exit status 2: bad configuration; 1: any other failure "
               "(e.g. the store does not answer). "
               "Verbs on the running HAC's control socket (--control): "
               "'mip6-hac sas' lists SAs, 'mip6-hac stats' its counters, "
               "'mip6-hac revoke --spi N' revokes an SA (see 'mip6-hac VERB --help').",
    )
    add_version_flag(parser)
    parser.add_argument("--check-config", action="store_true",
                        help="load every file, open the store, check the ports are free, "
                             "print a summary and exit 0 (or 2 with the problem; 1 for a port "
                             "another program holds or a store that does not answer)")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="TOML file with any of the settings (flags win)")
    parser.add_argument("--instance", metavar="NAME",
                        help="name of this HAC, stored with each SA (instance)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to accept TLS on, e.g. 0.0.0.0:7443 or [::]:7443 "
                             "(listen)")
    parser.add_argument("--tcp-fast-open", metavar="N",
                        help="TCP Fast Open on the listening socket: SYNs with data held "
                             "before their handshake completes, 0 for off; needs the sysctl "
                             "net.ipv4.tcp_fastopen=3 (tcp_fast_open, default 256)")
    parser.add_argument("--cert", metavar="PEM",
                        help="HAC certificate, leaf first, then its chain (tls.cert)")
    parser.add_argument("--key", metavar="PEM", help="its private key, unencrypted (tls.key)")
    parser.add_argument("--client-ca", metavar="PEM",
                        help="CA file to verify MN client certificates against "
                             "(tls.client_ca)")
    parser.add_argument("--require-client-cert", action="store_const", const=True,
                        help="refuse MNs without a client certificate; needs --client-ca "
                             "(tls.require_client_cert)")
    parser.add_argument("--early-data", action="store_const", const=True,
                        help="take a returning MN's Init as TLS 1.3 early data and answer it "
                             "before the handshake ends (one round trip less); tickets become "
                             "single-use and resume only in the worker that issued them "
                             "(tls.early_data)")
    parser.add_argument("--auth-methods", metavar="LIST",
                        help="auth methods the HAC runs, preferred first: psk, eap, psk,eap "
                             "or eap,psk (auth.methods; eap needs an AAA server)")
    parser.add_argument("--psk-file", metavar="FILE",
                        help="pre-shared keys, one 'NAI hex-key' per line; required while "
                             "auth.methods includes psk (credentials.psk_file)")
    parser.add_argument("--store", metavar="URL",
                        help="SA store: sqlite:///abs/path.db or postgresql://... (store.url)")
    parser.add_argument("--ha", metavar="ADDR", action="append",
                        help="a home agent: [v6]:port, v4:port or a bare address for port "
                             "7872; repeat for several (home_agents.addresses)")
    parser.add_argument("--hoa-prefix", metavar="PREFIX",
                        help="IPv6 prefix home addresses come from, e.g. 2001:db8:1::/64 "
                             "(bootstrap.hoa_prefix)")
    parser.add_argument("--hoa-pool4", metavar="PREFIX",
                        help="IPv4 subnet IPv4 home addresses come from, e.g. 198.51.100.0/24 "
                             "(bootstrap.hoa_pool4)")
    parser.add_argument("--dns6", metavar="ADDR", help="IPv6 DNS server told to MNs "
                                                       "(bootstrap.dns6)")
    parser.add_argument("--dns4", metavar="ADDR", help="IPv4 DNS server told to MNs "
                                                       "(bootstrap.dns4)")
    parser.add_argument("--max-connections", metavar="N",
                        help="connections open at once per worker; the open-file limit is "
                             "raised to hold them (limits.max_connections)")
    parser.add_argument("--workers", metavar="N", help="worker processes sharing the port, "
                                                       "1..64 (workers)")
    parser.add_argument("--control", metavar="PATH",
                        help="UNIX control socket (mode 0600) for the verbs sas, stats and "
                             "revoke, e.g. /run/mip6/hac.sock; with several workers, "
                             "worker N listens on PATH.N (control.socket)")
    add_log_flags(parser)
    add_metrics_flag(parser)
    parser.add_argument("--radius-server", metavar="HOST:PORT", action="append",
                        help="RADIUS server for EAP: v4:port, [v6]:port or a bare address for "
                             "port 1812; repeat for fail-over, first preferred (radius.servers)")
    parser.add_argument("--radius-secret", metavar="SECRET",
                        help="the RADIUS shared secret (visible in ps: prefer "
                             "--radius-secret-file) (radius.secret)")
    parser.add_argument("--radius-secret-file", metavar="FILE",
                        help="file whose first line is the RADIUS shared secret "
                             "(radius.secret_file)")
    diameter = parser.add_argument_group(
        "EAP over Diameter (RFC 4072)",
        "With --aaa-backend diameter the HAC relays EAP in Diameter-EAP-Requests over TLS "
        "(never plain TCP: the MSK crosses in the answer). Needs the origin host and realm, "
        "the destination realm, --diameter-ca/-cert/-key, and --diameter-peer or "
        "--diameter-listen.")
    diameter.add_argument("--aaa-backend", metavar="BACKEND",
                          help="radius (default) or diameter (aaa.backend)")
    diameter.add_argument("--diameter-origin-host", metavar="FQDN",
                          help="the HAC's Diameter identity; its --diameter-cert must name it "
                               "(diameter.origin_host)")
    diameter.add_argument("--diameter-origin-realm", metavar="REALM",
                          help="the HAC's realm (diameter.origin_realm)")
    diameter.add_argument("--diameter-realm", metavar="REALM",
                          help="Destination-Realm of the EAP server (diameter.destination_realm)")
    diameter.add_argument("--diameter-peer", metavar="NAME=ADDR[:PORT]", action="append",
                          help="a Diameter peer (agent or EAP server) to connect to over TLS: "
                               "its Origin-Host, which its certificate must name, and its "
                               "v4:port, [v6]:port or bare address for port 5658; repeat for "
                               "fail-over (diameter.peers)")
    diameter.add_argument("--diameter-listen", metavar="HOST:PORT",
                          help="also accept Diameter peers over TLS here, e.g. an agent that "
                               "connects to the HAC (diameter.listen)")
    diameter.add_argument("--diameter-ca", metavar="PEM",
                          help="CA certificates that sign the peers' certificates (diameter.ca)")
    diameter.add_argument("--diameter-cert", metavar="PEM",
                          help="the HAC's Diameter TLS certificate, leaf first (diameter.cert)")
    diameter.add_argument("--diameter-key", metavar="PEM",
                          help="its private key, unencrypted (diameter.key)")
    return parser


def config_overrides(arguments: argparse.Namespace) -> dict[str, Any]:
    """The command line's flags as dotted config keys (None for a flag not given); which
    flag sets which key is the ``flag`` of each setting in :data:`hac.config.SETTINGS`."""
    return SCHEMA.overrides(arguments)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in ("sas", "stats", "revoke"):  # ask the running HAC
        from .verbs import VERBS
        return VERBS[argv[0]](argv[1:])
    arguments = build_parser().parse_args(argv)
    try:
        config = load_config(arguments.config, config_overrides(arguments))
    except ConfigError as error:
        return fail(PROGRAM, str(error), EXIT_CONFIG)
    configure_logging(PROGRAM, config.log_level, config.log_format)
    # Twisted only once the configuration is good
    from .process import check_configuration, run, start_failure

    try:
        if arguments.check_config:
            print(f"{PROGRAM}: configuration OK: {check_configuration(config)}")
            return 0
        return run(config, lambda: load_config(arguments.config, config_overrides(arguments)))
    except KeyboardInterrupt:
        return fail(PROGRAM, "interrupted while starting", 130)
    except Exception as error:  # files, sockets, store, workers: one line, no traceback
        status, message = start_failure(error)
        return fail(PROGRAM, message, status)


if __name__ == "__main__":
    sys.exit(main())
