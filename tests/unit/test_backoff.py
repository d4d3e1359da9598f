"""The one backoff-with-jitter rule (aaa_mip6.backoff) every retry loop uses."""

import math
import random

import pytest

from aaa_mip6.backoff import Backoff


def test_doubles_from_initial_up_to_the_maximum():
    backoff = Backoff(1.0, 60.0)
    assert [backoff.step(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_no_maximum_keeps_doubling():
    assert Backoff(1.0).step(3) == 8.0


def test_a_very_long_outage_neither_overflows_nor_passes_the_maximum():
    backoff = Backoff(2.0, 30.0, jitter=(0.5, 1.0))
    assert backoff.delay(10_000, 0.999) <= 30.0
    assert Backoff(2.0).step(10_000) == math.inf


def test_the_draw_scales_within_the_jitter_as_random_uniform_does():
    backoff = Backoff(1.0, 60.0, jitter=(0.5, 1.0))
    draws, uniform = random.Random(7), random.Random(7)
    for attempt in range(10):
        assert backoff.delay(attempt, draws.random()) == \
            backoff.step(attempt) * uniform.uniform(0.5, 1.0)
    assert backoff.delay(2, 0.0) == 2.0


def test_no_jitter_waits_the_step():
    assert Backoff(1.0, jitter=(1.0, 1.0)).delay(2, 0.7) == 4.0


def test_an_initial_above_the_maximum_waits_the_maximum():
    assert Backoff(120.0, 30.0).step(0) == 30.0


@pytest.mark.parametrize("settings", [dict(initial=0), dict(initial=1, maximum=0),
                                      dict(initial=1, jitter=(1.0, 0.5)),
                                      dict(initial=1, jitter=(-0.1, 1.0))])
def test_refuses_settings_that_cannot_back_off(settings):
    with pytest.raises(ValueError):
        Backoff(**settings)
