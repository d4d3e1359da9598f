"""mn.session.first_bootstrap: the MN waits out a 503's retry-after (a HAC whose store
fails over), within its timeout, and fails at once on anything else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from twisted.internet import defer, task

from mn.bootstrap import BootstrapFailed
from mn.session import first_bootstrap


def unavailable(seconds: float) -> BootstrapFailed:
    later = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return BootstrapFailed("HAC status 503", step="done", reason="status", status=503,
                           retry_after=later)


def run(answers: list, timeout: float):
    """first_bootstrap against a renew() giving ``answers`` in turn; (outcome, calls at)."""
    clock = task.Clock()
    calls = []

    def renew():
        calls.append(clock.seconds())
        answer = answers.pop(0)
        return defer.fail(answer) if isinstance(answer, Exception) else defer.succeed(answer)

    outcome = []
    first_bootstrap(clock, renew, timeout).addBoth(outcome.append)
    for _ in range(100):
        clock.advance(0.5)
    return outcome[0], calls


def test_503_is_tried_again_after_its_retry_after():
    outcome, calls = run([unavailable(3), unavailable(3), "sa"], timeout=30)
    assert outcome == "sa"
    assert len(calls) == 3 and all(later - earlier >= 2.5 for earlier, later
                                   in zip(calls, calls[1:]))


def test_a_retry_after_past_the_timeout_fails_with_the_503():
    outcome, calls = run([unavailable(60)], timeout=30)
    assert isinstance(outcome.value, BootstrapFailed) and outcome.value.status == 503
    assert calls == [0]


@pytest.mark.parametrize("error", [
    BootstrapFailed("HAC status 500", step="done", reason="status", status=500),
    BootstrapFailed("refused", step="connect", reason="connect"),
])
def test_other_failures_end_it_at_once(error):
    outcome, calls = run([error, "sa"], timeout=30)
    assert outcome.value is error and calls == [0]
