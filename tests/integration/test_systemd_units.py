"""systemd itself accepts the units of etc/systemd/: ``systemd-analyze verify`` (syntax,
every key known, every Exec binary present and executable) and its offline security
review, on copies that run this checkout's programs instead of /opt/aaa-mip6/bin."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.systemd_units import INSTALLED_BIN, UNIT_DIR, UNITS, one

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


def _unit_capabilities(unit: str) -> str:
    """The unit's capability bounding set, as setpriv's comma-separated list."""
    names = one(unit, "CapabilityBoundingSet").split()
    assert one(unit, "AmbientCapabilities").split() == names
    return ",".join("+" + name.removeprefix("CAP_").lower() for name in names)


def test_the_ha_unit_capabilities_suffice_for_its_tun_device_and_routes(tmp_path):
    """mip6-ha as an unprivileged user holding only the unit's capabilities (ambient, no
    new privileges) creates its TUN device, brings it up and routes the home prefix into
    it. No systemd here runs the unit itself: setpriv applies the same user and
    capability settings, in a network namespace of the test's own. /dev/net/tun is 0666 on
    a Debian host (udev); a mount namespace gives the test such a node, whatever this
    machine's is."""
    for tool in ("ip", "setpriv", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root (network and mount namespaces)")
    capabilities = _unit_capabilities("mip6-ha.service")
    assert capabilities == "+net_admin"
    namespace = f"mip6-unit-{os.getpid()}"
    # The store and ledger, where nobody can reach them (pytest's tmp_path is 0700 root).
    state = Path(tempfile.mkdtemp(prefix="mip6-unit-state-"))
    shutil.chown(state, "nobody", "nogroup")
    node = tmp_path / "tun"
    os.mknod(node, 0o666 | 0o020000, os.makedev(10, 200))
    node.chmod(0o666)
    script = tmp_path / "run.sh"
    script.write_text(
        f"set -e\nmount --bind {node} /dev/net/tun\n"
        f"exec ip netns exec {namespace} setpriv --reuid=nobody --regid=nogroup "
        f"--clear-groups --no-new-privs --inh-caps={capabilities} "
        f"--ambient-caps={capabilities} --bounding-set=-all,{capabilities} "
        f"{Path(sys.executable).parent}/mip6-ha --listen [::1]:7872 "
        f"--store sqlite:///{state}/sa.db --tun mip6home --tun-route 2001:db8:1::/64\n")
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    log = tmp_path / "ha.log"
    try:
        subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
        with open(log, "w") as out:
            ha = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh",
                                   str(script)], stdout=out, stderr=subprocess.STDOUT)
        try:
            route = ""
            for _ in range(100):  # 10 s at most
                if ha.poll() is not None or "mip6home" in route:
                    break
                route = subprocess.run(["ip", "-n", namespace, "-6", "route", "show",
                                        "2001:db8:1::/64"], capture_output=True,
                                       text=True).stdout
                time.sleep(0.1)
            assert "dev mip6home" in route, log.read_text()
            link = subprocess.run(["ip", "-n", namespace, "link", "show", "mip6home"],
                                  capture_output=True, text=True, check=True).stdout
            assert ",UP," in link
            ha.send_signal(signal.SIGTERM)
            assert ha.wait(timeout=30) == 0, log.read_text()
        finally:
            if ha.poll() is None:
                ha.kill()
                ha.wait(timeout=30)
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
        shutil.rmtree(state)
    assert "Permission denied" not in log.read_text()


def test_systemd_sysusers_creates_the_units_user(tmp_path):
    """The sysusers.d snippet makes the user and group the units run as, with the state
    directory as home (where libpq finds .pgpass) and no login shell."""
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers not installed (Debian package systemd)")
    (tmp_path / "etc").mkdir()
    subprocess.run([sysusers, f"--root={tmp_path}", str(UNIT_DIR / "aaa-mip6.sysusers.conf")],
                   check=True, capture_output=True, timeout=60)
    users = {line.split(":")[0]: line.split(":") for line in
             (tmp_path / "etc" / "passwd").read_text().splitlines()}
    groups = {line.split(":")[0] for line in (tmp_path / "etc" / "group").read_text().splitlines()}
    for unit in UNITS:
        assert one(unit, "User") in users and one(unit, "Group") in groups
    user = users["mip6"]
    assert user[5] == "/var/lib/mip6" and user[6] == "/usr/sbin/nologin"
    assert int(user[2]) < 1000  # a system user
