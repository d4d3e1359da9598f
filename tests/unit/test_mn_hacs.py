"""mn.hacs: the order several HACs are tried in, the time each try gets, the rounds and
their backoff; mip6-mn's --hac flag (repeated, comma-separated); and mn.hacset, the
shell that walks them (on a task.Clock, mn.client.bootstrap replaced)."""

from datetime import datetime, timedelta, timezone

import pytest
from twisted.internet import defer, task

from aaa_mip6.errors import ConfigError
from mn import cli, hacset
from mn.actions import GiveUp, Wait
from mn.bootstrap import BootstrapFailed
from mn.hacs import MIN_ATTEMPT_TIMEOUT, Candidate, HacWalk, Try, split_hac_flags

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
A = Candidate("hac.example", "192.0.2.1", 4433)
B = Candidate("hac.example", "2001:db8::1", 4433)
C = Candidate("198.51.100.7", "198.51.100.7", 4433)


def unreachable() -> BootstrapFailed:
    return BootstrapFailed("connect: refused", step="connect", reason="connect")


def status(code: int, retry_after: float | None = None) -> BootstrapFailed:
    return BootstrapFailed(f"init: HAC status {code}", step="init", reason="status",
                           status=code, retry_after=None if retry_after is None
                           else NOW + timedelta(seconds=retry_after))


def test_flags_split_on_commas_and_repeat_in_order():
    assert split_hac_flags(["a:1,b:2", " c:3 ", "d:4,"]) == ["a:1", "b:2", "c:3", "d:4"]
    assert cli.parse_hacs(["h.example:7443,[::1]:4433", "127.0.0.1:1"]) == [
        ("h.example", 7443), ("::1", 4433), ("127.0.0.1", 1)]
    with pytest.raises(ConfigError, match="--hac"):
        split_hac_flags([" , "])
    with pytest.raises(ConfigError, match="--hac 'x:0'"):
        cli.parse_hacs(["a:1,x:0"])


def test_the_parser_takes_the_flag_repeated():
    args = cli.build_parser().parse_args(
        ["bootstrap", "--hac", "a:1", "--hac", "b:2,c:3", "--ca", "ca.pem", "--id", "x@y",
         "--psk", "00"])
    assert cli.parse_hacs(args.hac) == [("a", 1), ("b", 2), ("c", 3)]


def test_candidates_in_order_each_with_a_share_of_the_time_left():
    walk = HacWalk(deadline=30.0)
    walk.begin_round([A, B, C])
    assert walk.next_step(0.0, 0.5) == Try(A, 10.0)
    assert walk.failed(unreachable(), NOW) is None
    assert walk.next_step(10.0, 0.5) == Try(B, 10.0)  # 20 s left, 2 candidates
    assert walk.failed(status(503), NOW) is None
    assert walk.next_step(12.0, 0.5) == Try(C, 18.0)


def test_a_try_gets_at_least_the_minimum_but_never_past_the_deadline():
    walk = HacWalk(deadline=6.0)
    walk.begin_round([A, B, C])
    assert walk.next_step(0.0, 0.0) == Try(A, MIN_ATTEMPT_TIMEOUT)
    walk.failed(unreachable(), NOW)
    assert walk.next_step(4.0, 0.0) == Try(B, 2.0)


def test_the_hac_that_last_worked_goes_first_and_duplicates_are_tried_once():
    walk = HacWalk(deadline=30.0, preferred=C)
    walk.begin_round([A, C, A, B])
    steps = []
    while isinstance(step := walk.next_step(0.0, 0.0), Try):
        steps.append(step.candidate)
        walk.failed(unreachable(), NOW)
    assert steps == [C, A, B]
    walk.succeeded(B)
    assert walk.preferred == B


def test_a_refusal_ends_the_walk_at_once():
    walk = HacWalk(deadline=30.0)
    walk.begin_round([A, B])
    walk.next_step(0.0, 0.0)
    refused = status(401)
    assert walk.failed(refused, NOW) == GiveUp("refused", str(refused))
    assert isinstance(walk.next_step(0.0, 0.0), GiveUp)
    assert walk.last_error is refused


def test_rounds_wait_with_backoff_and_retry_after_then_give_up():
    walk = HacWalk(deadline=100.0, rounds=3)
    walk.begin_round([A])
    walk.next_step(0.0, 0.0)
    walk.failed(unreachable(), NOW)
    assert walk.next_step(1.0, 0.0) == Wait(0.5, 1)  # 1 s, jitter 0.5..1
    walk.begin_round([A])
    walk.next_step(2.0, 0.0)
    walk.failed(status(503, retry_after=7.0), NOW)
    assert walk.next_step(3.0, 0.99) == Wait(7.0, 2)  # retry-after beats 2 s of backoff
    walk.begin_round([A])
    walk.next_step(10.0, 0.0)
    walk.failed(unreachable(), NOW)
    assert walk.next_step(11.0, 0.0) == GiveUp("rounds", "every HAC failed in 3 round(s)")


