"""The MN's rebootstrap policy (mn.rebootstrap), sans-I/O: when, and when to give up."""

from datetime import datetime, timezone

import pytest

from mn import rebootstrap
from mn.bootstrap import BootstrapFailed
from mn.actions import GiveUp, Wait
from mn.rebootstrap import RebootstrapPolicy

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
REFUSED = BootstrapFailed("HAC status 401 Unauthorized", step="init", reason="status",
                          status=401)
OUT_OF_REACH = BootstrapFailed("connect: refused", step="connect", reason="connect")


def test_first_goes_at_once_then_1_2_4_8_seconds_then_gives_up_naming_the_cause():
    policy = RebootstrapPolicy()
    steps = [policy.asked("reinit-sa-with-hac") for _ in range(rebootstrap.MAX_IN_A_ROW + 1)]
    assert steps[:-1] == [Wait(0.0, 0), Wait(1.0, 1), Wait(2.0, 2), Wait(4.0, 3), Wait(8.0, 4)]
    assert steps[-1] == GiveUp("rebootstrap-loop", "5 rebootstraps in a row got no "
                               "registration (the last: reinit-sa-with-hac); giving up")


def test_a_registration_makes_the_next_go_at_once():
    policy = RebootstrapPolicy()
    policy.asked("sa-expiry")
    policy.asked("reinit-sa-with-hac")
    policy.registered()
    assert policy.asked("reinit-sa-with-hac") == Wait(0.0, 0)


def test_a_refusal_ends_at_once_and_a_hac_out_of_reach_is_tried_on_the_schedule():
    assert RebootstrapPolicy().failed(REFUSED, NOW) == GiveUp(
        "rebootstrap-failed", "HAC status 401 Unauthorized")
    policy = RebootstrapPolicy()
    policy.asked("reinit-sa-with-hac")  # the first try, which failed
    assert policy.failed(OUT_OF_REACH, NOW) == Wait(1.0, 1)
    assert policy.failed(OUT_OF_REACH, NOW) == Wait(2.0, 2)


def test_a_hac_that_stays_out_of_reach_gives_up_naming_the_failure():
    policy = RebootstrapPolicy()
    policy.asked("reinit-sa-with-hac")
    steps = [policy.failed(OUT_OF_REACH, NOW) for _ in range(rebootstrap.MAX_IN_A_ROW)]
    assert steps[-1] == GiveUp("rebootstrap-loop", "5 rebootstraps in a row got no "
                               "registration (the last: connect: refused); giving up")


def test_retry_after_is_waited_out_even_past_the_backoff():
    busy = BootstrapFailed("HAC status 503", step="init", reason="status", status=503,
                           retry_after=datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc))
    policy = RebootstrapPolicy()
    policy.asked("sa-expiry")
    assert policy.failed(busy, NOW) == Wait(30.0, 1)


@pytest.mark.parametrize("error, wait", [
    (BootstrapFailed("x", step="connect", reason="connect"), 0.0),
    (BootstrapFailed("x", step="done", reason="timeout"), 0.0),
    (BootstrapFailed("x", step="eap", reason="closed"), 0.0),
    (BootstrapFailed("x", step="init", reason="status", status=504), 0.0),
    (BootstrapFailed("x", step="init", reason="status", status=503,
                     retry_after=datetime(2026, 1, 1, 0, 0, 40, tzinfo=timezone.utc)), 40.0),
    (BootstrapFailed("x", step="init", reason="status", status=503,
                     retry_after=datetime(2025, 1, 1, tzinfo=timezone.utc)), 0.0),
    (BootstrapFailed("x", step="init", reason="status", status=503,
                     retry_after=datetime(2027, 1, 1, tzinfo=timezone.utc)),
     rebootstrap.MAX_RETRY_AFTER),
    (BootstrapFailed("x", step="init", reason="status", status=401), None),
    (BootstrapFailed("x", step="init", reason="status", status=501), None),
    (BootstrapFailed("x", step="tls", reason="certificate"), None),
    (BootstrapFailed("x", step="init", reason="bad-auth"), None),
    (ValueError("not a bootstrap failure"), None),
])
def test_retry_wait_retries_only_what_may_pass(error, wait):
    assert rebootstrap.retry_wait(error, NOW) == wait
