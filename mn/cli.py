"""``mip6-mn``: the Mobile Node's command line.

``mip6-mn bootstrap`` runs the RFC 6618 PSK exchange with a HAC over TLS and
prints the security association and bootstrap data it receives.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from twisted.python.failure import Failure

from aaa_mip6 import tvheaders as tv
from aaa_mip6.errors import ConfigError, InvalidInput
from aaa_mip6.messages import Provision
from aaa_mip6.sa import SCOPE_ALL
from aaa_mip6.tls import ClientTLS

from . import client
from .bootstrap import DEFAULT_SUITES, Bootstrapped, BootstrapFailed, PskBootstrap, header_text

EXIT_FAILED = 1  # the bootstrap ran and failed (HAC status, TLS, verification, timeout)
EXIT_USAGE = 2  # bad arguments or files: nothing was sent

KEY_HEADERS = frozenset({tv.MN_TO_HA_IKEY, tv.HA_TO_MN_IKEY, tv.MN_TO_HA_EKEY, tv.HA_TO_MN_EKEY})
NUMERIC_HEADERS = frozenset({tv.SPI, tv.SAS, tv.PORT})
SCOPES = {0: "signaling only", 1: "signaling and data"}

BOOTSTRAP_EPILOG = """\
The HAC certificate must chain to --ca and name HOST (a subjectAltName dNSName, or
iPAddress when HOST is an address; no wildcards, no CN).

--psk puts the key on the command line, where every local user can read it (ps,
/proc/PID/cmdline) and your shell history keeps it: prefer --psk-file.

Output: the SA and bootstrap data, one TV-header per line; keys are hidden unless
--show-keys. --json prints one object keyed by TV-header name, keys included, e.g.
  {"mn-id": "alice@example.org", "mip6-sas": 1, "mip6-spi": 4242,
   "mip6-mn-to-ha-ikey": "<hex>", ..., "mip6-ciphersuite": "{00 3C}", ...}

Exit status: 0 success; 1 the bootstrap failed (the message names the step and,
when the HAC refused, its status code, e.g. "HAC status 401 Unauthorized");
2 bad arguments or unreadable files.
"""


def parse_hac(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``v4:PORT`` or ``[v6]:PORT`` -> (host without brackets, port)."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--hac {text!r}: expected HOST:PORT with a port 1..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"--hac {text!r}: write an IPv6 address in brackets, [ADDR]:PORT")
    return host, int(port)


def parse_psk(text: str, source: str) -> bytes:
    """A hex PSK; errors say where it came from, never what it was."""
    try:
        psk = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"{source}: the PSK must be hex digits") from None
    if not psk:
        raise ConfigError(f"{source}: the PSK is empty")
    return psk


def read_psk_file(path: str) -> bytes:
    """The one hex key in ``path`` (``-`` = stdin); blank lines and ``#`` comments are ignored."""
    source = f"--psk-file {path}"
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read ({getattr(exc, 'strerror', None) or exc})")
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if len(keys) != 1:
        raise ConfigError(f"{source}: expected one line with the hex PSK, found {len(keys)}")
    return parse_psk(keys[0], source)


def result_headers(result: Bootstrapped) -> list[tuple[str, Any]]:
    """The result as (TV-header name, value) pairs in wire order, ``mn-id`` first."""
    provision = Provision.from_security_association(result.sa, result.bootstrap)
    return [(tv.MN_ID, result.sa.mn_id), *provision.headers()]


def as_json(result: Bootstrapped) -> dict[str, Any]:
    """TV-header name -> wire value (numbers for SPI, scope and port); keys included."""
    return {name: value if name in NUMERIC_HEADERS else header_text(name, value)
            for name, value in result_headers(result)}


