"""``mip6-ar``: an access router's Local Key Exchange service (draft-liu-mobileip-lke-01,
profile in docs/lke.md) for one Linux link (root: raw sockets and a TUN device).

Signals: SIGHUP logs that nothing is reloaded (restart to change settings: the LBSAs
survive in ar.state), SIGUSR1 logs the status, SIGTERM/SIGINT stop.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from ipaddress import IPv6Network
from pathlib import Path

from aaa_mip6.iana import NEXT_HEADER_ICMPV6, NEXT_HEADER_IPV6, NEXT_HEADER_MOBILITY
from aaa_mip6 import pki, program
from aaa_mip6.errors import ConfigError, LkeError
from aaa_mip6.lke import codepoints, crypto
from aaa_mip6.twisted import rawip
from aaa_mip6.twisted.tun import TunnelError

from .config import SCHEMA, ArConfig
from .forwarder import Forwarder, TunnelDevice
from .server import ICMP_TYPES
from .store import LbsaFile

log = logging.getLogger("mip6.ar")
PROGRAM = "mip6-ar"
KEY_BITS = 2048

DESCRIPTION = """\
Access router side of the Local Key Exchange (draft-liu-mobileip-lke-01; docs/lke.md).
On the link of --interface it sends Router Advertisements (Home Agent bit set) carrying
the LKE Capability option with this router's RSA public key, answers Key Exchange
Requests from mobile nodes on the link, confirms each new LBSA with an authenticated DAD
probe, and keeps the LBSAs in --state (0600; they survive a restart). When a mobile node
that moved away sends a Binding Update under its LBSA for its previous care-of address,
this router becomes its temporary home agent: packets sent to that address are tunneled
(IPv6-in-IPv6) to the node's new care-of address through the TUN device --tun, and the
node's reverse-tunneled packets are forwarded, for the binding's lifetime.
Its RAs carry the link's prefix, the H bit and the LKE option; radvd may run beside it
for anything else (DNS servers, MTU, other prefixes).
"""

EXAMPLE = """\
example:
  mip6-ar --interface eth1 --address 2001:db8:a1::1 --prefix 2001:db8:a1::/64 \\
          --key /etc/mip6/ar.key --generate-key --state /var/lib/mip6/ar-lbsas
  mip6-ar --config /etc/mip6/ar.toml      # the same as keys (docs/configuration.md)

Needs CAP_NET_RAW and CAP_NET_ADMIN (root) and IPv6 forwarding on. Refusals are counted
by reason (docs/lke.md) in --status-file and in the SIGUSR1 status line.
Exit status 2: bad flags, files or missing privileges; 1: failed while running.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description=DESCRIPTION, epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML file with any key below; flags win over it")
    parser.add_argument("--interface", metavar="NAME",
                        help="the access link to serve (ar.interface)")
    parser.add_argument("--address", metavar="IPV6",
                        help="this router's global address on that link: MNs send their "
                             "Binding Updates to it and the tunnel leaves from it (ar.address)")
    parser.add_argument("--prefix", metavar="PREFIX",
                        help="the link's /64 to advertise as on-link (default: the /64 of "
                             "--address) (ar.prefix)")
    parser.add_argument("--key", metavar="FILE",
                        help="the router's RSA private key, PKCS#8 PEM (ar.key)")
    parser.add_argument("--generate-key", action="store_true", default=None,
                        help=f"create --key ({KEY_BITS}-bit RSA, 0600) if it does not exist "
                             f"(ar.generate_key)")
    parser.add_argument("--state", metavar="FILE",
                        help="where the LBSAs are kept, 0600, across restarts (ar.state)")
    parser.add_argument("--max-lbsas", metavar="N",
                        help="most LBSAs held at once; a Key Exchange Request beyond them is "
                             "refused (default 4096) (ar.max_lbsas)")
    parser.add_argument("--max-lifetime", metavar="SECONDS",
                        help="longest LBSA lifetime granted and advertised (default 7200) "
                             "(ar.max_lifetime)")
    parser.add_argument("--ra-interval", metavar="SECONDS",
                        help="seconds between Router Advertisements (default 3) "
                             "(ar.ra_interval)")
    parser.add_argument("--tun", metavar="NAME",
                        help="TUN device the previous care-of addresses are routed into "
                             "(default mip6ar0) (ar.tun)")
    parser.add_argument("--request-finished", action="store_true", default=None,
                        help="ask each MN whose Binding Update is accepted for a Finished "
                             "message from its new care-of address, and remove the binding "
                             "if none verifies within 3 s (ar.request_finished)")
    parser.add_argument("--code-points", metavar="SET",
                        help="experimental (default) or draft: the draft's own MH types and "
                             "option numbers, now assigned to other protocols "
                             "(ar.code_points)")
    parser.add_argument("--status-file", metavar="FILE",
                        help="write the LBSA count, bindings and refusal counters here as "
                             "JSON at each change (ar.status_file)")
    program.add_log_flags(parser)
    program.add_version_flag(parser)
    return parser


