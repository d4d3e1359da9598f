"""``mip6-aaa-gw peers``: the running gateway's Diameter peers and counters, asked on its
control socket (:meth:`gateway.cli.GatewayProgram.peers` answers). Exit status: 0, 2 usage
or configuration, 3 the gateway did not answer."""

from __future__ import annotations

import json
from pathlib import Path

from aaa_mip6.control_client import cli_ask, flatten, table, verb_parser

from .config import SCHEMA

PROGRAM = "mip6-aaa-gw"


def socket_in_config(path: Path) -> Path | None:
    """``control.socket`` of the gateway's TOML file (only that key is read)."""
    socket = SCHEMA.read_toml(path).get("control.socket")
    return None if not socket else Path(socket)


def peers_main(argv: list[str]) -> int:
    parser = verb_parser(PROGRAM, "peers",
                         "The running gateway's Diameter peer connections and their states "
                         "(wait-cer, open, ...), then its request and answer counters and "
                         "the RADIUS client's.")
    parser.add_argument("--json", action="store_true", help="the answer as JSON")
    arguments = parser.parse_args(argv)
    status, reply = cli_ask(PROGRAM, "peers", arguments, socket_in_config)
    if status:
        return status
    del reply["ok"]
    if arguments.json:
        print(json.dumps(reply, indent=2))
        return 0
    print(table(reply["peers"], [("PEER", "peer"), ("STATE", "state")]))
    for name, value in flatten({"conversations": reply["conversations"],
                                "counters": reply["counters"], "radius": reply["radius"]}):
        print(f"{name} {value}")
    return 0
