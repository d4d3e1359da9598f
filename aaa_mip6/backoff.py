"""Exponential backoff with jitter: the one rule behind every retry loop of the project.

Diameter reconnects, SA delivery retries, RADIUS retransmissions and the MN's
rebootstraps all wait ``initial * 2 ** attempt`` seconds, capped at ``maximum``, scaled by
a random factor drawn uniformly from ``jitter``; each keeps its own numbers. Pure: the
caller passes the random draw in (``random.random()``, a fixed number in tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_MAX_EXPONENT = 1023  # 2.0 ** 1024 overflows a float; the cap is reached long before


@dataclass(frozen=True)
class Backoff:
    """``initial`` doubled per attempt up to ``maximum`` (seconds; an ``initial`` above it
    waits ``maximum`` from the start), times a factor in ``jitter`` = (low, high):
    (0.5, 1.0) waits 50-100 % of the step, (1.0, 1.0) none."""

    initial: float
    maximum: float = math.inf
    jitter: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        low, high = self.jitter
        if not (self.initial > 0 and self.maximum > 0):
            raise ValueError("backoff needs a positive initial and maximum")
        if not 0 <= low <= high:
            raise ValueError("backoff jitter needs 0 <= low <= high")

    def step(self, attempt: int) -> float:
        """The wait before jitter after ``attempt`` earlier tries (0: the first wait)."""
        return min(self.maximum, self.initial * 2.0 ** min(attempt, _MAX_EXPONENT))

    def delay(self, attempt: int, draw: float) -> float:
        """The wait after ``attempt`` earlier tries; ``draw`` in [0, 1) picks the jitter
        (the same arithmetic as ``random.uniform(low, high)``)."""
        low, high = self.jitter
        return self.step(attempt) * (low + (high - low) * draw)
