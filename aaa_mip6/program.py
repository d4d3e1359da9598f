"""What every aaa-mip6 program does the same way at its edges: exit statuses, ``--version``,
the one-line failure, the status/reload signals, warnings about a secret file's mode, the
open-file limit, and the log lines (text or one JSON object a line).

Programs differ in what they reload or report; they agree on how a user meets them. This
module holds no protocol and starts no event loop: a program passes in the callables that
act on its own state (for a Twisted program, wrapped in ``reactor.callFromThread``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import stat
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

EXIT_OK = 0
EXIT_RUNTIME = 1  # the program ran and failed (a peer, the network, the store at run time)
EXIT_CONFIG = 2  # bad flags, keys or files: nothing was started

DISTRIBUTION = "aaa-mip6"

_warned: set[tuple[str, str]] = set()


def version() -> str:
    """The installed aaa-mip6 version, or ``unknown`` when run from an uninstalled tree."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version``: prints ``PROG VERSION (aaa-mip6, RFC 6618)`` and exits 0."""
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {version()} (aaa-mip6, RFC 6618)")


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``, worded alike in every daemon (keys log.level and
    log.format of its config file, which is where their values are checked)."""
    parser.add_argument("--log-level", metavar="LEVEL",
                        help="debug, info, warning or error (default info) (log.level)")
    parser.add_argument("--log-format", metavar="FORMAT",
                        help="text, or json: one object a line with the event and its fields "
                             "(log.format)")


def add_metrics_flag(parser: argparse.ArgumentParser) -> None:
    """``--metrics HOST:PORT``, the Prometheus endpoint of a daemon (key metrics.listen)."""
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="Prometheus metrics over HTTP at http://HOST:PORT/metrics; "
                             "off by default (metrics.listen)")


def fail(program: str, message: str, status: int = EXIT_RUNTIME) -> int:
    """Print the one line a user sees for a failure and return the exit status to use.

    ``message`` must name the problem and, where there is one, the flag or key and the fix;
    it never carries a secret or a traceback.
    """
    print(f"{program}: {message}", file=sys.stderr)
    return status


def install_signals(schedule: Callable[[Callable[[], None]], None], *,
                    reload: Callable[[], None], status: Callable[[], None]) -> None:
    """SIGHUP reloads, SIGUSR1 reports status, for every program alike.

    SIGTERM and SIGINT stop the program through its event loop's own handlers. ``schedule``
    runs a callable in the program's loop (the handler itself runs between bytecodes and
    must not touch the program's state directly).
    """
    signal.signal(signal.SIGHUP, lambda *_: schedule(reload))
    signal.signal(signal.SIGUSR1, lambda *_: schedule(status))


def warn_if_exposed(path: Path, what: str, log: logging.Logger) -> None:
    """Warn, once per file and kind, when a secret file is readable by group or others."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # the reader of the file reports a missing one, with its flag
    if not mode & (stat.S_IRWXG | stat.S_IRWXO) or (str(path), what) in _warned:
        return
    _warned.add((str(path), what))
    log.warning("%s %s is readable by group or others (mode %04o); chmod 600 %s",
                what, path, stat.S_IMODE(mode), path)


def raise_open_file_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE toward the hard limit, enough for ``needed`` descriptors.

    Returns the (soft, hard) limits now in force. The caller decides whether a ``needed``
    above the hard limit is a configuration error (it names its own key).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed > soft:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # the caller compares `needed` with what it got
    return soft, hard


LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime",
                                                                   "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, program, logger, event,
    message, and the fields the caller gave with ``extra=`` (``mn_id``, ``spi``, ...).

    ``event`` is the record's ``event`` extra, or ``log`` for a line that names none. An
    exception becomes ``error`` (its type and message) and, only while the root logger is at
    debug level (a SIGHUP may change it), ``traceback``: a user reading info lines never
    meets a traceback.
    """

    def __init__(self, program: str):
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
                            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "program": self.program,
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in line:
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}"
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(program: str, level: str, fmt: str = "text",
                      text_format: str = TEXT_FORMAT) -> None:
    """Every program's log set-up: stderr, ``level`` (debug, info, warning, error), and
    ``fmt`` ``text`` (``text_format``) or ``json`` (:class:`JsonFormatter`).

    Replaces the handler a previous call installed (a test may call ``main`` twice), and
    leaves any other (pytest's log capture) alone.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(program))
    else:
        handler.setFormatter(logging.Formatter(text_format))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if getattr(old, "aaa_mip6", False):
            root.removeHandler(old)
    handler.aaa_mip6 = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
