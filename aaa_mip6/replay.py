"""Anti-replay sliding window for MN-HA packets (RFC 4303 §3.4.3, 32-bit numbers).

RFC 6618 packets start at Sequence Number 0 (project interpretation, notes §6),
so unlike ESP, 0 is a valid first number. The receiver calls :meth:`check` before
the ICV (cheap rejection of replays) and :meth:`accept` only once the ICV has
verified, so a forged packet can never move the window.
"""

from __future__ import annotations

from .errors import ReplayError

SEQ_LIMIT = 1 << 32
DEFAULT_WINDOW = 64
MIN_WINDOW = 64  # RFC 4303 §3.4.3: a window of at least 32, SHOULD 64
MAX_WINDOW = 4096


class ReplayWindow:
    """The highest number accepted so far and a bitmap of the ``size`` numbers at and below it.

    The bitmap is one Python int (bit i: ``highest - i`` was accepted), so a check is a
    shift and a mask, and a snapshot is two ints.
    """

    __slots__ = ("size", "_highest", "_seen", "_mask")

    def __init__(self, size: int = DEFAULT_WINDOW):
        if not MIN_WINDOW <= size <= MAX_WINDOW:
            raise ValueError(f"replay window size must be {MIN_WINDOW}..{MAX_WINDOW}, got {size}")
        self.size = size
        self._highest = -1  # nothing accepted yet
        self._seen = 0  # bit i set: highest - i was accepted
        self._mask = (1 << size) - 1

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, highest={self.highest})"

    @property
    def highest(self) -> int | None:
        """The highest sequence number accepted, None before the first packet."""
        return None if self._highest < 0 else self._highest

    def start_after(self, seq: int) -> None:
        """Refuse every number up to ``seq`` (a restored floor): as if all had been accepted."""
        if not 0 <= seq < SEQ_LIMIT:
            raise ValueError(f"sequence number {seq} is not a 32-bit number")
        self._highest = seq
        self._seen = self._mask

    def snapshot(self) -> tuple[int, int]:
        """The window's whole state (highest number, bitmap), to compare two moments."""
        return self._highest, self._seen

    def check(self, seq: int) -> None:
        """Raise ReplayError if ``seq`` was accepted already or is left of the window."""
        if not 0 <= seq < SEQ_LIMIT:
            raise ValueError(f"sequence number {seq} is not a 32-bit number")
        behind = self._highest - seq
        if behind < 0:
            return
        if behind >= self.size:
            raise ReplayError(f"sequence number {seq} is left of the replay window")
        if self._seen >> behind & 1:
            raise ReplayError(f"sequence number {seq} was already received")

    def accept(self, seq: int) -> None:
        """Record ``seq`` as received (after its ICV verified); rejects replays like check()."""
        ahead = seq - self._highest
        if ahead > 0:  # new highest: never seen, only the range to check
            if seq >= SEQ_LIMIT:
                raise ValueError(f"sequence number {seq} is not a 32-bit number")
            # A jump past the window forgets it all; shifting by it would build an int of
            # up to 2^32 bits first (half a gigabyte for one packet).
            self._seen = (self._seen << ahead | 1) & self._mask if ahead < self.size else 1
            self._highest = seq
        else:
            self.check(seq)
            self._seen |= 1 << -ahead
