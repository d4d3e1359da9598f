"""A program's control socket: a UNIX socket (mode 0600) speaking :mod:`aaa_mip6.control`.

Handlers are a dict verb -> callable taking the request dict and returning a reply dict
(:func:`aaa_mip6.control.ok` / :func:`~aaa_mip6.control.error`) or a Deferred of one. A
handler that raises :class:`~aaa_mip6.control.ControlError` answers its message; any
other exception answers ``internal error`` and is logged: a client never breaks the program.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineOnlyReceiver

from ..errors import ConfigError, StartupError
from ..control import MAX_LINE, ControlError, decode_request, encode_reply, error

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


class _ControlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, handlers: dict[str, Handler]):
        self.handlers = handlers

    def lineReceived(self, line: bytes) -> None:  # noqa: N802 (Twisted API)
        done = defer.maybeDeferred(self._answer, line)
        done.addErrback(self._failed)
        done.addCallback(lambda reply: self.transport.write(encode_reply(reply)))

    def _answer(self, line: bytes):
        request = decode_request(line)
        handler = self.handlers.get(request["verb"])
        if handler is None:
            raise ControlError(f"unknown verb {request['verb'][:40]!r}; "
                               f"known: {', '.join(sorted(self.handlers))}")
        return handler(request)

    @staticmethod
    def _failed(failure) -> dict:
        if failure.check(ControlError):
            return error(str(failure.value))
        log.error("control request failed: %s", failure.getErrorMessage())
        return error("internal error (see the program's log)")

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802 (Twisted API)
        self.transport.write(encode_reply(error(f"request longer than {MAX_LINE} bytes")))
        self.transport.loseConnection()


class _ControlFactory(Factory):
    def __init__(self, handlers: dict[str, Handler]):
        self.handlers = handlers

    def buildProtocol(self, addr):  # noqa: N802 (Twisted API)
        return _ControlProtocol(self.handlers)


def listen_control(path: Path, handlers: dict[str, Handler], reactor):
    """Listen on ``path``, mode 0600; the listening port.

    A stale socket there (its program gone) is replaced; one a running program answers on
    is :class:`~aaa_mip6.errors.StartupError` (exit 1), a path that cannot be a socket
    (no such directory, no right) :class:`~aaa_mip6.errors.ConfigError` naming
    ``control.socket``. The socket is created under umask 077: never open to others,
    even briefly."""
    if path.is_socket():
        if _answers(path):
            raise StartupError(f"control.socket {path}: another program listens there "
                               "(is this one already running?)")
        path.unlink()
    old_umask = os.umask(0o077)
    try:
        port = reactor.listenUNIX(str(path), _ControlFactory(handlers))
    except CannotListenError as error:
        reason = error.socketError
        text = getattr(reason, "strerror", None) or str(reason)
        raise ConfigError(f"control.socket {path}: cannot listen ({text}); "
                          "choose a path in a directory this user may write") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return port


def _answers(path: Path) -> bool:
    """Whether a program accepts connections on the UNIX socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
