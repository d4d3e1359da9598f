"""``mip6-mn``: the Mobile Node's command line.

``mip6-mn bootstrap`` runs the RFC 6618 PSK or EAP exchange with a HAC over TLS and
prints the security association and bootstrap data it receives.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from aaa_mip6 import program
from aaa_mip6 import tvheaders as tv
from aaa_mip6.addresses import parse_host_port
from aaa_mip6.errors import ConfigError, InvalidInput
from aaa_mip6.keylog import SaKeyLog, tls_keylog_writer
from aaa_mip6.messages import Provision
from aaa_mip6.sa import SCOPE_ALL, Bootstrap
from aaa_mip6.twisted.tls import ClientTLS
from aaa_mip6.twisted.tun import TunnelError, open_tun

from . import actions, client, hacs, lke, mobility, session, tunnel
from .bootstrap import (
    DEFAULT_SUITES,
    BootstrapFailed,
    BootstrapMachine,
    Bootstrapped,
    EapBootstrap,
    PskBootstrap,
    header_text,
)
from .eap import EapCredentials
from .eap.peer import EapPeer
from .hacset import HacSet

EAP_METHODS = ("md5", "gtc", "mschapv2", "pwd", "peap", "ttls", "tls", "sim", "aka", "aka-prime")
SUBSCRIBER_METHODS = ("sim", "aka", "aka-prime")  # a (U)SIM instead of a password

PROGRAM = "mip6-mn"
log = logging.getLogger("mip6.mn")

KEY_HEADERS = frozenset({tv.MN_TO_HA_IKEY, tv.HA_TO_MN_IKEY, tv.MN_TO_HA_EKEY, tv.HA_TO_MN_EKEY})
NUMERIC_HEADERS = frozenset({tv.SPI, tv.SAS, tv.PORT})
SCOPES = {0: "signaling only", 1: "signaling and data"}

BOOTSTRAP_EPILOG = """\
The HAC certificate must chain to --ca and name HOST (a subjectAltName dNSName, or
iPAddress when HOST is an address; no wildcards, no CN).

--psk puts the key on the command line, where every local user can read it (ps,
/proc/PID/cmdline) and your shell history keeps it: prefer --psk-file (and
--password-file over --password).

EAP instead of a PSK (the HAC relays it to its AAA server):
  mip6-mn bootstrap --hac hac.example:7443 --ca ca.pem --id alice@example.org \\
      --eap ttls --phase2 pap --anonymous-identity anonymous@example.org \\
      --password-file alice.pw --eap-ca radius-ca.pem
  --eap tls takes the client certificate from --cert/--key.

EAP-SIM, EAP-AKA or EAP-AKA' with a USIM (hostapd hlr_auc_gw format):
  mip6-mn bootstrap --hac hac.example:7443 --ca ca.pem --id 0232010000000000@example.org \
      --eap aka --usim alice.usim --realm example.org
  The identity is 1/0/6<IMSI>@REALM, or the pseudonym or re-authentication identity the
  server gave last time (kept in --eap-state with the USIM's SQN).

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
    try:
        host, port = parse_host_port(text, lowest=1)
    except ValueError as error:
        raise ConfigError(f"--hac {text!r}: {error}") from None
    if port is None and ":" in host:
        raise ConfigError(f"--hac {text!r}: write an IPv6 address in brackets, [ADDR]:PORT")
    if port is None or not host:
        raise ConfigError(f"--hac {text!r}: expected HOST:PORT with a port 1..65535")
    return host, port


def parse_psk(text: str, source: str) -> bytes:
    """A hex PSK; errors say where it came from, never what it was."""
    try:
        psk = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"{source}: the PSK must be hex digits") from None
    if not psk:
        raise ConfigError(f"{source}: the PSK is empty")
    return psk


def _read_secret_file(path: str, source: str) -> str:
    """The text of ``path`` (``-`` = stdin); ConfigError naming ``source``, never the text.

    Warns (once) when others may read the file."""
    if path != "-":
        program.warn_if_exposed(Path(path), source.partition(" ")[0], log)
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read ({getattr(exc, 'strerror', None) or exc})")


def read_psk_file(path: str) -> bytes:
    """The one hex key in ``path`` (``-`` = stdin); blank lines and ``#`` comments are ignored."""
    source = f"--psk-file {path}"
    text = _read_secret_file(path, source)
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