def as_text(result: Bootstrapped, show_keys: bool) -> str:
    """Human-readable lines; keys replaced by a hint unless ``show_keys``."""
    pairs = result_headers(result)
    width = max(len(name) for name, _ in pairs)
    lines = []
    for name, value in pairs:
        text = header_text(name, value)
        if name in KEY_HEADERS and not show_keys:
            text = "(hidden; --show-keys prints it)"
        elif name == tv.CIPHERSUITE:
            text += f"  {result.sa.suite}"
        elif name == tv.SAS:
            text += f"  ({SCOPES[value]})"
        lines.append(f"{name:<{width}}  {text}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mip6-mn", description="Mobile Node for RFC 6618 (TLS-based Mobile IPv6 security).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    boot = commands.add_parser(
        "bootstrap", help="get a security association and bootstrap data from a HAC",
        description="Authenticate to a Home Agent Controller with a pre-shared key over TLS "
                    "(RFC 6618 §5.8) and print the SA and bootstrap data it provisions.",
        epilog=BOOTSTRAP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    boot.add_argument("--hac", required=True, metavar="HOST:PORT",
                      help="the HAC: DNS name, IPv4 address or [IPv6 address], and TCP port")
    boot.add_argument("--ca", required=True, type=Path, metavar="PEM",
                      help="CA certificate(s) the HAC certificate must chain to")
    boot.add_argument("--id", required=True, metavar="NAI", dest="mn_id",
                      help="this MN's identity (mn-id), e.g. alice@example.org")
    secret = boot.add_mutually_exclusive_group(required=True)
    secret.add_argument("--psk", metavar="HEX",
                        help="the pre-shared key in hex (visible in ps: prefer --psk-file)")
    secret.add_argument("--psk-file", metavar="FILE",
                        help="file holding the hex PSK on one line ('-' reads stdin)")
    boot.add_argument("--suites", default=",".join(DEFAULT_SUITES), metavar="NAME[,NAME...]",
                      help="ciphersuites to offer, preferred first (default: %(default)s)")
    boot.add_argument("--sas", type=int, choices=(0, 1), default=SCOPE_ALL,
                      help="requested scope: 0 signaling only, 1 signaling and data "
                           "(default: %(default)s)")
    boot.add_argument("--json", action="store_true",
                      help="print JSON keyed by TV-header name (always includes the keys)")
    boot.add_argument("--show-keys", action="store_true",
                      help="print the SA keys in the human-readable output")
    boot.add_argument("--cert", type=Path, metavar="PEM",
                      help="client certificate, if the HAC asks for one (with --key)")
    boot.add_argument("--key", type=Path, metavar="PEM", help="client certificate's private key")
    boot.add_argument("--timeout", type=float, default=client.DEFAULT_TIMEOUT, metavar="SECONDS",
                      help="give up after this long (default: %(default)s)")
    boot.add_argument("--draft01", action="store_true",
                      help="compatibility: draft-ietf-mext-mip6-tls-01 auth without labels")
    boot.set_defaults(handler=bootstrap_command)
    return parser


def _prepare(args: argparse.Namespace) -> tuple[ClientTLS, int, PskBootstrap]:
    host, port = parse_hac(args.hac)
    psk = parse_psk(args.psk, "--psk") if args.psk is not None else read_psk_file(args.psk_file)
    if not args.timeout > 0:
        raise ConfigError("--timeout must be a positive number of seconds")
    tls = ClientTLS(host, args.ca, cert_file=args.cert, key_file=args.key)
    machine = PskBootstrap(args.mn_id, psk, suites=args.suites.replace(",", " ").split(),
                           scope=args.sas, draft01=args.draft01)
    return tls, port, machine


def _run(tls: ClientTLS, port: int, machine: PskBootstrap, timeout: float):
    """Run one bootstrap on the global reactor; return its result or BootstrapFailed."""
    from twisted.internet import reactor

    outcome: list = []

    def start() -> None:
        running = client.bootstrap(reactor, tls, port, machine, timeout=timeout)
        running.addErrback(lambda failure: failure.trap(BootstrapFailed) and failure.value)
        running.addBoth(outcome.append)
        running.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()  # a bug, not a bootstrap failure: show the traceback
    return outcome[0]


def bootstrap_command(args: argparse.Namespace) -> int:
    try:
        tls, port, machine = _prepare(args)
    except InvalidInput as error:
        print(f"mip6-mn: {error}", file=sys.stderr)
        return EXIT_USAGE
    outcome = _run(tls, port, machine, args.timeout)
    if isinstance(outcome, BootstrapFailed):
        print(f"mip6-mn: bootstrap failed at {outcome}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(as_json(outcome), indent=2))
    else:
        print(as_text(outcome, args.show_keys))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.handler(args)

