"""The systemd units of etc/systemd/, read the way systemd reads them (for the tests)."""

from __future__ import annotations

import shlex
from pathlib import Path

UNIT_DIR = Path(__file__).resolve().parents[1] / "etc" / "systemd"
# Where docs/operations.md installs the programs; the units run them from there.
INSTALLED_BIN = "/opt/aaa-mip6/bin/"
# Unit -> the console script it runs.
UNITS = {
    "mip6-hac.service": "mip6-hac",
    "mip6-ha.service": "mip6-ha",
    "mip6-aaa-gw.service": "mip6-aaa-gw",
    "mip6-auc.service": "mip6-auc",
}


def settings(unit: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> its values in order (a key may repeat); comments skipped."""
    values: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in (UNIT_DIR / unit).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault((section, key.strip()), []).append(value.strip())
    return values


def one(unit: str, key: str, section: str = "Service") -> str:
    """The single value of ``key`` (the last one, as systemd takes it)."""
    return settings(unit)[(section, key)][-1]


def exec_lines(unit: str) -> list[list[str]]:
    """Every Exec*= command line of ``unit``, split as argv (leading -@:+! prefixes off)."""
    found = []
    for (section, key), values in settings(unit).items():
        if section == "Service" and key.startswith("Exec"):
            found += [shlex.split(value.lstrip("-@:+!")) for value in values]
    return found
