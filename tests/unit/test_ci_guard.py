"""The CI guard of tests/conftest.py: an integration test that skips fails under CI."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parents[1] / "conftest.py").read_text()
SKIPPING_TESTS = """
import pytest

@pytest.mark.integration
def test_integration_skips():
    pytest.skip("freeradius is not installed")

def test_unit_skips():
    pytest.skip("not applicable here")
"""


@pytest.mark.parametrize("ci, failed, skipped", [("true", 1, 1), ("", 0, 2)])
def test_integration_skips_fail_only_in_ci(pytester, monkeypatch, ci, failed, skipped):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    integration: real servers\n")
    pytester.makepyfile(SKIPPING_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(failed=failed, skipped=skipped)
    if failed:
        result.stdout.fnmatch_lines(["*this one skipped*freeradius is not installed*"])
