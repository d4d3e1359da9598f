"""aaa_mip6.logthrottle: one line per key per interval, with the count held back."""

import pytest

from aaa_mip6.logthrottle import LogThrottle


def test_one_line_per_key_per_interval_then_the_count_held_back():
    throttle = LogThrottle(10.0)
    assert throttle.admit("malformed", 100.0) == 0
    assert [throttle.admit("malformed", 100.0 + step) for step in (1, 5, 9.9)] == [None] * 3
    assert throttle.admit("bad-icv", 101.0) == 0  # another key has its own interval
    assert throttle.admit("malformed", 110.0) == 3
    assert throttle.admit("malformed", 115.0) is None
    assert throttle.admit("malformed", 200.0) == 1


def test_a_quiet_key_starts_afresh():
    throttle = LogThrottle(1.0)
    assert throttle.admit("replay", 0.0) == 0
    assert throttle.admit("replay", 5.0) == 0


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError):
        LogThrottle(0)
