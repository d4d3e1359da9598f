"""RFC 4303 §3.4.3 anti-replay window, with Sequence Number 0 as the first valid number."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.errors import ReplayError
from aaa_mip6.replay import DEFAULT_WINDOW, SEQ_LIMIT, ReplayWindow


def test_zero_is_the_first_valid_number_and_only_once():
    window = ReplayWindow()
    assert window.size == DEFAULT_WINDOW == 64
    assert window.highest is None
    window.accept(0)
    assert window.highest == 0
    with pytest.raises(ReplayError) as caught:
        window.accept(0)
    assert caught.value.reason == "replay"


def test_left_edge_of_the_window():
    window = ReplayWindow(64)
    window.accept(100)
    with pytest.raises(ReplayError, match="left of"):
        window.check(36)  # 100 - 36 = 64: just outside
    window.accept(37)  # 100 - 37 = 63: the oldest number still inside
    with pytest.raises(ReplayError, match="already"):
        window.check(37)
    window.accept(99)
    window.accept(101)
    with pytest.raises(ReplayError, match="left of"):
        window.check(37)  # the window moved on


def test_check_does_not_change_the_window():
    window = ReplayWindow()
    window.check(5)
    window.check(5)
    assert window.highest is None
    window.accept(5)
    assert window.highest == 5


def test_large_jump_forgets_everything_behind_the_window():
    window = ReplayWindow(64)
    window.accept(1)
    window.accept(1000)
    window.accept(999)
    with pytest.raises(ReplayError):
        window.check(1)


def test_full_32_bit_range():
    window = ReplayWindow()
    window.accept(SEQ_LIMIT - 1)
    with pytest.raises(ReplayError):
        window.check(SEQ_LIMIT - 1)
    for bad in (-1, SEQ_LIMIT):
        with pytest.raises(ValueError):
            window.check(bad)


@pytest.mark.parametrize("size", [1, 32, 63, 4097])
def test_window_size_bounds(size):
    with pytest.raises(ValueError):
        ReplayWindow(size)


def test_configurable_large_window():
    window = ReplayWindow(1024)
    window.accept(2000)
    window.accept(2000 - 1023)
    with pytest.raises(ReplayError):
        window.check(2000 - 1024)


@given(
    st.sampled_from([64, 65, 128, 1024]),
    st.lists(st.integers(min_value=0, max_value=1500), max_size=300),
)
def test_matches_a_simple_model(size, arrivals):
    """Each number is accepted at most once, never left of the window, otherwise always."""
    window = ReplayWindow(size)
    accepted: set[int] = set()
    highest = -1
    for seq in arrivals:
        should_accept = seq not in accepted and seq > highest - size
        try:
            window.accept(seq)
        except ReplayError:
            assert not should_accept
        else:
            assert should_accept
            accepted.add(seq)
            highest = max(highest, seq)
        assert window.highest == (None if highest < 0 else highest)


@given(st.permutations(range(64)))
def test_any_order_inside_the_window_is_accepted_once(order):
    window = ReplayWindow(64)
    for seq in order:
        window.accept(seq)
    for seq in order:
        with pytest.raises(ReplayError):
            window.check(seq)


@pytest.mark.parametrize("floor", [0, 5, 63, 64, 1000, SEQ_LIMIT - 1])
def test_start_after_refuses_everything_up_to_the_floor(floor):
    window = ReplayWindow(64)
    window.start_after(floor)
    assert window.highest == floor
    for seq in range(max(0, floor - 70), floor + 1):
        with pytest.raises(ReplayError):
            window.check(seq)
    if floor + 1 < SEQ_LIMIT:
        window.accept(floor + 1)
        assert window.highest == floor + 1


@pytest.mark.parametrize("bad", [-1, SEQ_LIMIT])
def test_start_after_takes_32_bit_numbers_only(bad):
    with pytest.raises(ValueError):
        ReplayWindow().start_after(bad)
