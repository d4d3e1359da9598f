"""Shared pytest settings: hypothesis profiles sized for CI, and no silent skips in CI."""

import os

import pytest
from hypothesis import HealthCheck, settings

from lab.servers import ServerMissing
from tests.support import SERVER_BUILD_GAP

IN_CI = bool(os.environ.get("CI"))

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
# `make mutation` (docs/mutation.md) runs each test once per mutant: fewer examples.
settings.register_profile("mutation", max_examples=10, deadline=None)
settings.load_profile("ci" if IN_CI else "dev")


def _skip_when_a_server_is_missing():
    """A test (or its fixture) that needs a server this machine lacks skips, naming it."""
    try:
        return (yield)
    except ServerMissing as missing:
        pytest.skip(str(missing))


pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_skip_when_a_server_is_missing)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_skip_when_a_server_is_missing)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI an integration test that skips (a server not installed, not root) fails.

    `make test` installs everything these tests drive and CI runs as root, so a skip
    there means a missing install step, which a green run would otherwise hide. A
    feature the installed server build lacks (SERVER_BUILD_GAP) may still skip.
    """
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("integration") \
            and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        if SERVER_BUILD_GAP in str(reason):
            return
        report.outcome = "failed"
        report.longrepr = (f"CI runs every integration test, but this one skipped: {reason} "
                           "(is an install step missing from `make test`?)")
