"""``mip6-hac sas``, ``mip6-hac stats`` and ``mip6-hac revoke``: ask the running HAC on its
control socket (:mod:`hac.control` answers).

Exit status: 0 done, 1 the HAC refused (``revoke``: an unknown SPI), 2 usage or
configuration, 3 the HAC did not answer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aaa_mip6.control_client import (EXIT_REFUSED, EXIT_UNREACHABLE, ask_printing, cli_ask,
                                     print_stats, socket_path, table, verb_parser)

from .config import parse_sa_delivery, read_toml
from .control import worker_socket

PROGRAM = "mip6-hac"

SA_COLUMNS = [("SPI", "spi"), ("MN", "mn_id"), ("SUITE", "suite"), ("SCOPE", "scope"),
              ("HA", "home_agent"), ("HOME ADDRESSES", "home_addresses"),
              ("VALID UNTIL", "valid_until"), ("STATE", "state")]


def socket_in_config(path: Path) -> Path | None:
    """``control.socket`` (or ``sa_delivery.control_socket``) of the HAC's TOML file; only
    that key is read: flags may give the rest of the HAC's settings."""
    settings = read_toml(path)
    socket = settings.get("control.socket")
    if socket is None and settings.get("sa_delivery") is not None:
        socket = parse_sa_delivery(settings["sa_delivery"]).control_socket
    return None if not socket else Path(socket)


def _ask(verb: str, arguments: argparse.Namespace, **request: Any) -> tuple[int, dict]:
    return cli_ask(PROGRAM, verb, arguments, socket_in_config, **request)


def _parser(verb: str, description: str) -> argparse.ArgumentParser:
    return verb_parser(PROGRAM, verb, description)


def sas_main(argv: list[str]) -> int:
    parser = _parser("sas", "List the SAs in the running HAC's store (valid and not "
                            "revoked; with --spi, that SA whatever its state): SPI, MN, "
                            "suite, scope, HA, home addresses, validity. Keys only with "
                            "--keys.")
    parser.add_argument("--mn-id", metavar="ID", help="only this MN's SAs")
    parser.add_argument("--spi", type=int, metavar="N", help="only this SA")
    parser.add_argument("--keys", action="store_true",
                        help="also print each SA's four keys in hex (they are secrets: "
                             "mind the terminal and where the output goes)")
    parser.add_argument("--json", action="store_true", help="the SAs as one JSON list")
    parser.add_argument("--format", choices=("table", "json", "wireshark"), default="table",
                        help="table (default), json (as --json), or wireshark: with --keys, "
                             "Wireshark esp_sa records for etc/wireshark/mip6.lua (save them "
                             "as the esp_sa file of a Wireshark profile; docs/operations.md)")
    arguments = parser.parse_args(argv)
    if arguments.format == "wireshark" and not arguments.keys:
        parser.error("--format wireshark needs --keys (the records are the SAs' keys)")
    status, reply = _ask("sas", arguments, mn_id=arguments.mn_id, spi=arguments.spi,
                         keys=True if arguments.keys else None)
    if status:
        return status
    rows = reply["sas"]
    if arguments.format == "wireshark":
        print("\n".join(line for row in rows for line in row["esp_sa"]))
        return 0
    if arguments.json or arguments.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        row["home_addresses"] = " ".join(address for address in
                                         (row["home_address6"], row["home_address4"])
                                         if address) or None
        row["state"] = "revoked" if row["revoked"] else "valid"
    print(table(rows, SA_COLUMNS))
    for row in rows if arguments.keys else ():
        for name, key in row["keys"].items():
            print(f"{row['spi']} {name} {key}")
    return 0


def stats_main(argv: list[str]) -> int:
    parser = _parser("stats", "The running HAC's counters: connections, bootstraps by "
                              "status, SAs issued, refusals, PSK identities, SA delivery "
                              "and accounting (as SIGUSR1 logs them); with several "
                              "workers, their total and each worker's.")
    parser.add_argument("--json", action="store_true", help="the counters as one JSON object")
    arguments = parser.parse_args(argv)
    status, reply = _ask("stats", arguments)
    if status:
        return status
    replies = [reply]
    if reply.get("workers", 1) > 1:
        path = socket_path(PROGRAM, "stats", arguments, socket_in_config)
        for number in range(1, reply["workers"]):
            status, other = ask_printing(worker_socket(path, number), PROGRAM, "stats")
            if status:
                return status
            replies.append(other)
        reply = {"total": total(replies),
                 **{f"worker{number}": each for number, each in enumerate(replies)}}
    print_stats(reply, arguments.json)
    return 0


_NOT_COUNTERS = frozenset({"ok", "pid", "worker", "workers"})


def total(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' counters added up, nested ones too (pids and worker numbers left out)."""
    summed: dict[str, Any] = {}
    for reply in replies:
        for name, value in reply.items():
            if name in _NOT_COUNTERS:
                continue
            if isinstance(value, dict):
                summed[name] = total([summed.get(name, {}), value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                summed[name] = summed.get(name, 0) + value
    return summed


def revoke_main(argv: list[str]) -> int:
    """``mip6-hac revoke --spi N (--config FILE | --control PATH)``: 0 revoked, 1 unknown,
    2 usage or configuration error, 3 the HAC did not answer."""
    parser = _parser("revoke", "Revoke an SA in the running HAC: it is marked revoked in "
                               "the store and its HA is told (SA-Revoke); the HA answers "
                               "the MN's next Binding Update with 176 and the MN "
                               "bootstraps again.")
    parser.add_argument("--spi", type=int, required=True, help="the SA's SPI")
    arguments = parser.parse_args(argv)
    status, reply = _ask("revoke", arguments, spi=arguments.spi)
    if status:
        return EXIT_UNREACHABLE if status == EXIT_REFUSED else status
    print(f"{'revoked' if reply['revoked'] else 'unknown'} {arguments.spi}")
    return 0 if reply["revoked"] else EXIT_REFUSED


VERBS = {"sas": sas_main, "stats": stats_main, "revoke": revoke_main}
