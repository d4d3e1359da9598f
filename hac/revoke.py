"""``mip6-hac revoke``: revoke an SA in the running HAC, through its control socket.

The running HAC listens on ``sa_delivery.control_socket``
(:func:`hac.sa_delivery.listen_control`); this is the client: one ``revoke SPI`` line
out, one reply line back.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from aaa_mip6.errors import ConfigError

from .config import parse_sa_delivery, read_toml

CONTROL_TIMEOUT = 10.0  # seconds mip6-hac revoke waits for the running HAC


def send_control(path: Path, command: str, timeout: float = CONTROL_TIMEOUT) -> str:
    """One command to the running HAC's control socket; its one-line reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.settimeout(timeout)
        control.connect(str(path))
        control.sendall(command.encode("ascii") + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = control.recv(256)
            if not chunk:
                break
            reply += chunk
    return reply.decode("ascii", "replace").strip()


def revoke_main(argv: list[str]) -> int:
    """``mip6-hac revoke --spi N (--config FILE | --control PATH)``: 0 revoked, 1 unknown,
    2 usage or configuration error, 3 the HAC did not answer."""
    parser = argparse.ArgumentParser(
        prog="mip6-hac revoke",
        description="Revoke an SA in the running HAC: it is marked revoked in the store and "
                    "its HA is told (SA-Revoke); the HA answers the MN's next Binding Update "
                    "with 176 and the MN bootstraps again.")
    parser.add_argument("--spi", type=int, required=True, help="the SA's SPI")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the HAC's TOML file "
                                                   "(for sa_delivery.control_socket)")
    where.add_argument("--control", type=Path, help="the HAC's control socket")
    arguments = parser.parse_args(argv)
    path = arguments.control
    if path is None:
        try:
            table = read_toml(arguments.config).get("sa_delivery")
            path = parse_sa_delivery(table).control_socket if table is not None else None
        except ConfigError as error:
            print(f"mip6-hac revoke: sa_delivery: {error}", file=sys.stderr)
            return 2
        if path is None:
            print("mip6-hac revoke: the config sets no sa_delivery.control_socket",
                  file=sys.stderr)
            return 2
    try:
        reply = send_control(path, f"revoke {arguments.spi}")
    except OSError as error:
        print(f"mip6-hac revoke: cannot reach the HAC at {path}: "
              f"{error.strerror or error}", file=sys.stderr)
        return 3
    print(reply)
    return 0 if reply.startswith("revoked") else 1 if reply.startswith("unknown") else 3
