"""When the MN goes back to the HAC, and when it gives up: the policy, sans-I/O.

The mobility core (:mod:`mn.mobility`) says *that* the MN must bootstrap again (BA
status 176, SA expiry); :class:`RebootstrapPolicy` says *when*. The first rebootstrap
goes at once. Later ones in a row that never got a new SA registered wait 1, 2, 4 and
8 s, so an SA the HA refuses again at once (a lifetime shorter than its reinit margin,
an HA that answers 176 to everything) cannot have the MN hammer the HAC; after
MAX_IN_A_ROW the MN gives up. A rebootstrap that failed because the HAC was out of
reach or answered 500, 503 or 504 is tried again on the same schedule, never before the
HAC's ``retry-after``; a refusal or a failed check ends the session at once. The shell
(:mod:`mn.session`) keeps the timer and reads the clock.
"""

from __future__ import annotations

from datetime import datetime

from aaa_mip6.backoff import Backoff

from .actions import GiveUp, Wait
from .bootstrap import BootstrapFailed

FIRST_DELAY = 1.0  # seconds before the second rebootstrap in a row
MAX_IN_A_ROW = 5  # rebootstraps without a registration before giving up
BACKOFF = Backoff(FIRST_DELAY)  # doubling, no jitter: MAX_IN_A_ROW bounds it (8 s)
TRANSIENT_HAC_STATUSES = frozenset({500, 503, 504})  # the HAC (or its AAA) may answer later
MAX_RETRY_AFTER = 3600.0  # seconds: the longest retry-after the MN waits out


def retry_wait(error: Exception, now: datetime) -> float | None:
    """Seconds a failed rebootstrap must wait before the next try (0: no wish of the
    HAC's), or None when trying again cannot help.

    A HAC out of reach (connect, timeout, closed) or answering 500, 503 or 504 may
    answer later, after its ``retry-after`` (capped at MAX_RETRY_AFTER); a refusal (401,
    400, 501), a certificate or ``auth`` that does not verify, a malformed answer will
    not change by asking again.
    """
    if not isinstance(error, BootstrapFailed):
        return None
    if error.reason in ("connect", "timeout", "closed"):
        return 0.0
    if error.reason != "status" or error.status not in TRANSIENT_HAC_STATUSES:
        return None
    if error.retry_after is None:
        return 0.0
    return min(MAX_RETRY_AFTER, max(0.0, (error.retry_after - now).total_seconds()))


class RebootstrapPolicy:
    """Counts the rebootstraps since the last registration and decides the next step."""

    def __init__(self) -> None:
        self.in_a_row = 0

    def registered(self) -> None:
        """A binding was acknowledged: the next rebootstrap goes at once again."""
        self.in_a_row = 0

    def asked(self, cause: str, at_least: float = 0.0) -> Wait | GiveUp:
        """A rebootstrap is wanted (``cause``: why, for the log): when to start it."""
        if self.in_a_row >= MAX_IN_A_ROW:
            return GiveUp("rebootstrap-loop",
                          f"{self.in_a_row} rebootstraps in a row got no registration "
                          f"(the last: {cause}); giving up")
        delay = 0.0 if self.in_a_row == 0 else BACKOFF.step(self.in_a_row - 1)
        self.in_a_row += 1
        return Wait(max(delay, at_least), self.in_a_row - 1)

    def failed(self, error: Exception, now: datetime) -> Wait | GiveUp:
        """The rebootstrap failed with ``error``: try again (see :func:`retry_wait`) or end."""
        wait = retry_wait(error, now)
        if wait is None:
            return GiveUp("rebootstrap-failed", str(error))
        return self.asked(str(error), at_least=wait)
