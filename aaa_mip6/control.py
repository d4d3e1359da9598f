"""The control protocol every program speaks on its UNIX control socket (sans-I/O).

One JSON object a line each way: a request ``{"verb": "sas", "spi": 7}``, a reply
``{"ok": true, ...}`` or ``{"ok": false, "error": "one line"}``. A line that is too long,
not JSON, not an object, or names no verb gets an error reply; nothing here raises on
what a client sends. The Twisted server is :mod:`aaa_mip6.twisted.control`; the blocking
client the CLI verbs use is :mod:`aaa_mip6.control_client`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 64 * 1024  # bytes in one request line; a reply may be longer (a list of SAs)


class ControlError(ValueError):
    """A request the server cannot act on; its message is the reply's ``error``."""


def encode_request(verb: str, **arguments: Any) -> bytes:
    """The line a client sends for ``verb`` with its arguments (None values left out)."""
    request = {"verb": verb, **{name: value for name, value in arguments.items()
                                if value is not None}}
    return json.dumps(request, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> dict[str, Any]:
    """A request line as a dict with a string ``verb``; raises :class:`ControlError`."""
    if len(line) > MAX_LINE:
        raise ControlError(f"request longer than {MAX_LINE} bytes")
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise ControlError(f"not a JSON object: {str(error)[:80]}") from None
    if not isinstance(request, dict):
        raise ControlError("not a JSON object")
    if not isinstance(request.get("verb"), str):
        raise ControlError('no "verb"')
    return request


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def encode_reply(reply: dict[str, Any]) -> bytes:
    """A reply as one line; a value JSON cannot hold (an address, a date) as its str."""
    return json.dumps(reply, separators=(",", ":"), default=str).encode() + b"\n"


def decode_reply(line: bytes) -> dict[str, Any]:
    """A reply line; raises :class:`ControlError` for one that is not a reply."""
    try:
        reply = json.loads(line)
    except ValueError:
        raise ControlError("the reply is not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError("the reply has no \"ok\"")
    return reply


def integer_argument(request: dict[str, Any], name: str, *, required: bool = False
                     ) -> int | None:
    """The request's non-negative integer ``name``; raises :class:`ControlError`."""
    value = request.get(name)
    if value is None and not required:
        return None
    if type(value) is not int or value < 0:
        raise ControlError(f'"{name}" must be a non-negative integer')
    return value
