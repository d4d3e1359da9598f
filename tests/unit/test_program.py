"""The edges every program shares: --version, the failure line, signals, exposed secrets,
the open-file limit."""

import argparse
import logging
import os
import resource
import signal

import pytest

from aaa_mip6 import program


def test_version_flag_prints_program_and_version(capsys):
    parser = argparse.ArgumentParser(prog="mip6-test")
    program.add_version_flag(parser)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"mip6-test {program.version()} ")


def test_fail_prints_one_line_and_returns_its_status(capsys):
    assert program.fail("mip6-x", "store unreachable", program.EXIT_CONFIG) == 2
    assert capsys.readouterr().err == "mip6-x: store unreachable\n"


def test_signals_run_reload_and_status_through_the_scheduler():
    seen = []
    old = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGUSR1)}
    try:
        program.install_signals(lambda call: seen.append(call()), reload=lambda: "reload",
                                status=lambda: "status")
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGUSR1)
    finally:
        for number, handler in old.items():
            signal.signal(number, handler)
    assert seen == ["reload", "status"]


def test_exposed_secret_file_warns_once(tmp_path, caplog):
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o644)
    log = logging.getLogger("test.program")
    with caplog.at_level(logging.WARNING, logger="test.program"):
        program.warn_if_exposed(secret, "PSK file", log)
        program.warn_if_exposed(secret, "PSK file", log)
    assert len(caplog.records) == 1
    assert "chmod 600" in caplog.text and "0644" in caplog.text


def test_private_secret_file_does_not_warn(tmp_path, caplog):
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        program.warn_if_exposed(secret, "key", logging.getLogger("test.program"))
    assert caplog.records == []


def test_open_file_limit_rises_toward_the_hard_limit():
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, before[1]))
        soft, hard = program.raise_open_file_limit(300)
        assert hard == before[1]
        assert soft == (300 if hard == resource.RLIM_INFINITY or hard >= 300 else hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
        assert program.raise_open_file_limit(10)[0] == soft  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
