"""The HAC's per-source connection rate limit: a token bucket per source, in bounded memory.

Pure policy on a clock the caller passes; the TLS listener (:mod:`hac.server`) asks
:meth:`RateLimiter.allow` before any TLS work is done for a new connection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from aaa_mip6.addresses import rate_limit_key

MAX_TRACKED_SOURCES = 65_536  # rate-limit buckets kept; the idlest are forgotten first


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; a new connection takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """One token bucket per source (IPv4 address or IPv6 /64, see
    :func:`~aaa_mip6.addresses.rate_limit_key`), in bounded memory: an attacker's
    fresh addresses in one /64 neither get fresh buckets nor push others' out."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float],
                 max_sources: int = MAX_TRACKED_SOURCES):
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max_sources = max_sources
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    def allow(self, source: str) -> bool:
        now = self._clock()
        source = rate_limit_key(source)
        bucket = self._buckets.pop(source, None)
        if bucket is None:
            bucket = TokenBucket(self._rate, self._burst, now)
            if len(self._buckets) >= self._max_sources:
                self._buckets.popitem(last=False)
        self._buckets[source] = bucket  # most recently seen last
        return bucket.take(now)
