"""etc/systemd/: every unit runs one of our programs with flags it has, as the dedicated
user, with the restart, reload and hardening docs/operations.md promises; the paths the
sample configurations write to are the ones the units leave writable."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.systemd_units import INSTALLED_BIN, UNIT_DIR, UNITS, exec_lines, one, settings
from tests.unit.test_docs_agree import program_flags

ROOT = UNIT_DIR.parents[1]
# The sample configuration each unit's --config names, under /etc/mip6/.
SAMPLES = {
    "mip6-hac.service": "hac.toml",
    "mip6-ha.service": "ha.toml",
    "mip6-aaa-gw.service": "mip6-aaa-gw.toml",
    "mip6-auc.service": "mip6-auc.toml",
}


def test_every_unit_in_the_directory_is_known():
    assert sorted(p.name for p in UNIT_DIR.glob("*.service")) == sorted(UNITS)


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_exec_start_runs_the_installed_program_with_flags_it_has(unit):
    program = UNITS[unit]
    start = one(unit, "ExecStart").split()
    assert start[0] == INSTALLED_BIN + program
    for argv in exec_lines(unit):
        if argv[0].startswith(INSTALLED_BIN):
            flags = {arg.split("=")[0] for arg in argv[1:] if arg.startswith("--")}
            assert flags <= program_flags(program), (unit, flags - program_flags(program))


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_config_named_by_the_unit_has_a_sample_in_etc(unit):
    start = one(unit, "ExecStart").split()
    config = start[start.index("--config") + 1]
    assert config == f"/etc/mip6/{SAMPLES[unit]}"
    assert (ROOT / "etc" / SAMPLES[unit]).is_file()


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_runs_as_the_sysusers_user_reloads_on_hup_and_restarts_on_failure(unit):
    sysusers = (UNIT_DIR / "aaa-mip6.sysusers.conf").read_text().splitlines()
    users = [line.split()[1] for line in sysusers if line.startswith("u ")]
    assert one(unit, "User") in users and one(unit, "Group") in users
    assert one(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Restart") == "on-failure"
    # 2 is every program's exit status for a bad configuration: no restart loop.
    assert one(unit, "RestartPreventExitStatus") == "2"
    # A failed ExecStartPre is not the main process: RestartPreventExitStatus would not
    # stop its restarts.
    assert ("Service", "ExecStartPre") not in settings(unit)


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_is_confined(unit):
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("SystemCallFilter", "@system-service"),
                       ("UMask", "0077")]:
        assert one(unit, key) == value, (unit, key)
    families = set(one(unit, "RestrictAddressFamilies").split())
    assert families <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}


def test_only_the_ha_holds_a_capability_and_the_tun_device():
    for unit in UNITS:
        capabilities = one(unit, "CapabilityBoundingSet")
        assert one(unit, "AmbientCapabilities") == capabilities
        if unit == "mip6-ha.service":
            assert capabilities == "CAP_NET_ADMIN"
            assert one(unit, "DeviceAllow") == "/dev/net/tun rw"
            assert ("Service", "PrivateDevices") not in settings(unit)
            assert "AF_NETLINK" in one(unit, "RestrictAddressFamilies")
        else:
            assert capabilities == ""
            assert one(unit, "PrivateDevices") == "yes"


def test_auc_shares_the_hosts_tmp_where_hostapd_waits_for_answers():
    # hostapd's eap_sim_db binds /tmp/eap_sim_db_PID-N and the AuC answers to it.
    assert one("mip6-auc.service", "PrivateTmp") == "no"
    assert one("mip6-auc.service", "RestrictAddressFamilies") == "AF_UNIX"


def _writable(unit: str) -> list[str]:
    keys = {"StateDirectory": "/var/lib/", "RuntimeDirectory": "/run/"}
    paths = [prefix + value for key, prefix in keys.items()
             for value in settings(unit).get(("Service", key), [])]
    return paths + settings(unit).get(("Service", "ReadWritePaths"), [])


def _sample(name: str) -> dict:
    return tomllib.loads((ROOT / "etc" / name).read_text())


@pytest.mark.parametrize("unit, written", [
    ("mip6-hac.service", lambda c: [c["store"]["url"].removeprefix("sqlite://")]),
    ("mip6-ha.service", lambda c: [c["store"].removeprefix("sqlite://"),
                                   c["store"].removeprefix("sqlite://") + ".ha-state"]),
    ("mip6-auc.service", lambda c: [c["auc"]["state"], c["auc"]["socket"]]),
])
def test_files_the_sample_configuration_writes_are_writable_under_the_unit(unit, written):
    for path in written(_sample(SAMPLES[unit])):
        assert any(Path(path).is_relative_to(place) for place in _writable(unit)), (unit, path)


def test_the_ha_sample_loads():
    from ha import config as ha_config

    config = ha_config.load_config(ROOT / "etc" / "ha.toml")
    assert str(config.state) == "/var/lib/mip6/sa.db.ha-state"  # default: the store + .ha-state
