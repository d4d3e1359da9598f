"""Which unknown SPIs the HA asks its SA source about: the policy, sans-I/O.

A datagram under an SPI the HA does not hold costs a lookup in the SA source (a store
query, or an SA-Query over Diameter). The lookup backlog is bounded, so a flood of
random SPIs could fill it and new MNs' Binding Updates would be dropped with the flood.
:class:`LookupAdmission` decides, for the first datagram of an SPI not being looked up
yet, whether a lookup may start; the rules, checked in this order, each with the drop
reason the HA counts:

1. ``negative-cached``: the source said it does not have this SPI less than
   ``negative_ttl`` seconds ago. At most ``negative_size`` SPIs are remembered (the
   oldest go first); an SPI is forgotten as soon as an SA with it is pushed or found.
2. ``lookup-backlog``: ``max_pending`` lookups are running, or — for a datagram that
   does not look like a Binding Update (PType 8) — half of that (rounded up): the
   other half is kept for BUs, which is what a new MN sends first.
3. ``lookup-rate-limited``: the source (IPv4 address, or IPv6 /64 prefix: one
   subscriber's) started ``source_burst`` lookups in a burst and its bucket refills at
   ``source_rate`` per second; BUs and other datagrams have a bucket each, so data a
   source floods does not hold back its BUs. At most ``max_sources`` buckets are kept,
   the least recently used forgotten first (it comes back full).

The core (:mod:`ha.core`) asks :meth:`LookupAdmission.refusal` and reports lookups that
found nothing (:meth:`missing`) and SAs that appeared (:meth:`present`); the clock is
passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from aaa_mip6.addresses import rate_limit_key


# The defaults, which the HA's policy (ha.core.HaPolicy) and its config keys share.
MAX_PENDING = 1024
NEGATIVE_TTL = 5.0
NEGATIVE_SIZE = 4096
SOURCE_RATE = 10.0
SOURCE_BURST = 20
MAX_SOURCES = 4096


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """The limits; docs/configuration.md (section HA) names their config keys."""

    max_pending: int = MAX_PENDING
    negative_ttl: float = NEGATIVE_TTL
    negative_size: int = NEGATIVE_SIZE
    source_rate: float = SOURCE_RATE
    source_burst: int = SOURCE_BURST
    max_sources: int = MAX_SOURCES

    def __post_init__(self):
        for name in ("max_pending", "negative_size", "source_burst", "max_sources"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.negative_ttl < 0 or self.source_rate <= 0:
            raise ValueError("negative_ttl cannot be negative and source_rate must be positive")


class _Bucket:
    """``rate`` tokens a second up to ``burst``; a lookup takes one."""

    __slots__ = ("tokens", "stamp")

    def __init__(self, burst: int, now: float):
        self.tokens = float(burst)
        self.stamp = now

    def take(self, rate: float, burst: int, now: float) -> bool:
        self.tokens = min(burst, self.tokens + max(0.0, now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class LookupAdmission:
    """Negative cache and per-source lookup buckets, in bounded memory (see the module)."""

    def __init__(self, policy: AdmissionPolicy):
        self.policy = policy
        self._missing: OrderedDict[int, float] = OrderedDict()  # SPI -> until when
        self._buckets: OrderedDict[tuple[bytes, bool], _Bucket] = OrderedDict()

    def __repr__(self) -> str:
        return f"LookupAdmission(missing={len(self._missing)}, sources={len(self._buckets)})"

    def __len__(self) -> int:
        """Entries held: negative-cached SPIs plus source buckets (both bounded)."""
        return len(self._missing) + len(self._buckets)

    def refusal(self, spi: int, host: str, is_bu: bool, pending: int, now: float) -> str | None:
        """Why a lookup of ``spi`` for a datagram from ``host`` may not start, or None
        (then it is counted against the source). ``pending``: lookups running now."""
        until = self._missing.get(spi)
        if until is not None:
            if now < until:
                return "negative-cached"
            del self._missing[spi]
        policy = self.policy
        if pending >= (policy.max_pending if is_bu else (policy.max_pending + 1) // 2):
            return "lookup-backlog"
        key = (rate_limit_key(host), is_bu)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(policy.source_burst, now)
            if len(self._buckets) >= policy.max_sources:
                self._buckets.popitem(last=False)
        self._buckets[key] = bucket  # most recently used last
        if not bucket.take(policy.source_rate, policy.source_burst, now):
            return "lookup-rate-limited"
        return None

    def missing(self, spi: int, now: float) -> None:
        """The source does not have ``spi``: refuse lookups of it for ``negative_ttl``."""
        if self.policy.negative_ttl <= 0:
            return
        self._missing.pop(spi, None)
        if len(self._missing) >= self.policy.negative_size:
            self._missing.popitem(last=False)
        self._missing[spi] = now + self.policy.negative_ttl  # the oldest entry first

    def present(self, spi: int) -> None:
        """An SA with ``spi`` was pushed or found: look it up again whenever asked."""
        self._missing.pop(spi, None)
