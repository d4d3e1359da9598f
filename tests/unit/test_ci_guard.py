"""The CI guard of tests/conftest.py: an integration test that skips fails under CI,
unless the installed server build lacks the feature (tests.support.SERVER_BUILD_GAP)."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).parents[2]
CONFTEST = (ROOT / "tests" / "conftest.py").read_text()
SKIPPING_TESTS = """
import pytest

@pytest.mark.integration
def test_integration_skips():
    pytest.skip("freeradius is not installed")

def test_unit_skips():
    pytest.skip("not applicable here")

@pytest.mark.integration
def test_server_build_lacks_a_feature():
    pytest.skip("not in this server build: hostapd has no EAP-pwd server")
"""


@pytest.mark.parametrize("ci, failed, skipped", [("true", 1, 2), ("", 0, 3)])
def test_integration_skips_fail_in_ci_unless_the_server_build_lacks_the_feature(pytester, monkeypatch, ci, failed, skipped):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the conftest imports tests.support
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    integration: real servers\n")
    pytester.makepyfile(SKIPPING_TESTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(failed=failed, skipped=skipped)
    if failed:
        result.stdout.fnmatch_lines(["*this one skipped*freeradius is not installed*"])
