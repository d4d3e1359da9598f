"""hac.ratelimit's per-source token buckets, on a fake clock."""

from __future__ import annotations

from hac.ratelimit import RateLimiter, TokenBucket


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.25) is False  # half a token
    assert bucket.take(0.5) is True
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_sources_have_their_own_buckets():
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.allow("192.0.2.1") and not limiter.allow("192.0.2.1")
    assert limiter.allow("192.0.2.2")
    clock.now += 1
    assert limiter.allow("192.0.2.1")


def test_memory_is_bounded_forgetting_the_idlest_source():
    clock = Clock()
    limiter = RateLimiter(rate=0.001, burst=1, clock=clock, max_sources=2)
    assert limiter.allow("a") and limiter.allow("b")
    assert not limiter.allow("a")  # "a" is now the most recent, "b" the idlest
    assert limiter.allow("c")  # evicts "b"
    assert limiter.allow("b")  # forgotten, so a fresh bucket (evicts "a")
    assert limiter.allow("a")


def test_an_ipv6_slash_64_is_one_source():
    limiter = RateLimiter(rate=0.001, burst=1, clock=Clock(), max_sources=2)
    assert limiter.allow("2001:db8:1:2::5")
    assert not limiter.allow("2001:db8:1:2::6")  # a fresh address in the same /64
    assert not limiter.allow("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert limiter.allow("2001:db8:1:3::5") and limiter.allow("::ffff:192.0.2.1")
    assert not limiter.allow("192.0.2.1")  # IPv4-mapped or not, one address
