"""``mip6-auc``: the authentication centre hostapd's EAP-SIM/AKA/AKA' server asks for
vectors (``eap_sim_db=unix:PATH`` in hostapd.conf), speaking hlr_auc_gw's protocol on a
UNIX datagram socket. Bad requests get FAILURE (or nothing, if unreadable) and a log line.

Signals: SIGHUP re-reads the Milenage and triplet files (SQNs never go back), SIGUSR1 logs
the counters, SIGTERM stops.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aaa_mip6 import program
from aaa_mip6.errors import ConfigError

from .config import SCHEMA, AucConfig

log = logging.getLogger("mip6.auc")

EXAMPLE = """\
example (with hostapd's eap_sim_db=unix:/run/mip6/auc.sock):
  mip6-auc --socket /run/mip6/auc.sock --milenage /etc/mip6/milenage.db \\
           --state /var/lib/mip6/auc-sqn.json
  mip6-auc --config /etc/mip6/auc.toml     # the same as keys (etc/mip6-auc.toml)

The files have hostapd hlr_auc_gw's formats: Milenage 'IMSI Ki OPc AMF SQN [RES_len]',
triplets 'IMSI:Kc:SRES:RAND'. Exit status 2: bad flags or files; 1: cannot run.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mip6-auc", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Authentication centre for EAP-SIM, EAP-AKA and EAP-AKA' servers "
                    "(hostapd's hlr_auc_gw protocol): Milenage vectors with durable SQNs, "
                    "AUTS resynchronisation, and GSM triplets.",
        epilog=EXAMPLE)
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML file with any key below; flags win over it")
    parser.add_argument("--socket", metavar="PATH",
                        help="UNIX datagram socket to serve, created 0600; an old one is "
                             "replaced (auc.socket)")
    parser.add_argument("--milenage", metavar="FILE",
                        help="Milenage subscribers: IMSI Ki OPc AMF SQN [RES_len] a line "
                             "(auc.milenage)")
    parser.add_argument("--triplets", metavar="FILE",
                        help="fixed GSM triplets for EAP-SIM: IMSI:Kc:SRES:RAND a line "
                             "(auc.triplets)")
    parser.add_argument("--state", metavar="FILE",
                        help="where issued SQNs are kept, durably; default: the Milenage "
                             "file + .sqn (auc.state)")
    program.add_log_flags(parser)
    program.add_version_flag(parser)
    return parser


def load(config: AucConfig):
    """(AuthenticationCentre, SqnState) from the files; ConfigError names the flag."""
    from .core import AuthenticationCentre
    from .db import SqnState, load_milenage, load_triplets

    if config.milenage is None and config.triplets is None:
        raise ConfigError("give --milenage FILE, --triplets FILE or both (auc.milenage, "
                          "auc.triplets)")
    milenage = load_milenage(config.milenage) if config.milenage else {}
    triplets = load_triplets(config.triplets) if config.triplets else {}
    state_path = config.state or (Path(f"{config.milenage}.sqn") if config.milenage else None)
    state = SqnState(state_path) if state_path else None
    if state is not None:
        state.apply(milenage)
    return AuthenticationCentre(milenage, triplets), state


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = SCHEMA.load(args.config, SCHEMA.overrides(args))
        centre, state = load(config)
    except ConfigError as error:
        return program.fail("mip6-auc", str(error), program.EXIT_CONFIG)
    program.configure_logging("mip6-auc", config.log_level, config.log_format)
    from twisted.internet import reactor

    from .server import AucProtocol

    protocol = AucProtocol(centre, state)
    try:
        if config.socket.exists() or config.socket.is_symlink():
            config.socket.unlink()
        reactor.listenUNIXDatagram(str(config.socket), protocol, mode=0o600)
    except OSError as error:
        return program.fail("mip6-auc", f"cannot serve --socket {config.socket}: "
                            f"{error.strerror or error}", program.EXIT_RUNTIME)
    except Exception as error:  # Twisted wraps bind failures in CannotListenError
        return program.fail("mip6-auc", f"cannot serve --socket {config.socket}: {error}",
                            program.EXIT_RUNTIME)

    def reload() -> None:
        try:
            new_centre, _ = load(config)
        except ConfigError as error:
            log.warning("reload refused, old files kept: %s", error)
            return
        for imsi, subscriber in new_centre.milenage.items():
            old = centre.milenage.get(imsi)
            if old is not None:
                subscriber.sqn = max(subscriber.sqn, old.sqn)
        centre.milenage, centre.triplets = new_centre.milenage, new_centre.triplets
        centre._next_triplet = new_centre._next_triplet
        log.info("reloaded: %d Milenage subscribers, %d with triplets",
                 len(centre.milenage), len(centre.triplets))

    program.install_signals(reactor.callFromThread, reload=reload,
                            status=lambda: log.info("status %s", centre.counters))
    log.info("mip6-auc serving %s: %d Milenage subscribers, %d with triplets", config.socket,
             len(centre.milenage), len(centre.triplets))
    reactor.run()
    return program.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
