"""What every aaa-mip6 program does the same way at its edges: exit statuses, ``--version``,
the one-line failure, the status/reload signals, warnings about a secret file's mode, and the
open-file limit.

Programs differ in what they reload or report; they agree on how a user meets them. This
module holds no protocol and starts no event loop: a program passes in the callables that
act on its own state (for a Twisted program, wrapped in ``reactor.callFromThread``).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import stat
import sys
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
