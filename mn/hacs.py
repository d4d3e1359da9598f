"""Which HAC the MN asks next when it knows several, and how long it waits: the policy, sans-I/O.

``mip6-mn --hac`` takes several HACs (comma-separated or the flag repeated), and a DNS
name may stand for several addresses (A/AAAA records). The shell (:mod:`mn.hacset`)
resolves the names and connects; a :class:`HacWalk` decides, for one bootstrap, which
address comes next and with how much of the time left. Rules:

- Candidates are tried in the order given (a name's addresses in the resolver's order),
  except that the address that last gave an SA goes first: an MN sticks to a working HAC.
- A failure another HAC may not have (the HAC out of reach, closed, timed out, or
  answering 500, 503 or 504: :func:`mn.rebootstrap.retry_wait`) moves on to the next
  candidate at once. A refusal or a failed check (401, a certificate or ``auth`` that
  does not verify) ends the bootstrap: every HAC of one deployment shares its
  credentials, so asking the next one cannot help.
- Each try gets an equal share of the time left among the candidates left in the round,
  at least MIN_ATTEMPT_TIMEOUT, so one silent address cannot eat the whole deadline.
- The error a bootstrap ends with is the last try's, unless that try only ran out of the
  bootstrap's own deadline: then the answer before it (e.g. a HAC's 504) says more.
- When every candidate failed, the next round waits ROUND_BACKOFF (1, 2, 4 s with
  jitter; never less than the longest ``retry-after`` a HAC sent), up to ``rounds``
  rounds and never past the deadline. The rebootstrap path asks for one round: its own
  policy (:mod:`mn.rebootstrap`) spaces the rounds.

RFC 6618 says nothing of several HACs: this is the project's reading (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aaa_mip6.backoff import Backoff
from aaa_mip6.errors import ConfigError

from .actions import GiveUp, Wait
from .rebootstrap import retry_wait

MIN_ATTEMPT_TIMEOUT = 5.0  # seconds: the least one try gets while time is left
ROUND_BACKOFF = Backoff(1.0, 16.0, jitter=(0.5, 1.0))
DEFAULT_ROUNDS = 4  # rounds over every candidate for the first bootstrap


def split_hac_flags(values: Iterable[str]) -> list[str]:
    """``--hac`` values (repeated, each maybe comma-separated) as one list of HOST:PORT."""
    hacs = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not hacs:
        raise ConfigError("--hac: name at least one HAC as HOST:PORT")
    return hacs


@dataclass(frozen=True)
class Candidate:
    """One address to try: ``name`` is the HAC as given (the name its certificate must
    carry), ``address`` the IP address to connect to (the name itself when it is one)."""

    name: str
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.name}]" if ":" in self.name else self.name
        via = "" if self.address == self.name else f" ({self.address})"
        return f"{host}:{self.port}{via}"


@dataclass(frozen=True)
class Try:
    """Bootstrap with ``candidate``, giving up on it after ``timeout`` seconds."""

    candidate: Candidate
    timeout: float


class HacWalk:
    """One bootstrap's way through the candidates (see the module docstring).

    The shell calls :meth:`begin_round` with freshly resolved candidates, then
    :meth:`next_step` until it gets a :class:`Try` that works (then :meth:`succeeded`),
    a :class:`GiveUp` (raise :attr:`last_error`), or a :class:`Wait` (wait, resolve
    again, :meth:`begin_round`). Times are the shell's monotonic seconds; ``draw`` is a
    random number in [0, 1) for the jitter of each round's wait.
    """

    def __init__(self, deadline: float, *, preferred: Candidate | None = None,
                 rounds: int = DEFAULT_ROUNDS):
        self.deadline = deadline
        self.preferred = preferred
        self.rounds = rounds
        self.rounds_begun = 0
        self.last_error: Exception | None = None
        self._queue: list[Candidate] = []
        self._at_least = 0.0  # the longest retry-after of this round
        self._refused: GiveUp | None = None
        self._until_deadline = False  # the try under way may run until the deadline

    def begin_round(self, candidates: Sequence[Candidate]) -> None:
        ordered = list(dict.fromkeys(candidates))
        if self.preferred in ordered:
            ordered.remove(self.preferred)
            ordered.insert(0, self.preferred)
        self._queue = ordered
        self._at_least = 0.0
        self.rounds_begun += 1

    def next_step(self, now: float, draw: float) -> Try | Wait | GiveUp:
        if self._refused is not None:
            return self._refused
        left = self.deadline - now
        if left <= 0:
            return GiveUp("timeout", "no HAC gave an SA in time")
        if self._queue:
            candidate = self._queue.pop(0)
            share = left / (len(self._queue) + 1)
            timeout = min(left, max(MIN_ATTEMPT_TIMEOUT, share))
            self._until_deadline = timeout >= left
            return Try(candidate, timeout)
        if self.rounds_begun >= self.rounds:
            return GiveUp("rounds", f"every HAC failed in {self.rounds_begun} round(s)")
        delay = max(ROUND_BACKOFF.delay(self.rounds_begun - 1, draw), self._at_least)
        if now + delay >= self.deadline:
            return GiveUp("timeout", "no HAC gave an SA in time")
        return Wait(delay, self.rounds_begun)

    def failed(self, error: Exception, wall_now: datetime) -> GiveUp | None:
        """A try failed with ``error``: None to go on, or GiveUp when no HAC can help."""
        cut_short = self._until_deadline and getattr(error, "reason", None) == "timeout"
        if not (cut_short and self.last_error is not None):
            self.last_error = error
        wait = retry_wait(error, wall_now)
        if wait is None:
            self._refused = GiveUp("refused", str(error))
            return self._refused
        self._at_least = max(self._at_least, wait)
        return None

    def succeeded(self, candidate: Candidate) -> None:
        self.preferred = candidate
