"""load.runner without a network: LoadRun on a task.Clock with HACs that answer after a
delay (or fail), bootstrap only — the schedule reaches the MNs, every attempt is one
event, the run ends once the last attempt is in, and a signal's stop_now reports at once."""

from types import SimpleNamespace

from twisted.internet import defer, task

from aaa_mip6.sa import HomeAgent
from load.runner import LoadRun, RunOptions
from mn.bootstrap import BootstrapFailed, Bootstrapped

HOME_AGENT = HomeAgent(None, None, 7872)


class SlowHacs:
    """A HacSet stand-in: MN ``mn1`` is refused with 503, every other one gets an SA after
    ``delay`` seconds."""

    def __init__(self, clock, delay):
        self.clock, self.delay = clock, delay
        self.last_used = "hac.example:4433"

    def bootstrap(self, make_machine, timeout):
        mn_id = make_machine()
        if mn_id == "mn1":
            return defer.fail(BootstrapFailed("init: HAC status 503", step="init",
                                              reason="status", status=503))
        sa = SimpleNamespace(spi=1000 + int(mn_id[2:]))
        return task.deferLater(self.clock, self.delay, lambda: Bootstrapped(sa, None))


def advance(clock, seconds):
    """Clock.advance in quarter seconds: a call due inside one big step would see the
    step's end as its time."""
    for _ in range(round(seconds / 0.25)):
        clock.advance(0.25)


def make_run(clock, delay=0.75, **options):
    settings = dict(indices=(0, 1, 2), rate=2.0, duration=1.5, timeout=5.0)
    settings.update(options)
    return LoadRun(clock, RunOptions(**settings),
                   lambda number: (f"mn{number}", lambda: f"mn{number}"),
                   lambda: SlowHacs(clock, delay))


def test_each_mn_bootstraps_on_schedule_and_the_run_ends_after_the_last_answer():
    clock = task.Clock()
    run = make_run(clock)
    finished = run.start()
    advance(clock, 0.5)  # mn1 starts at 0.5 and is refused at once
    assert [(e.mn, e.status, e.at) for e in run.recorder.events] == [("mn1", "503", "init")]
    advance(clock, 0.25)
    assert [(e.mn, e.status, e.spi) for e in run.recorder.events][1:] == [("mn0", "ok", 1000)]
    advance(clock, 0.75)  # the duration (1.5) is over; mn2 (started at 1.0) is not in yet
    assert not finished.called and len(run.recorder.events) == 2
    advance(clock, 0.25)
    elapsed, registered = finished.result
    assert registered is None and elapsed == 1.75
    mn2 = run.recorder.events[-1]
    assert (mn2.mn, mn2.t, mn2.latency_s, mn2.spi) == ("mn2", 1.75, 0.75, 1002)
    assert mn2.hac == "hac.example:4433"


def test_an_answer_before_the_end_lets_the_run_end_on_time():
    clock = task.Clock()
    finished = make_run(clock, delay=0.25).start()
    advance(clock, 1.25)
    assert not finished.called
    advance(clock, 0.25)
    assert finished.result == (1.5, None)


def test_stop_now_ends_the_run_with_what_is_in():
    clock = task.Clock()
    run = make_run(clock, duration=100.0, repeat=True)
    finished = run.start()
    advance(clock, 0.75)
    run.stop_now()
    elapsed, _ = finished.result
    assert elapsed == 0.75 and [e.mn for e in run.recorder.events] == ["mn1", "mn0"]
    assert run.recorder.counters["missed-slots"] == 0