def load_key(config: ArConfig):
    """The private key of --key; with --generate-key a new one is written (0600) first."""
    if not config.key.exists() and config.generate_key:
        try:
            pki.write_private(config.key, crypto.encode_private_key(crypto.generate_key(KEY_BITS)))
        except OSError as error:
            raise ConfigError(f"ar.key (--key) {config.key}: cannot create "
                              f"({error.strerror or error})") from None
    try:
        data = config.key.read_bytes()
    except OSError as error:
        fix = "; --generate-key creates it" if not config.key.exists() else ""
        raise ConfigError(f"ar.key (--key) {config.key}: cannot read "
                          f"({error.strerror or error}){fix}") from None
    program.warn_if_exposed(config.key, "private key", log)
    try:
        return crypto.decode_private_key(data)
    except LkeError as error:
        raise ConfigError(f"ar.key (--key) {config.key}: {error}") from None


def open_sockets(config: ArConfig) -> dict:
    """The raw sockets; PrivilegeError (a ConfigError) naming the capability."""
    return {
        "icmp": rawip.open_raw(NEXT_HEADER_ICMPV6, config.interface, icmp_types=ICMP_TYPES),
        "mobility": rawip.open_raw(NEXT_HEADER_MOBILITY),
        "tunnel": rawip.open_raw(NEXT_HEADER_IPV6),
        "sender": rawip.open_sender(),
    }


def open_device(config: ArConfig) -> TunnelDevice:
    try:
        return TunnelDevice.open(config.tun)
    except TunnelError as error:
        raise rawip.PrivilegeError(f"ar.tun (--tun) {config.tun}: {error} (needs "
                                   f"CAP_NET_ADMIN: run as root)") from None


def ipv6_forwarding(path: Path = Path("/proc/sys/net/ipv6/conf/all/forwarding")) -> bool:
    """Whether this host forwards IPv6 (unknown counts as on: nothing to warn about)."""
    try:
        return path.read_text().strip() != "0"
    except OSError:
        return True


def make_core(config: ArConfig, private_key, link: rawip.Interface):
    from aaa_mip6.lke.ar import ArCore, ArPolicy

    codes = codepoints.DRAFT if config.code_points == "draft" else codepoints.EXPERIMENTAL
    if link.link_local is None:
        raise ConfigError(f"ar.interface (--interface) {config.interface}: has no IPv6 "
                          f"link-local address (is it up, with IPv6 on?)")
    prefix = config.prefix or IPv6Network(f"{config.address}/64", strict=False)
    policy = ArPolicy(link_local=link.link_local, ar_address=config.address,
                      prefixes=(prefix,), link_layer_address=link.link_layer_address or None,
                      max_lifetime=int(config.max_lifetime), max_lbsas=config.max_lbsas,
                      finished_request=config.request_finished, codes=codes)
    return ArCore(policy, private_key)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = SCHEMA.load(args.config, SCHEMA.overrides(args))
        program.configure_logging(PROGRAM, config.log_level, config.log_format)
        private_key = load_key(config)
        link = rawip.interface(config.interface)
        if config.address not in link.addresses:
            raise ConfigError(f"ar.address (--address) {config.address}: not an address of "
                              f"{config.interface}; add it (ip -6 address add ... dev "
                              f"{config.interface}) or name the right one")
        core = make_core(config, private_key, link)
        store = LbsaFile(config.state)
        sockets = open_sockets(config)
        device = open_device(config)
    except ConfigError as error:
        return program.fail(PROGRAM, str(error), program.EXIT_CONFIG)
    from twisted.internet import reactor

    from .server import AccessRouter

    forwarder = Forwarder(device, sockets["tunnel"], config.address)
    router = AccessRouter(reactor, core, interface=config.interface,
                          interface_index=link.index, ra_interval=config.ra_interval,
                          store=store, forwarder=forwarder, status_path=config.status_file,
                          sockets=sockets)
    exit_status = [program.EXIT_OK]

    def start() -> None:
        try:
            router.start()
        except ConfigError as error:
            exit_status[0] = program.fail(PROGRAM, str(error), program.EXIT_CONFIG)
            reactor.stop()
            return
        log.info("mip6-ar serving %s (%s, %s): LKE capability advertised every %g s",
                 config.interface, link.link_local, config.address, config.ra_interval)
        if not ipv6_forwarding():
            log.warning("IPv6 forwarding is off: packets the MNs reverse-tunnel will not be "
                        "forwarded; sysctl -w net.ipv6.conf.all.forwarding=1")

    def status() -> None:
        log.warning("status: %s", json.dumps(router.status(), sort_keys=True))

    def reload() -> None:
        log.warning("SIGHUP: nothing to reload; restart mip6-ar to change its settings "
                    "(LBSAs are kept in %s)", config.state)

    program.install_signals(reactor.callFromThread, reload=reload, status=status)
    reactor.addSystemEventTrigger("before", "shutdown", router.stop)
    reactor.callWhenRunning(start)
    reactor.run()
    device.close()
    return exit_status[0]


if __name__ == "__main__":
    sys.exit(main())
