"""``mip6-hac``: run the Home Agent Controller.

Quick start, no config file::

    mip6-hac --listen 192.0.2.10:7443 --cert hac.pem --key hac.key --psk-file psk \\
             --store sqlite:///var/lib/mip6/sa.db --ha '[2001:db8::1]' --hoa-prefix 2001:db8:1::/64

EAP relayed to RADIUS (RFC 6618 §5.9): add ``--radius-server 192.0.2.5:1812
--radius-secret-file /etc/mip6/radius.secret`` (repeat ``--radius-server`` for fail-over).
EAP over Diameter (RFC 4072, TLS only): ``--aaa-backend diameter
--diameter-origin-host hac1.example.org --diameter-origin-realm example.org
--diameter-realm aaa.example.net --diameter-peer relay.example.org=192.0.2.6
--diameter-ca ca.pem --diameter-cert hac-diameter.pem --diameter-key hac-diameter.key``.

Everything else lives in ``--config FILE`` (TOML); a flag overrides the file. Bad
configuration prints a message naming the setting and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from aaa_mip6.errors import ConfigError

from .config import SETTINGS, load_config

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mip6-hac",
        description="Home Agent Controller (RFC 6618): authenticates Mobile Nodes over TLS "
                    "with a pre-shared key or with EAP relayed to an AAA server, and hands "
                    "each a security association and its Mobile IPv6 bootstrap data.",
        epilog="Flags override the config file. Every config key is documented in "
               "docs/configuration.md (section HAC); etc/hac.toml is a commented sample. "
               "Signals: SIGHUP reloads the PSK file, SIGTERM stops. "
               "Exit status 2: bad configuration. "
               "'mip6-hac revoke --spi N --config FILE' revokes an SA in the running HAC "
               "(see 'mip6-hac revoke --help').",
    )
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="TOML file with any of the settings (flags win)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to accept TLS on, e.g. 0.0.0.0:7443 or [::]:7443 "
                             "(listen)")
    parser.add_argument("--cert", metavar="PEM",
                        help="HAC certificate, leaf first, then its chain (tls.cert)")
    parser.add_argument("--key", metavar="PEM", help="its private key, unencrypted (tls.key)")
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
    parser.add_argument("--workers", metavar="N", help="worker processes sharing the port, "
                                                       "1..64 (workers)")
    parser.add_argument("--log-level", metavar="LEVEL",
                        help="debug, info, warning or error (log.level)")
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
    return {key: getattr(arguments, spec.metadata["flag"][2:].replace("-", "_"))
            for key, spec in SETTINGS.items() if spec.metadata["flag"]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["revoke"]:  # mip6-hac revoke --spi N: ask the running HAC
        from .sa_delivery import revoke_main
        return revoke_main(argv[1:])
    arguments = build_parser().parse_args(argv)
    try:
        config = load_config(arguments.config, config_overrides(arguments))
    except ConfigError as error:
        print(f"mip6-hac: {error}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .server import run  # Twisted only once the configuration is good

    try:
        return run(config)
    except ConfigError as error:  # files and sockets checked when the server starts
        print(f"mip6-hac: {error}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