def add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every subcommand that bootstraps with a HAC shares."""
    parser.add_argument("--hac", required=True, action="append", metavar="HOST:PORT[,...]",
                        help="the HAC: DNS name, IPv4 address or [IPv6 address], and TCP port; "
                             "several (comma-separated or the flag repeated) and a name with "
                             "several addresses are tried in order, with backoff")
    parser.add_argument("--ca", required=True, type=Path, metavar="PEM",
                        help="CA certificate(s) the HAC certificate must chain to")
    parser.add_argument("--id", required=True, metavar="NAI", dest="mn_id",
                        help="this MN's identity (mn-id), e.g. alice@example.org")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--psk", metavar="HEX",
                        help="the pre-shared key in hex (visible in ps: prefer --psk-file)")
    secret.add_argument("--psk-file", metavar="FILE",
                        help="file holding the hex PSK on one line ('-' reads stdin)")
    secret.add_argument("--eap", choices=EAP_METHODS, metavar="METHOD",
                        help="authenticate with EAP instead of a PSK (RFC 6618 §5.9): "
                             + ", ".join(EAP_METHODS))
    _add_eap_arguments(parser)
    parser.add_argument("--suites", default=",".join(DEFAULT_SUITES), metavar="NAME[,NAME...]",
                        help="ciphersuites to offer, preferred first (default: %(default)s)")
    parser.add_argument("--sas", type=int, choices=(0, 1), default=SCOPE_ALL,
                        help="requested scope: 0 signaling only, 1 signaling and data "
                             "(default: %(default)s)")
    parser.add_argument("--cert", type=Path, metavar="PEM",
                        help="client certificate, if the HAC asks for one (with --key); "
                             "with --eap tls also the EAP-TLS client certificate")
    parser.add_argument("--key", type=Path, metavar="PEM", help="client certificate's private key")
    parser.add_argument("--timeout", type=float, default=client.DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="give up after this long (default: %(default)s)")
    parser.add_argument("--draft01", action="store_true",
                        help="compatibility: draft-ietf-mext-mip6-tls-01 auth without labels")
    parser.add_argument("--tls-keylog", type=Path, metavar="FILE",
                        help="append the TLS secrets to FILE (SSLKEYLOGFILE format, 0600) so "
                             "Wireshark can decrypt the MN-HAC exchange")
    parser.add_argument("--sa-keylog", type=Path, metavar="FILE",
                        help="append each SA's keys to FILE (Wireshark esp_sa records, 0600) "
                             "so Wireshark can read the MN-HA packets (docs/operations.md)")


def _add_eap_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of --eap (the EAP peer's credentials)."""
    eap = parser.add_argument_group("EAP (with --eap)")
    eap.add_argument("--identity", metavar="NAME",
                     help="the EAP (inner) identity (default: --id)")
    eap.add_argument("--anonymous-identity", metavar="NAME",
                     help="outer identity for ttls and peap, e.g. anonymous@example.org")
    password = eap.add_mutually_exclusive_group()
    password.add_argument("--password", metavar="PW",
                          help="the EAP password (visible in ps: prefer --password-file)")
    password.add_argument("--password-file", metavar="FILE",
                          help="file holding the EAP password on its first line ('-' reads "
                               "stdin)")
    eap.add_argument("--phase2", choices=("pap", "mschapv2"),
                     help="the inner method of ttls")
    eap.add_argument("--eap-ca", type=Path, metavar="PEM",
                     help="CA the EAP server's certificate must chain to (tls, ttls, peap)")
    eap.add_argument("--eap-tls-max", choices=("1.2", "1.3"), default="1.3",
                     help="highest TLS version inside tls, ttls and peap (default: %(default)s)")
    eap.add_argument("--usim", type=Path, metavar="FILE",
                     help="sim, aka, aka-prime: the USIM, one line 'IMSI Ki OPc AMF SQN' "
                          "(hostapd hlr_auc_gw Milenage format); keep it 0600")
    eap.add_argument("--sim-triplets", type=Path, metavar="FILE",
                     help="sim: a SIM with fixed triplets, 'IMSI:Kc:SRES:RAND' a line")
    eap.add_argument("--realm", metavar="REALM",
                     help="sim, aka, aka-prime: realm of the permanent identity "
                          "(1|0|6<IMSI>@REALM; default: none)")
    eap.add_argument("--eap-state", type=Path, metavar="FILE",
                     help="sim, aka, aka-prime: the USIM's SQN, pseudonym and fast "
                          "re-authentication state (default: the --usim or --sim-triplets "
                          "file + .state)")
    eap.add_argument("--aka-network-name", metavar="NAME",
                     help="aka-prime: the access network name the server must bind the keys "
                          "to (AT_KDF_INPUT); default: accept the server's")


