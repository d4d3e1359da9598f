"""The blocking client of a program's control socket, for the CLI verbs
(``mip6-hac sas``, ``mip6-ha bindings``, ``mip6-aaa-gw peers``, ...)."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any, Callable

from .control import ControlError, decode_reply, encode_request
from .errors import ConfigError

TIMEOUT = 10.0  # seconds a verb waits for the running program
MAX_REPLY = 64 * 1024 * 1024
# The verbs' exit statuses: 0 done, then these.
EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class Unreachable(OSError):
    """Nothing answered on the socket; the message is the one line for the user."""


def ask(path: Path, program: str, verb: str, *, timeout: float = TIMEOUT,
        **arguments: Any) -> dict[str, Any]:
    """Send one request to ``program``'s control socket at ``path``; its reply.

    Raises :class:`Unreachable` (one line naming the socket and the flag) when no program
    listens, and :class:`ControlError` for an answer that is not a reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.settimeout(timeout)
        try:
            control.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise Unreachable(f"no {program} listening on {path} "
                              f"(is it running with --control {path}?)") from None
        except OSError as error:
            raise Unreachable(f"cannot reach {program} at {path}: "
                              f"{error.strerror or error}") from None
        try:
            control.sendall(encode_request(verb, **arguments))
            reply = b""
            while not reply.endswith(b"\n") and len(reply) < MAX_REPLY:
                chunk = control.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except TimeoutError:
            raise Unreachable(f"{program} at {path} did not answer within "
                              f"{timeout:g} s") from None
        except OSError as error:
            raise Unreachable(f"{program} at {path}: {error.strerror or error}") from None
    if not reply:
        raise Unreachable(f"{program} at {path} closed the connection without a reply")
    return decode_reply(reply)


def add_where(parser, config_key: str = "control.socket") -> None:
    """``--control PATH | --config FILE``: where a verb finds the running program."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--control", type=Path, metavar="PATH",
                       help="the program's control socket (the --control it runs with)")
    where.add_argument("--config", type=Path, metavar="FILE",
                       help=f"the program's TOML file, for its {config_key}")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """``rows`` as aligned text columns, ``columns`` (heading, key); None shows as ``-``."""
    cells = [[heading for heading, _ in columns]]
    cells += [["-" if row.get(key) is None else str(row[key]) for _, key in columns]
              for row in rows]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in cells)


def flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested counters as (dotted name, value): ``stats`` as text, ``mip6-load --csv``."""
    lines: list[tuple[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, dict):
            lines += flatten(value, f"{prefix}{name}.")
        else:
            lines.append((f"{prefix}{name}", value))
    return lines


def cli_ask(program: str, verb: str, arguments: argparse.Namespace,
            socket_in_config: Callable[[Path], Path | None], **request: Any
            ) -> tuple[int, dict[str, Any]]:
    """A verb's request, its failures printed as one line: (exit status, reply).

    The socket is ``arguments.control``, or what ``socket_in_config`` reads from
    ``arguments.config`` (it may raise ConfigError). The reply is empty unless the status
    is 0 or :data:`EXIT_REFUSED` (the program answered ``"ok": false``)."""
    try:
        path = socket_path(program, verb, arguments, socket_in_config)
    except ConfigError as error:
        print(f"{program} {verb}: {error}", file=sys.stderr)
        return EXIT_USAGE, {}
    return ask_printing(path, program, verb, **request)


def socket_path(program: str, verb: str, arguments: argparse.Namespace,
                socket_in_config: Callable[[Path], Path | None]) -> Path:
    """``arguments.control``, or the socket ``arguments.config`` names; ConfigError if
    it names none."""
    if arguments.control is not None:
        return arguments.control
    path = socket_in_config(arguments.config)
    if path is None:
        raise ConfigError(f"{arguments.config} sets no control.socket: add it (and "
                          f"restart {program}) or give {program} {verb} --control PATH")
    return path


def ask_printing(path: Path, program: str, verb: str, **request: Any
                 ) -> tuple[int, dict[str, Any]]:
    """:func:`ask`, its failure printed as one line: (exit status, reply) as :func:`cli_ask`."""
    try:
        reply = ask(path, program, verb, **request)
    except (Unreachable, ControlError) as error:
        print(f"{program} {verb}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE, {}
    if not reply["ok"]:
        print(f"{program} {verb}: {reply.get('error')}", file=sys.stderr)
        return EXIT_REFUSED, reply
    return 0, reply


def verb_parser(program: str, verb: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``PROGRAM VERB`` with ``--control PATH | --config FILE``."""
    parser = argparse.ArgumentParser(prog=f"{program} {verb}", description=description)
    add_where(parser)
    return parser


def print_rows(rows: list[dict[str, Any]], columns: list[tuple[str, str]],
               as_json: bool) -> None:
    """A list reply (bindings, SAs): JSON as the program sent it, or a :func:`table`."""
    print(json.dumps(rows, indent=2) if as_json else table(rows, columns))


def print_stats(reply: dict[str, Any], as_json: bool) -> None:
    """A ``stats`` reply: JSON, or one ``name value`` line per counter."""
    counters = {name: value for name, value in reply.items() if name != "ok"}
    if as_json:
        print(json.dumps(counters, indent=2))
    else:
        for name, value in flatten(counters):
            print(f"{name} {value}")