def test_a_try_the_deadline_cut_short_does_not_hide_the_answer_before_it():
    walk = HacWalk(deadline=30.0)
    walk.begin_round([A])
    walk.next_step(0.0, 0.0)
    gateway_timeout = status(504)
    walk.failed(gateway_timeout, NOW)
    walk.next_step(20.0, 0.0)  # a Wait; the next round's try runs until the deadline
    walk.begin_round([A])
    assert walk.next_step(21.0, 0.0) == Try(A, 9.0)
    cut = BootstrapFailed("eap: no result within 9 s", step="eap", reason="timeout")
    walk.failed(cut, NOW)
    assert walk.last_error is gateway_timeout
    walk.begin_round([A, B])  # a try with a share of its own: its timeout is the news
    walk.next_step(0.0, 0.0)
    own = BootstrapFailed("eap: no result within 15 s", step="eap", reason="timeout")
    walk.failed(own, NOW)
    assert walk.last_error is own


def test_no_wait_runs_past_the_deadline():
    walk = HacWalk(deadline=5.0)
    walk.begin_round([A])
    walk.next_step(0.0, 0.0)
    walk.failed(unreachable(), NOW)
    assert isinstance(walk.next_step(4.8, 0.0), GiveUp)
    assert isinstance(walk.next_step(5.0, 0.0), GiveUp)


def test_a_name_that_resolved_to_nothing_gives_up_with_nothing_to_try():
    walk = HacWalk(deadline=5.0, rounds=1)
    walk.begin_round([])
    assert isinstance(walk.next_step(0.0, 0.0), GiveUp)
    assert walk.last_error is None


def test_candidates_name_their_address():
    assert str(A) == "hac.example:4433 (192.0.2.1)"
    assert str(C) == "198.51.100.7:4433"
    assert str(Candidate("::1", "::1", 1)) == "[::1]:1"


# --------------------------------------------------------------------------- the shell


class FakeBootstraps:
    """mn.client.bootstrap replaced: each (address, port) answers as told, on a Clock."""

    def __init__(self, clock, answers):
        self.clock = clock
        self.answers = answers  # address -> Bootstrapped or BootstrapFailed
        self.calls = []

    def __call__(self, reactor, via, port, machine, *, timeout):
        self.calls.append((via.host, port, via.tls, timeout))
        answer = self.answers[via.host]
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)


@pytest.fixture
def clock_and_client(monkeypatch):
    clock = task.Clock()

    def install(answers):
        fake = FakeBootstraps(clock, answers)
        monkeypatch.setattr(hacset.client, "bootstrap", fake)
        return fake
    return clock, install


def test_hac_set_moves_on_to_the_live_hac_and_prefers_it_next_time(clock_and_client):
    clock, install = clock_and_client
    fake = install({"192.0.2.1": unreachable(), "192.0.2.2": "result"})
    made = []
    hacs = hacset.HacSet(clock, [("192.0.2.1", 1), ("192.0.2.2", 2)],
                         lambda host: made.append(host) or f"tls-{host}", draw=lambda: 0.0)
    assert made == ["192.0.2.1", "192.0.2.2"]
    first = hacs.bootstrap(lambda: "machine", 30.0)
    assert first.result == "result"
    assert [call[:3] for call in fake.calls] == [("192.0.2.1", 1, "tls-192.0.2.1"),
                                                ("192.0.2.2", 2, "tls-192.0.2.2")]
    assert str(hacs.last_used) == "192.0.2.2:2"
    second = hacs.bootstrap(lambda: "machine", 30.0)
    assert second.result == "result" and fake.calls[-1][0] == "192.0.2.2"
    assert len(fake.calls) == 3


def test_hac_set_waits_between_rounds_then_fails_with_the_last_error(clock_and_client):
    clock, install = clock_and_client
    last = status(503)
    fake = install({"192.0.2.1": last})
    hacs = hacset.HacSet(clock, [("192.0.2.1", 1)], lambda host: None, draw=lambda: 0.0)
    running = hacs.bootstrap(lambda: "machine", 30.0, rounds=2)
    assert len(fake.calls) == 1 and not running.called
    clock.advance(0.49)
    assert len(fake.calls) == 1
    clock.advance(0.01)  # the first round's wait: 1 s with the lowest jitter, 0.5
    assert len(fake.calls) == 2
    assert running.called
    failure = []
    running.addErrback(failure.append)
    assert failure[0].value is last


def test_hac_set_names_unresolvable_hacs(clock_and_client, monkeypatch):
    clock, install = clock_and_client
    install({})
    hacs = hacset.HacSet(clock, [("192.0.2.1", 1)], lambda host: None)
    monkeypatch.setattr(hacs, "candidates", lambda: defer.succeed([]))
    failure = []
    hacs.bootstrap(lambda: "machine", 5.0, rounds=1).addErrback(failure.append)
    assert failure[0].value.reason == "connect"
    assert "cannot resolve the HAC(s) 192.0.2.1:1" in str(failure[0].value)
