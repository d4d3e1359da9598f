"""aaa_mip6.replay, rule by rule (RFC 4303 §3.4.3): each test states one rule of the
anti-replay window and kills the mutants of ``make mutation`` (docs/mutation.md) that
would break it.

Equivalent mutants (survive by design, nothing observable changes):

- ``ReplayWindow.__init__``: ``self._highest = -2`` instead of ``-1``. Any negative
  value means "nothing accepted": ``highest`` reads None, ``check`` returns early
  (``behind < 0``) and the first ``accept`` is "ahead" whatever the sentinel.
- ``ReplayWindow.__init__``: ``self._seen = 1`` instead of ``0``. Before the first
  packet bit 0 stands for number -1; ``accept`` shifts it to ``highest + 1`` behind,
  and no 32-bit number is ever that far behind (``check`` only looks up ``behind <=
  highest``), so it is never read.
- ``ReplayWindow.accept``: ``ahead <= self.size`` instead of ``<``. A jump of exactly
  ``size`` shifts every remembered bit out of the mask, which leaves just bit 0: the
  same bitmap the reset branch writes.
"""

from __future__ import annotations

import tracemalloc

import pytest

from aaa_mip6.replay import MAX_WINDOW, MIN_WINDOW, SEQ_LIMIT, ReplayWindow


@pytest.mark.parametrize("size", [MIN_WINDOW, MAX_WINDOW])
def test_window_sizes_from_64_to_4096_inclusive_are_accepted(size):
    """RFC 4303 §3.4.3: at least 32, SHOULD 64; the project allows 64..4096, both ends."""
    window = ReplayWindow(size)
    window.accept(size)
    window.accept(1)  # size - 1 behind: the oldest number inside
    with pytest.raises(Exception, match="left of"):
        window.check(0)


@pytest.mark.parametrize("size", [MIN_WINDOW - 1, MAX_WINDOW + 1])
def test_a_window_size_out_of_range_is_refused_naming_the_range(size):
    with pytest.raises(ValueError, match=f"64..4096, got {size}"):
        ReplayWindow(size)


@pytest.mark.parametrize("size", [MIN_WINDOW, 65, MAX_WINDOW])
def test_the_window_remembers_at_most_size_numbers(size):
    """The state is bounded by the window: the bitmap never holds more than ``size`` bits,
    however far a (verified) number jumps ahead, so a peer cannot make it grow."""
    window = ReplayWindow(size)
    for seq in range(3 * size):
        window.accept(seq)
    assert window.snapshot()[1].bit_length() <= size
    window.accept(SEQ_LIMIT - 1)
    window.accept(SEQ_LIMIT - 2)
    assert window.snapshot()[1].bit_length() <= size
    restored = ReplayWindow(size)
    restored.start_after(10 * size)
    assert restored.snapshot()[1].bit_length() <= size


@pytest.mark.parametrize("call", ["check", "accept", "start_after"])
@pytest.mark.parametrize("bad", [-1, SEQ_LIMIT, SEQ_LIMIT + 1])
def test_a_number_outside_32_bits_is_a_value_error_naming_it(call, bad):
    """Sequence Numbers are 32-bit (RFC 6618 §6): 2^32 is not the next number, it is a
    caller's bug, refused whatever the window holds."""
    window = ReplayWindow()
    if call == "accept" and bad < 0:
        window.accept(5)  # a negative number is behind: check() refuses it
    with pytest.raises(ValueError, match=f"sequence number {bad} is not a 32-bit number"):
        getattr(window, call)(bad)


@pytest.mark.parametrize("size", [MIN_WINDOW, MAX_WINDOW])
def test_a_jump_far_ahead_costs_no_more_memory_than_the_window(size):
    """Accepting a number 2^32 - 2 ahead (any verified packet may carry it) forgets the
    window; it must not build the shifted bitmap first (half a gigabyte, seconds of CPU
    on the HA's only thread)."""
    window = ReplayWindow(size)
    window.accept(1)
    tracemalloc.start()
    try:
        window.accept(SEQ_LIMIT - 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert window.snapshot() == (SEQ_LIMIT - 1, 1)
    window.accept(SEQ_LIMIT - 1 - (size - 1))  # the oldest number inside is still new
    with pytest.raises(Exception, match="left of"):
        window.check(SEQ_LIMIT - 1 - size)
