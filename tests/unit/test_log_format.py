"""``--log-format json``: one JSON object a line, with the event and its fields, and the
same set-up for every program (aaa_mip6.program.configure_logging)."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pytest

from aaa_mip6 import program


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _record(message="bootstrap mn-id=%s", args=("mn@example",), level=logging.INFO,
            exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord("hac.server", level, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_object_with_time_level_program_logger_event_and_fields():
    line = program.JsonFormatter("mip6-hac").format(_record(
        event="bootstrap", mn_id="mn@example", spi=4096, status=200, duration_ms=3.2))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == {**parsed, "level": "info", "program": "mip6-hac", "logger": "hac.server",
                      "event": "bootstrap", "message": "bootstrap mn-id=mn@example",
                      "mn_id": "mn@example", "spi": 4096, "status": 200, "duration_ms": 3.2}
    time = datetime.fromisoformat(parsed["time"].replace("Z", "+00:00"))
    assert time.utcoffset().total_seconds() == 0


def test_a_record_without_an_event_is_a_plain_log_line():
    parsed = json.loads(program.JsonFormatter("mip6-ha").format(_record("HA listening", ())))
    assert (parsed["event"], parsed["message"]) == ("log", "HA listening")
    assert set(parsed) == {"time", "level", "program", "logger", "event", "message"}


def _failure() -> tuple:
    try:
        raise OSError("store unreachable")
    except OSError as error:
        return (type(error), error, error.__traceback__)


def test_an_exception_is_a_field_without_traceback_unless_at_debug_level(root_logging):
    formatter = program.JsonFormatter("mip6-hac")
    root_logging.setLevel(logging.INFO)
    quiet = json.loads(formatter.format(
        _record("store failed", (), level=logging.ERROR, exc_info=_failure())))
    assert quiet["error"] == "OSError: store unreachable"
    assert "traceback" not in quiet and "Traceback" not in json.dumps(quiet)
    root_logging.setLevel(logging.DEBUG)  # e.g. log.level debug after a SIGHUP
    loud = json.loads(formatter.format(
        _record("store failed", (), level=logging.ERROR, exc_info=_failure())))
    assert loud["traceback"].startswith("Traceback")


def test_a_value_json_cannot_hold_is_written_as_text():
    import ipaddress
    parsed = json.loads(program.JsonFormatter("mip6-ha").format(
        _record("binding", (), home_address=ipaddress.ip_address("2001:db8::1"))))
    assert parsed["home_address"] == "2001:db8::1"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_configure_logging_installs_one_handler_however_often_it_runs(root_logging, fmt,
                                                                       monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    program.configure_logging("mip6-hac", "info", "text")
    program.configure_logging("mip6-hac", "warning", fmt)
    logging.getLogger("hac.server").info("not at warning level")
    logging.getLogger("hac.server").warning("one line", extra={"event": "reload"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and root_logging.level == logging.WARNING
    if fmt == "json":
        assert json.loads(lines[0])["event"] == "reload"
    else:
        assert lines[0].endswith("WARNING hac.server: one line")


def test_twisted_log_messages_come_out_as_json(root_logging, monkeypatch):
    """The HAC routes Twisted's own messages into logging (STDLibLogObserver)."""
    from twisted.logger import Logger, STDLibLogObserver
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    program.configure_logging("mip6-hac", "info", "json")
    Logger(namespace="twisted.test", observer=STDLibLogObserver()).info("Starting factory {x}",
                                                                        x="f")
    parsed = json.loads(stream.getvalue().splitlines()[-1])
    assert (parsed["program"], parsed["message"]) == ("mip6-hac", "Starting factory f")