def read_password_file(path: str) -> str:
    """The first line of ``path`` (``-`` = stdin); errors never show the password."""
    source = f"--password-file {path}"
    lines = _read_secret_file(path, source).splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"{source}: the first line (the password) is empty")
    return lines[0]


def eap_credentials(args: argparse.Namespace) -> EapCredentials:
    """The EAP peer's credentials from the --eap options; ConfigError for missing ones."""
    password = args.password
    if args.password_file is not None:
        password = read_password_file(args.password_file)
    if args.eap in SUBSCRIBER_METHODS:
        return subscriber_credentials(args)
    if args.eap == "tls":
        if args.cert is None or args.key is None:
            raise ConfigError("--eap tls needs --cert and --key")
    elif password is None:
        raise ConfigError(f"--eap {args.eap} needs --password or --password-file")
    if args.eap in ("tls", "ttls", "peap") and args.eap_ca is None:
        raise ConfigError(f"--eap {args.eap} needs --eap-ca to verify the EAP server")
    return EapCredentials(
        args.identity or args.mn_id, password, anonymous_identity=args.anonymous_identity,
        client_cert=args.cert, client_key=args.key, ca_cert=args.eap_ca,
        phase2=args.phase2, tls_max_version=args.eap_tls_max)


def subscriber_credentials(args: argparse.Namespace) -> EapCredentials:
    """EAP-SIM/AKA/AKA' credentials: the (U)SIM file, read once here so a bad one is a usage
    error before anything is sent, and the state file beside it."""
    from .eap.subscriber import load_triplets, load_usim

    if (args.usim is None) == (args.sim_triplets is None):
        raise ConfigError(f"--eap {args.eap} needs --usim FILE"
                          + (" or --sim-triplets FILE (one of them)" if args.eap == "sim" else ""))
    if args.sim_triplets is not None and args.eap != "sim":
        raise ConfigError(f"--sim-triplets serves --eap sim only; --eap {args.eap} needs --usim")
    source = args.usim or args.sim_triplets
    (load_usim if args.usim else load_triplets)(source)
    return EapCredentials(
        args.identity or args.mn_id, usim=args.usim, sim_triplets=args.sim_triplets,
        eap_state=args.eap_state or Path(f"{source}.state"), realm=args.realm,
        network_name=args.aka_network_name)


