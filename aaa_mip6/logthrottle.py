"""At most one log line per kind per interval, and how many were held back: so that a
flood of one kind of event (a misconfigured MN's BUs, every one dropped) is told to the
operator at info level without the log itself becoming the flood.

Pure: the caller passes the time (any monotonic scale) and logs what it is told to.
"""

from __future__ import annotations

from collections.abc import Hashable


class LogThrottle:
    """One line per key per ``interval`` seconds; the lines held back in between are
    counted and reported with the next line of that key."""

    def __init__(self, interval: float):
        if not interval > 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._last: dict[Hashable, float] = {}  # key -> when its last line was let through
        self._held: dict[Hashable, int] = {}  # key -> lines held back since then

    def admit(self, key: Hashable, now: float) -> int | None:
        """None: hold this line back (it is counted). Otherwise log it, and say that the
        returned number of lines of ``key`` were held back before it."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
