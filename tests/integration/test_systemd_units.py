"""systemd itself accepts the units of etc/systemd/: ``systemd-analyze verify`` (syntax,
every key known, every Exec binary present and executable) and its offline security
review, on copies that run this checkout's programs instead of /opt/aaa-mip6/bin."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.systemd_units import INSTALLED_BIN, UNIT_DIR, UNITS

pytestmark = pytest.mark.integration

ANALYZE = shutil.which("systemd-analyze")
# Exposure 0.0 (confined) .. 10.0; each unit scores 2.5 or less (the HA, with its TUN
# device and CAP_NET_ADMIN, the most).
MAX_EXPOSURE = 2.5


@pytest.fixture
def units(tmp_path) -> list[Path]:
    if ANALYZE is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    venv_bin = f"{Path(sys.executable).parent}/"
    copies = []
    for unit in sorted(UNITS):
        text = (UNIT_DIR / unit).read_text()
        assert INSTALLED_BIN in text
        (tmp_path / unit).write_text(text.replace(INSTALLED_BIN, venv_bin))
        copies.append(tmp_path / unit)
    return copies


def _analyze(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, *map(str, arguments)], capture_output=True, text=True,
                          timeout=120)


def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(units):
    # --man=no: the programs have no man pages; --recursive-errors=no: the host's other
    # units (freeradius.service, ...) are not ours to judge.
    result = _analyze("verify", "--man=no", "--recursive-errors=no", *units)
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if any(unit.name in line or str(unit.parent) in line for unit in units)]
    assert result.returncode == 0, result.stderr
    assert not ours, "\n".join(ours)


def test_systemd_analyze_verify_fails_when_a_program_is_missing(units, tmp_path):
    broken = units[0]
    broken.write_text(broken.read_text().replace(str(Path(sys.executable).parent),
                                                 str(tmp_path / "no-such-bin")))
    result = _analyze("verify", "--man=no", "--recursive-errors=no", broken)
    assert result.returncode != 0
    assert "no-such-bin" in result.stderr


def test_offline_security_review_scores_every_unit_ok(units):
    for unit in units:
        result = _analyze("security", "--offline=true", f"--threshold={MAX_EXPOSURE * 10:.0f}",
                          unit)
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
        assert level, result.stdout[-500:] + result.stderr
        assert result.returncode == 0 and float(level.group(1)) <= MAX_EXPOSURE, \
            f"{unit.name}: exposure {level.group(1)}"