_LOG_FORMAT_HELP = ("how the log lines on stderr look: text (default) or json, one object a "
                    "line with time, level, program, event and message; the results on "
                    "stdout are --json's")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mip6-mn", description="Mobile Node for RFC 6618 (TLS-based Mobile IPv6 security).")
    program.add_version_flag(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    boot = commands.add_parser(
        "bootstrap", help="get a security association and bootstrap data from a HAC",
        description="Authenticate to a Home Agent Controller over TLS with a pre-shared key "
                    "(RFC 6618 §5.8) or EAP (§5.9) and print the SA and bootstrap data it "
                    "provisions.",
        epilog=BOOTSTRAP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    boot.add_argument("--json", action="store_true",
                      help="print JSON keyed by TV-header name (always includes the keys)")
    boot.add_argument("--show-keys", action="store_true",
                      help="print the SA keys in the human-readable output")
    boot.add_argument("--log-format", choices=program.LOG_FORMATS, default="text",
                      metavar="FORMAT", help=_LOG_FORMAT_HELP)
    add_bootstrap_arguments(boot)
    boot.set_defaults(handler=bootstrap_command)
    _add_mobility_parsers(commands)
    return parser


class _Credentials:
    """What the MN authenticates with, from its flags and files. :meth:`load` reads them
    (again on SIGHUP, so a key changed at the HAC reaches the next rebootstrap)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.options = dict(suites=args.suites.replace(",", " ").split(), scope=args.sas,
                            draft01=args.draft01)
        self._secret: bytes | EapCredentials | None = None

    def load(self) -> None:
        args = self.args
        if args.eap is not None:
            self._secret = eap_credentials(args)
        elif args.psk is not None:
            self._secret = parse_psk(args.psk, "--psk")
        else:
            self._secret = read_psk_file(args.psk_file)

    def make_machine(self) -> BootstrapMachine:
        """A fresh bootstrap machine with the credentials last loaded."""
        args = self.args
        if args.eap is not None:
            return EapBootstrap(args.mn_id, EapPeer(args.eap, self._secret), **self.options)
        return PskBootstrap(args.mn_id, self._secret, **self.options)


def ineffective_options(args: argparse.Namespace) -> list[str]:
    """Options given that do nothing with the others given, one warning text each."""
    notes = []
    eap = getattr(args, "eap", None)
    if eap is None:
        given = [flag for flag, value in (
            ("--password", args.password), ("--password-file", args.password_file),
            ("--identity", args.identity), ("--anonymous-identity", args.anonymous_identity),
            ("--phase2", args.phase2), ("--eap-ca", args.eap_ca)) if value is not None]
        notes += [f"{flag} has no effect without --eap" for flag in given]
    else:
        if args.phase2 is not None and eap != "ttls":
            notes.append(f"--phase2 has no effect with --eap {eap} (only with ttls)")
        if args.anonymous_identity is not None and eap not in ("ttls", "peap"):
            notes.append(f"--anonymous-identity has no effect with --eap {eap} "
                         "(only with ttls and peap)")
        if args.eap_ca is not None and eap not in ("tls", "ttls", "peap"):
            notes.append(f"--eap-ca has no effect with --eap {eap} (only with tls, ttls, peap)")
        if eap == "tls" and (args.password is not None or args.password_file is not None):
            notes.append("--password and --password-file have no effect with --eap tls")
    if getattr(args, "show_keys", False) and args.json:
        notes.append("--show-keys has no effect with --json (which always prints the keys)")
    watch = getattr(args, "watch", DEFAULT_WATCH)
    if watch != DEFAULT_WATCH:
        if args.care_of:
            notes.append("--watch has no effect with --care-of (the care-of address is fixed)")
        elif not args.keep:
            notes.append("--watch has no effect without --keep")
    return notes


def parse_hacs(values: list[str]) -> list[tuple[str, int]]:
    """``--hac`` (repeated, comma-separated) as (host, port) pairs in order."""
    return [parse_hac(text) for text in hacs.split_hac_flags(values)]


def _prepare(args: argparse.Namespace) -> tuple[HacSet, _Credentials]:
    """The HACs (with their TLS settings) and the credentials (loaded); warns once about
    options without effect and secret files others can read."""
    from twisted.internet import reactor

    pairs = parse_hacs(args.hac)
    credentials = _Credentials(args)
    credentials.load()
    if not args.timeout > 0:
        raise ConfigError("--timeout must be a positive number of seconds")
    if args.key is not None:
        program.warn_if_exposed(args.key, "--key", log)
    keylog = _open_keylog(args.tls_keylog, "--tls-keylog", tls_keylog_writer)
    hac_set = HacSet(reactor, pairs, lambda host: ClientTLS(
        host, args.ca, cert_file=args.cert, key_file=args.key, keylog=keylog))
    credentials.make_machine()  # bad options fail here, before any connection
    for note in ineffective_options(args):
        log.warning("%s", note)
    return hac_set, credentials


def _open_keylog(path: Path | None, flag: str, opener):
    """``opener(path)``, or None without the flag; a file that cannot be opened is a
    usage error naming the flag."""
    if path is None:
        return None
    try:
        return opener(path)
    except OSError as error:
        raise ConfigError(f"{flag} {path}: {error.strerror}") from None


def _sa_keylog(args: argparse.Namespace):
    """The listener that appends each bootstrap's SA to --sa-keylog, or None."""
    keylog = _open_keylog(args.sa_keylog, "--sa-keylog", SaKeyLog)
    if keylog is None:
        return None

    def record(result: Bootstrapped) -> None:
        if result.bootstrap is not None:
            keylog.record(result.sa, result.bootstrap.home_agent)

    return record


def _setup_logging(fmt: str) -> None:
    """Warnings and the session's log lines to stderr, one line each, named mip6-mn."""
    program.configure_logging(PROGRAM, "warning", fmt, f"{PROGRAM}: %(message)s")


def _run(hac_set: HacSet, make_machine, timeout: float):
    """Run one bootstrap (over the HACs in turn) on the global reactor; return its result or
    BootstrapFailed."""
    from twisted.internet import reactor

    outcome: list = []

    def failed(failure: Failure) -> BootstrapFailed:
        failure.trap(BootstrapFailed)
        return failure.value

    def start() -> None:
        running = hac_set.bootstrap(make_machine, timeout)
        running.addErrback(failed)
        running.addBoth(outcome.append)
        running.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    return outcome[0]


def _bootstrap_failure(hac_set: HacSet, failure: BootstrapFailed) -> str:
    """The HAC last tried (with the address of a name) and why it failed."""
    return f"bootstrap with the HAC {hac_set.last_used or hac_set} failed at {failure}"


def _unexpected(failure: Failure) -> str:
    """One line for an error the program did not foresee (a bug): no traceback for the
    user, the type and message for the bug report."""
    return f"unexpected error: {failure.type.__name__}: {failure.getErrorMessage()}"


def bootstrap_command(args: argparse.Namespace) -> int:
    try:
        hac_set, credentials = _prepare(args)
        record_sa = _sa_keylog(args)
    except InvalidInput as error:
        return program.fail(PROGRAM, str(error), program.EXIT_CONFIG)
    outcome = _run(hac_set, credentials.make_machine, args.timeout)
    if isinstance(outcome, Failure):
        return program.fail(PROGRAM, _unexpected(outcome))
    if isinstance(outcome, BootstrapFailed):
        return program.fail(PROGRAM, _bootstrap_failure(hac_set, outcome))
    if record_sa is not None:
        record_sa(outcome)
    if args.json:
        print(json.dumps(as_json(outcome), indent=2))
    else:
        print(as_text(outcome, args.show_keys))
    return program.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_format)
    return args.handler(args)


# --------------------------------------------------------------------------- register / up

REGISTER_EPILOG = """\
Bootstraps with the HAC (same options as `mip6-mn bootstrap`), then sends a protected
Binding Update to the home agent the HAC named and prints the binding it acknowledged:
  registered mn@example.org home 2001:db8:1::5 care-of 192.0.2.7 ha [2001:db8::1]:7872
    spi 4242 lifetime 600 s
--json prints one JSON object per event instead ({"event": "registered", "spi": ...}).

Without --keep the MN leaves the binding in place and exits; it lapses after its
lifetime. With --keep it stays: refreshes before the lifetime ends, hands over when
the address that routes to the home agent changes (--watch: it re-registers the new
care-of address under the same SA), goes back to the HAC when the HA answers 176
(REINIT_SA_WITH_HAC), the SA nears its end or the HA stops answering (no BA to 7
transmissions: reason home-agent-silent; the HAC names a live HA), and on Ctrl-C or
SIGTERM de-registers and exits. Several --hac are tried in order, the one that last
gave an SA first. New SAs the HA refuses again at once, and a HAC out of reach or answering
500, 503 or 504, are tried again after 1, 2, 4, 8 s (never before the HAC's
retry-after); after 5 in a row the MN gives up ("failed ... reason rebootstrap-loop",
exit status 1). A HAC that refuses the MN ends it at once (rebootstrap-failed).

While the HA does not answer, the BU is sent again (at most 7 times) and a line says
so: "retrying ... attempt 2 of 7 sent, next try in 3 s". --timeout bounds the bootstrap
and the first registration together.

Signals: SIGUSR1 prints a status event; SIGHUP reads --psk-file or --password-file
again for the next bootstrap; SIGTERM (Ctrl-C) de-registers (--keep) and exits.

Exit status: 0 registered; 1 bootstrap or registration failed (one line naming the HAC
or the home agent, the step and why, e.g. "BA status 129"); 2 bad arguments, files or
a --care-of address this host does not have.
"""

UP_EPILOG = """\
Like `mip6-mn register --keep`, and also brings up a TUN interface (root) holding the
home address(es), so ordinary programs' traffic to the --route prefixes travels
through the protected tunnel, e.g.
  mip6-mn up --hac hac.example:4433 --ca ca.pem --id mn@example.org \\
      --psk-file mn.psk --route 2001:db8:cafe::/64
  ping -I 2001:db8:1::5 2001:db8:cafe::1
The home address gets the home prefix length the HAC sent (so the home network is
reached through the tunnel too). A route that would cover the HA itself (e.g.
--route default) is made safe by a host route for the HA over its current path.
When the address that routes to the home agent changes (a new link, the old address
gone), the MN hands over (--watch): it re-registers the new care-of address under the
same SA, and connections from the home address carry on.
Ctrl-C or SIGTERM de-registers, removes the interface and exits.
"""


DEFAULT_WATCH = 1.0  # seconds between checks of the address that routes to the HA


def _add_mobility_parsers(commands) -> None:
    register = commands.add_parser(
        "register", help="bootstrap, then register with the home agent",
        description="Bootstrap with a HAC, then register the home address with the home "
                    "agent (protected Binding Update / Acknowledgement, RFC 6618 §6).",
        epilog=REGISTER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_registration_arguments(register)
    register.add_argument("--keep", action="store_true",
                          help="stay registered (refresh, rebootstrap on 176) until Ctrl-C, "
                               "then de-register")
    register.set_defaults(handler=register_command)
    up = commands.add_parser(
        "up", help="register and tunnel this host's traffic through the home agent (root)",
        description="Bootstrap, register, and bring up a TUN interface with the home address "
                    "whose traffic is tunneled to the home agent.",
        epilog=UP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_registration_arguments(up)
    up.add_argument("--tun", default="mip6mn0", metavar="NAME",
                    help="TUN interface name (default: %(default)s)")
    up.add_argument("--route", action="append", default=[], metavar="PREFIX",
                    help="send traffic for PREFIX through the tunnel; 'default' for all; "
                         "repeatable")
    up.set_defaults(handler=up_command, keep=True)


def _add_registration_arguments(parser: argparse.ArgumentParser) -> None:
    add_bootstrap_arguments(parser)
    parser.add_argument("--care-of", metavar="ADDR",
                        help="care-of address to register from (default: the local address "
                             "that routes to the home agent)")
    parser.add_argument("--lifetime", type=int, default=mobility.DEFAULT_LIFETIME,
                        metavar="SECONDS",
                        help="binding lifetime to ask for (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument("--log-format", choices=program.LOG_FORMATS, default="text",
                        metavar="FORMAT", help=_LOG_FORMAT_HELP)
    parser.add_argument("--watch", type=float, default=DEFAULT_WATCH, metavar="SECONDS",
                        help="while the MN keeps its binding (register --keep, up): check "
                             "this often whether the local address that routes to the home "
                             "agent changed and, when it did, hand over (re-register it as "
                             "the care-of address under the same SA); 0 never; not with "
                             "--care-of, which fixes the care-of address "
                             "(default: %(default)s)")
    lke = parser.add_argument_group("Local Key Exchange (docs/lke.md; root)")
    lke.add_argument("--lke", action="store_true",
                     help="learn LKE-capable access routers from their Router Advertisements, "
                          "set up a local binding security association with the AR of each "
                          "care-of address after its home registration, and on a move ask "
                          "the previous AR to forward what is sent to the previous care-of "
                          "address (mip6-ar on the routers)")
    lke.add_argument("--lke-tun", default="mip6lke0", metavar="NAME",
                     help="TUN interface holding the previous care-of addresses an AR "
                          "forwards (default: %(default)s)")


class _Reporter:
    """Prints what happens to the binding: one line (or JSON object) per event."""

    def __init__(self, mn_id: str, as_json_lines: bool):
        self.mn_id = mn_id
        self.as_json_lines = as_json_lines
        self.session: session.MobileSession | None = None
        self.lke: lke.LocalKeyExchange | None = None  # with --lke

    @property
    def home_agent(self) -> str:
        machine = self.session.machine
        return session.home_agent_text(machine.home_agent, machine.care_of)

    def event(self, action) -> None:
        if isinstance(action, actions.Registered):
            self._print("registered", session.describe_binding(action.binding))
        elif isinstance(action, actions.Retrying):
            self._print("retrying", {"ha": self.home_agent, "attempt": action.attempt,
                                     "of": action.max_attempts,
                                     "gives-up-in" if action.last else "next-try-in":
                                         round(action.next_in, 1)})
        elif isinstance(action, actions.Deregistered):
            self._print("deregistered", {})
        elif isinstance(action, actions.Rebootstrap):
            self._print("rebootstrap", {"reason": action.reason})
        elif isinstance(action, actions.RegistrationFailed):
            self._print("failed", {"reason": action.reason, "status": action.status})

    def status(self) -> None:
        """SIGUSR1: the binding (if any) and the session's counters, as one event."""
        mobile = self.session
        binding = mobile.machine.binding
        self._print("status", {
            "ha": self.home_agent, "care-of": str(mobile.machine.care_of),
            "registered": binding is not None,
            "spi": mobile.machine.sa.spi,
            "expires-in": None if binding is None else
            max(0, round(binding.expires_at - mobile.reactor.seconds())),
            "drops": dict(sorted(mobile.machine.drops.items())),
            "foreign-datagrams": mobile.foreign_datagrams,
            "send-failures": mobile.send_failures,
            **({"lke": self.lke.status()} if self.lke is not None else {})})

    def status_before(self, step: str) -> None:
        """SIGUSR1 before there is a session: what the MN is doing."""
        self._print("status", {"registered": False, "during": step})

    def _print(self, event: str, fields: dict[str, Any]) -> None:
        if self.as_json_lines:
            print(json.dumps({"event": event, "mn-id": self.mn_id, **fields}), flush=True)
            return
        text = " ".join(f"{name} {value}" for name, value in fields.items()
                        if value is not None)
        if event == "registered":
            text = (f"home {fields['home-address']}"
                    + (f" ({fields['home-address4']})" if fields["home-address4"] else "")
                    + f" care-of {fields['care-of-address']} ha {self.home_agent}"
                    f" spi {fields['spi']} lifetime {fields['lifetime']} s")
        elif event == "retrying":
            then = (f"giving up in {fields['gives-up-in']:g} s" if "gives-up-in" in fields
                    else f"next try in {fields['next-try-in']:g} s")
            text = (f"no answer from the home agent {fields['ha']} yet: Binding Update "
                    f"attempt {fields['attempt']} of {fields['of']} sent, {then}")
        print(f"{event} {self.mn_id} {text}".rstrip(), flush=True)


def _check_care_of(text: str | None):
    """``--care-of`` as an address this host has (bound to a UDP socket and let go), or
    None; ConfigError naming the flag otherwise, before anything is sent."""
    if not text:
        return None
    try:
        care_of = ip_address(text)
    except ValueError:
        raise ConfigError(f"--care-of {text!r}: not an IP address") from None
    family = socket.AF_INET if care_of.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(care_of), 0))
    except OSError as error:
        raise ConfigError(f"--care-of {care_of}: not an address of this host "
                          f"({error.strerror or error})") from None
    return care_of


def _check_tun(name: str) -> None:
    """``up``: create the TUN interface once and let it go, so that a missing right or a
    taken name is a start-up error before anything is sent."""
    try:
        fd, _ = open_tun(name)
    except ConfigError as error:
        raise ConfigError(f"--tun: {error}") from None
    except TunnelError as error:
        raise ConfigError(f"--tun {name}: {error}") from None
    os.close(fd)


def _tunnel_for(args: argparse.Namespace, binding: mobility.Binding, bootstrap: Bootstrap):
    """The TUN interface for ``mip6-mn up``: home addresses with the home prefix lengths."""
    addresses = []
    home6 = None if binding.home_address.ipv4_mapped else binding.home_address
    home4 = binding.home_address4 or binding.home_address.ipv4_mapped
    if home6 is not None:
        length = bootstrap.home_prefix6.prefixlen if bootstrap.home_prefix6 else 128
        addresses.append(ip_interface(f"{home6}/{length}"))
    if home4 is not None:
        length = bootstrap.home_prefix4.prefixlen if bootstrap.home_prefix4 else 32
        addresses.append(ip_interface(f"{home4}/{length}"))
    routes = [network for text in args.route for network in tunnel.parse_route(text)]
    routes = [network for network in routes
              if network.version in {address.version for address in addresses}]
    home_agent = bootstrap.home_agent
    reachable = [address for address in (home_agent.address6, home_agent.address4) if address]
    return tunnel.Tunnel.open(args.tun, addresses, routes, keep_reachable=reachable)


def _stay(reactor, mobile: session.MobileSession, args: argparse.Namespace,
          device: tunnel.Tunnel | None) -> None:
    """Keep the binding: hand over as --watch says, de-register at shutdown.

    Refresh and rebootstrap need nothing here: the session does them on its own.
    """
    if args.watch > 0 and not args.care_of:
        mobile.follow_care_of(args.watch)

    @defer.inlineCallbacks
    def shut_down():
        yield mobile.stop(deregister=True)
        if device is not None:
            device.close()

    reactor.addSystemEventTrigger("before", "shutdown", shut_down)


def _reload(credentials: _Credentials) -> None:
    """SIGHUP: read the PSK or password file again for the next (re)bootstrap; a file
    that no longer reads keeps the credentials loaded before."""
    try:
        credentials.load()
    except InvalidInput as error:
        log.warning("reload: %s; keeping the credentials loaded before", error)
        return
    log.warning("reload: credentials read again for the next bootstrap")


def _mobility_command(args: argparse.Namespace, with_tunnel: bool) -> int:
    try:
        hac_set, credentials = _prepare(args)
        record_sa = _sa_keylog(args)
        care_of = _check_care_of(args.care_of)
        if args.lifetime <= 0:
            raise ConfigError("--lifetime must be a positive number of seconds")
        if not args.watch >= 0:
            raise ConfigError("--watch must be 0 (never) or a positive number of seconds")
        for text in getattr(args, "route", ()):
            tunnel.parse_route(text)
        if with_tunnel:
            _check_tun(args.tun)
        from twisted.internet import reactor

        reporter = _Reporter(args.mn_id, args.json)
        local_key_exchange = lke.open_for(reactor, args.lke_tun, reporter._print) \
            if args.lke else None
        reporter.lke = local_key_exchange
    except InvalidInput as error:
        return program.fail(PROGRAM, str(error), program.EXIT_CONFIG)
    exit_status = [program.EXIT_RUNTIME]
    registered = [False]
    step = [f"the bootstrap with the HAC {hac_set}"]  # for a signal that stops it early
    told = [False]  # a failure line was printed

    def on_event(action) -> None:
        if not registered[0]:  # the first registration is reported once it is complete
            if isinstance(action, actions.Retrying):
                reporter.event(action)
            return
        reporter.event(action)
        if local_key_exchange is not None and isinstance(action, actions.Registered):
            local_key_exchange.registered(action.binding.care_of)
        if isinstance(action, actions.RegistrationFailed) and args.keep and reactor.running:
            exit_status[0] = program.EXIT_RUNTIME
            told[0] = True
            program.fail(PROGRAM, reporter.session.describe(action))
            reactor.stop()

    @defer.inlineCallbacks
    def run():
        # --timeout bounds the bootstrap and the first registration together
        give_up_at = reactor.seconds() + args.timeout
        mobile, result = yield session.failover_session(
            reactor, hac_set, credentials.make_machine, timeout=args.timeout,
            lifetime=args.lifetime, on_bootstrapped=record_sa,
            rebootstrap_when_silent=args.keep)
        reporter.session = mobile
        mobile.on_event = on_event
        if local_key_exchange is not None:
            mobile.on_moving = local_key_exchange.moving
        step[0] = "the registration with the home agent " + session.home_agent_text(
            mobile.machine.home_agent, care_of)
        binding = yield mobile.start(care_of, give_up_at=give_up_at)
        device = _tunnel_for(args, binding, result.bootstrap) if with_tunnel else None
        if device is not None:
            mobile.attach(device)
        reporter.event(actions.Registered(binding))  # once the tunnel, if any, is up
        registered[0] = True
        exit_status[0] = program.EXIT_OK
        if local_key_exchange is not None:
            local_key_exchange.registered(binding.care_of)
        if not args.keep:
            yield mobile.stop(deregister=False)
            return
        _stay(reactor, mobile, args, device)
        yield defer.Deferred()  # runs until a signal stops the reactor

    def failed(failure) -> None:
        exit_status[0] = program.EXIT_RUNTIME
        if failure.check(BootstrapFailed):
            message = _bootstrap_failure(hac_set, failure.value)
        elif failure.check(session.RegistrationError):
            message = str(failure.value)
        elif failure.check(TunnelError):
            message = f"up: cannot bring up the tunnel interface {args.tun}: {failure.value}"
        else:
            message = _unexpected(failure)
        told[0] = True
        program.fail(PROGRAM, message)

    def stopped_early() -> None:
        if not registered[0] and not told[0]:
            program.fail(PROGRAM, f"stopped by a signal during {step[0]}")

    def status() -> None:
        if reporter.session is None:
            reporter.status_before(step[0])
        else:
            reporter.status()

    def start() -> None:
        reactor.addSystemEventTrigger("before", "shutdown", stopped_early)
        if local_key_exchange is not None:  # RAs are learned from the start
            local_key_exchange.start()
            reactor.addSystemEventTrigger("after", "shutdown", local_key_exchange.stop)
        program.install_signals(reactor.callFromThread, reload=lambda: _reload(credentials),
                                status=status)
        running = run()
        running.addErrback(failed)
        running.addBoth(lambda _: reactor.running and reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    return exit_status[0]


def register_command(args: argparse.Namespace) -> int:
    return _mobility_command(args, with_tunnel=False)


def up_command(args: argparse.Namespace) -> int:
    return _mobility_command(args, with_tunnel=True)
