"""load.core (the schedule, percentiles, the report and timeline), load.plot (a real PNG),
and mip6-load's flag checks (one line, exit status 2)."""

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from load import cli
from aaa_mip6.control_client import flatten
from load.core import OK, Event, Recorder, Scheduler, percentile
from load.plot import draw


# --------------------------------------------------------------------------- percentiles


def test_percentiles_are_nearest_rank():
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([], 50) is None


@given(st.lists(st.floats(0, 1e6), min_size=1), st.floats(0, 100))
def test_a_percentile_is_a_sample_with_enough_at_or_below_it(samples, fraction):
    ordered = sorted(samples)
    value = percentile(ordered, fraction)
    assert value in ordered
    assert sum(1 for s in ordered if s <= value) >= fraction / 100 * len(ordered)


# --------------------------------------------------------------------------- schedule


def test_each_mn_starts_once_at_the_rate():
    scheduler = Scheduler([0, 1, 2, 3], rate=2.0, duration=2.0)
    assert scheduler.due(0.0) == [0]
    assert scheduler.due(0.49) == []
    assert scheduler.next_due() == 0.5
    assert scheduler.due(1.2) == [1, 2]
    assert scheduler.due(10.0) == [3]
    assert scheduler.next_due() is None
    assert scheduler.missed == 0


def test_the_duration_cuts_the_ramp_short():
    scheduler = Scheduler(range(100), rate=10.0, duration=0.35)
    assert scheduler.due(5.0) == [0, 1, 2, 3]
    assert scheduler.next_due() is None


def test_repeat_goes_round_robin_over_idle_mns_and_counts_missed_slots():
    scheduler = Scheduler([10, 11], rate=1.0, duration=5.0, repeat=True)
    assert scheduler.due(0.0) == [10]
    assert scheduler.due(1.0) == [11]
    assert scheduler.due(2.0) == []  # both busy
    assert scheduler.missed == 1
    scheduler.done(11)
    assert scheduler.due(3.0) == [11]
    scheduler.done(10)
    scheduler.done(11)
    assert scheduler.due(4.0) == [10]
    assert scheduler.next_due() is None  # slot 5 would be at the end
    assert scheduler.slots == 5


@pytest.mark.parametrize("rate,duration,indices", [(0, 1, [0]), (1, 0, [0]), (1, 1, [])])
def test_a_schedule_needs_a_rate_a_duration_and_mns(rate, duration, indices):
    with pytest.raises(ValueError):
        Scheduler(indices, rate, duration)


# --------------------------------------------------------------------------- report


def events():
    return [
        Event(0.1, "mn0@x", "bootstrap", OK, 0.010, spi=1, ha="[::1]:7872"),
        Event(0.2, "mn0@x", "register", OK, 0.002, spi=1, ha="[::1]:7872"),
        Event(0.6, "mn1@x", "bootstrap", OK, 0.030, spi=2, ha="[::1]:7872"),
        Event(1.1, "mn2@x", "bootstrap", "503", 0.005, at="init"),
        Event(1.3, "mn3@x", "bootstrap", "connect", 0.001, at="connect"),
        Event(2.5, "mn1@x", "register", "no-answer", 7.0, spi=2),
    ]


def test_the_report_counts_rates_latencies_and_failures_by_status_and_step():
    recorder = Recorder()
    recorder.extend(events())
    recorder.counters["keepalive-sent"] = 4
    report = recorder.report(elapsed=2.0, settings={"mns": 4}, registered=1, mns=4)
    assert report["ok"] == {"bootstrap": 2, "register": 1, "rebootstrap": 0, "reregister": 0}
    assert report["failed"] == {"bootstrap": 2, "register": 1, "rebootstrap": 0,
                                "reregister": 0}
    assert report["rate_per_s"] == {"bootstrap_ok": 1.0, "bootstrap_attempted": 2.0}
    assert report["latency_s"]["bootstrap"] == {"p50": 0.01, "p90": 0.03, "p99": 0.03,
                                                "max": 0.03, "mean": 0.02}
    assert report["latency_s"]["reregister"]["p50"] is None
    assert report["failures"] == {
        "by_status": {"503": 1, "connect": 1, "no-answer": 1},
        "by_step": {"bootstrap:connect": 1, "bootstrap:init": 1, "register": 1}}
    assert report["counters"] == {"keepalive-sent": 4}
    assert (report["registered_at_end"], report["mns_not_registered"]) == (1, 3)
    json.dumps(report)  # JSON-ready
    assert ("failures.by_status.503", 1) in flatten(report)


def test_the_progress_line_and_the_timeline():
    recorder = Recorder()
    recorder.extend(events())
    line = recorder.progress(2.0, window=5.0, registered=1)
    assert line == "t=2s bootstraps ok 2 failed 3 rate 1.0/s p50 10ms p99 30ms registered 1"
    rows = recorder.timeline(until=4.0)
    assert [row["t"] for row in rows] == [0.0, 1.0, 2.0, 3.0]
    assert [row["bootstrap_ok"] for row in rows] == [2, 0, 0, 0]
    assert [row["failed"] for row in rows] == [0, 2, 1, 0]
    assert rows[0]["bootstrap_p99"] == 0.03 and rows[1]["bootstrap_p50"] is None


def test_events_round_trip_through_json():
    for event in events():
        assert Event.from_json(json.loads(json.dumps(event.as_json()))) == event


def test_the_plot_is_a_png_of_sensible_size(tmp_path):
    recorder = Recorder()
    recorder.extend(events())
    path = tmp_path / "run.png"
    draw(recorder.timeline(until=4.0), path, title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 400 <= width <= 2000 and 300 <= height <= 2000
    assert 5_000 < len(data) < 1_000_000


# --------------------------------------------------------------------------- flags


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    return exit_info.value.code, capsys.readouterr().err


def test_bad_flags_are_one_line_and_exit_2(capsys, tmp_path):
    code, err = run_cli(capsys, "--hac", "h:1", "--ca", "ca.pem", "--psk-file", "p",
                        "--mns", "many")
    assert code == 2 and err.count("\n") == 1 and "--mns" in err
    code, err = run_cli(capsys, "--ca", "ca.pem", "--psk-file", "p")
    assert code == 2 and err.count("\n") == 1 and "--hac" in err


@pytest.mark.parametrize("extra,named", [
    (["--mns", "0"], "--mns"), (["--rate", "-1"], "--rate"), (["--duration", "0"], "--duration"),
    (["--keepalive", "2"], "--keepalive needs --register"),
    (["--id-pattern", "mn{x}"], "--id-pattern"), (["--processes", "9"], "--processes"),
    (["--hac", "h"], "--hac 'h'"), (["--mns", "3"], "has no key for mn2@example.org"),
])
def test_bad_values_name_their_flag(capsys, tmp_path, extra, named):
    psk = tmp_path / "psk.txt"
    psk.write_text("".join(f"mn{n}@example.org {'00' * 16}\n" for n in range(2)))
    psk.chmod(0o600)
    code = cli.main(["--hac", "127.0.0.1:1", "--ca", "ca.pem", "--psk-file", str(psk),
                     "--mns", "2", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and named in err, err


def test_help_explains_the_schedule_and_the_report(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for text in ("--processes", "--keepalive", "round robin", "registered_at_end",
                 "by_step", "nearest-rank", "Exit status"):
        assert text in out, text
