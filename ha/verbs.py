"""``mip6-ha bindings|sas|stats|flush``: ask the running HA on its control socket
(:mod:`ha.control` answers). Exit status: 0 done, 1 the HA refused (``flush``: an SA it
does not hold), 2 usage or configuration, 3 the HA did not answer."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aaa_mip6.control_client import cli_ask, print_rows, print_stats, verb_parser

from .config import SCHEMA

PROGRAM = "mip6-ha"


def socket_in_config(path: Path) -> Path | None:
    """``control.socket`` of the HA's TOML file (only that key is read)."""
    socket = SCHEMA.read_toml(path).get("control.socket")
    return None if not socket else Path(socket)


def _run(verb: str, description: str, argv: list[str], extra=None
         ) -> tuple[int, dict[str, Any], argparse.Namespace]:
    parser = verb_parser(PROGRAM, verb, description)
    if extra is not None:
        extra(parser)
    arguments = parser.parse_args(argv)
    request = {"spi": getattr(arguments, "spi", None)}
    status, reply = cli_ask(PROGRAM, verb, arguments, socket_in_config, **request)
    return status, reply, arguments


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the answer as JSON")


def bindings_main(argv: list[str]) -> int:
    status, reply, arguments = _run(
        "bindings", "The running HA's binding cache: home addresses, care-of address, SPI, "
                    "last sequence number, seconds to expiry.", argv, _json_flag)
    if status:
        return status
    print_rows(reply["bindings"], [("HOME ADDRESS", "home_address"),
                                   ("IPV4 HOA", "home_address4"), ("CARE-OF", "care_of"),
                                   ("SPI", "spi"), ("SEQ", "sequence"),
                                   ("EXPIRES IN", "expires_in")], arguments.json)
    return 0


def sas_main(argv: list[str]) -> int:
    def flags(parser):
        parser.add_argument("--spi", type=int, metavar="N", help="only this SA")
        _json_flag(parser)
    status, reply, arguments = _run(
        "sas", "The SAs the running HA holds: SPI, MN, suite, scope, home addresses, "
               "validity (never keys).", argv, flags)
    if status:
        return status
    rows = reply["sas"]
    if not arguments.json:
        for row in rows:
            row["state"] = "revoked" if row["revoked"] else "valid"
    print_rows(rows, [("SPI", "spi"), ("MN", "mn_id"), ("SUITE", "suite"), ("SCOPE", "scope"),
                      ("HOA", "home_address6"), ("IPV4 HOA", "home_address4"),
                      ("VALID UNTIL", "valid_until"), ("STATE", "state")], arguments.json)
    return 0


def stats_main(argv: list[str]) -> int:
    status, reply, arguments = _run(
        "stats", "The running HA's counters (as its status line and status file).", argv,
        _json_flag)
    if status:
        return status
    print_stats(reply, arguments.json)
    return 0


def flush_main(argv: list[str]) -> int:
    def flags(parser):
        parser.add_argument("--spi", type=int, metavar="N", required=True, help="the SA's SPI")
    status, _reply, arguments = _run(
        "flush", "Drop an SA and its binding from the running HA (not from the store): the "
                 "MN's next Binding Update makes the HA look the SA up again.", argv, flags)
    if status:
        return status
    print(f"flushed {arguments.spi}")
    return 0


VERBS = {"bindings": bindings_main, "sas": sas_main, "stats": stats_main,
         "flush": flush_main}
