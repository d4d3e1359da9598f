"""The documentation names only flags the programs have, and only keys their loaders take.

A flag in a section about one program (docs/usage.md "## mip6-ha", docs/configuration.md
"## HA", ...) or on a command line starting with a program's name must be in that
program's ``--help`` (any of its sub-commands); any other flag in docs/ or README.md must be
some program's or a bench script's, or another tool's named in FOREIGN_FLAGS.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

# Program -> its sub-commands (each has its own --help).
PROGRAMS = {
    "mip6-hac": ["", "revoke", "sas", "stats"],
    "mip6-ha": ["", "bindings", "sas", "stats", "flush"],
    "mip6-mn": ["", "bootstrap", "register", "up"],
    "mip6-lab": ["", "up", "lke", "cluster"],
    "mip6-aaa-gw": ["", "peers"],
    "mip6-auc": [""],
    "mip6-load": [""],
    "mip6-ar": [""],
}
# Headings whose section is about one program.
SECTION_PROGRAM = {
    ("usage.md", "mip6-hac"): "mip6-hac", ("usage.md", "mip6-ha"): "mip6-ha",
    ("usage.md", "mip6-mn"): "mip6-mn", ("usage.md", "mip6-lab"): "mip6-lab",
    ("usage.md", "mip6-aaa-gw"): "mip6-aaa-gw",
    ("configuration.md", "HAC"): "mip6-hac", ("configuration.md", "HA"): "mip6-ha",
    ("configuration.md", "mip6-aaa-gw"): "mip6-aaa-gw",
    ("usage.md", "mip6-auc"): "mip6-auc", ("configuration.md", "mip6-auc"): "mip6-auc",
    ("usage.md", "mip6-load"): "mip6-load",
    ("usage.md", "mip6-ar"): "mip6-ar", ("configuration.md", "mip6-ar"): "mip6-ar",
}
# Long options of other tools that the docs show in their own command lines.
FOREIGN_FLAGS = {
    "--reuid": "setpriv", "--regid": "setpriv", "--clear-groups": "setpriv",
}


def _help_flags(*command: str) -> set[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(FLAG.findall(result.stdout))


@functools.cache
def program_flags(program: str) -> frozenset[str]:
    flags: set[str] = set()
    for sub in PROGRAMS[program]:
        flags |= _help_flags(str(BIN / program), *([sub] if sub else []), "--help")
    return frozenset(flags)


@functools.cache
def bench_flags() -> frozenset[str]:
    flags: set[str] = set()
    for script in sorted((ROOT / "bench").glob("[!_]*.py")):
        flags |= _help_flags(sys.executable, str(script), "--help")
    return frozenset(flags)


def documents() -> list[Path]:
    return sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def _sections(path: Path):
    """(top-level heading, line) for every line of ``path``; code fences are not headings."""
    heading, fenced = "", False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            heading = line[3:].strip()
        yield heading, line


# A program's name, then its arguments; "mip6-mn: ..." is a message it printed, not a command.
COMMAND = re.compile(r"(?<![\w/-])(mip6-(?:hac|ha|mn|lab|aaa-gw|auc|load|ar))\b(?!:)([^`|;&\n#]*)")


def _commands(text: str):
    """(program, arguments) for every command line in ``text`` that runs one of ours."""
    for match in COMMAND.finditer(re.sub(r"\\\n\s*", " ", text)):
        yield match.group(1), match.group(2)


def mentions():
    """(document, program or None, flag, context) for every flag in the docs."""
    for path in documents():
        text = path.read_text()
        for program, arguments in _commands(text):
            for flag in FLAG.findall(arguments):
                yield path.name, program, flag, f"{program}{arguments[:60]}"
        for heading, line in _sections(path):
            program = SECTION_PROGRAM.get((path.name, heading))
            for flag in FLAG.findall(COMMAND.sub("", line)):  # commands: checked above
                yield path.name, program, flag, line.strip()[:80]


def test_every_flag_in_the_docs_exists():
    every = set().union(*(program_flags(p) for p in PROGRAMS)) | bench_flags() | set(FOREIGN_FLAGS)
    wrong = []
    for document, program, flag, context in mentions():
        if flag not in (program_flags(program) if program else every):
            wrong.append(f"{document}: {flag} ({program or 'no program'}): {context}")
    assert not sorted(set(wrong)), "\n".join(sorted(set(wrong)))


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_every_program_documents_its_version(program):
    assert "--version" in program_flags(program)


# --- TOML keys -------------------------------------------------------------------------

def _documented_keys() -> dict[tuple[str, str], set[str]]:
    """(top-level section, subsection) of docs/configuration.md -> the keys in the first
    column of its tables whose header starts with ``key``."""
    keys: dict[tuple[str, str], set[str]] = {}
    section = subsection = ""
    in_key_table = False
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("## "):
            section, subsection = line[3:].strip(), ""
        elif line.startswith("### "):
            subsection = line[4:].strip()
        if not line.startswith("|"):
            in_key_table = False
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in ("key", "key (flag)"):
            in_key_table = True
        elif in_key_table and not set(cells[0]) <= set("-"):
            keys.setdefault((section, subsection), set()).update(
                re.findall(r"`([a-z0-9_.-]+)`", cells[0].split("(")[0]))
    return keys


def _accepted_by(check, key: str) -> bool:
    """Whether the loader ``check`` takes ``key`` (any complaint but "unknown" is fine)."""
    from aaa_mip6.errors import ConfigError

    try:
        check(key)
    except ConfigError as error:
        return "unknown" not in str(error)
    return True


def _toml_reader(read_toml, tmp_path):
    def check(key: str) -> None:
        path = tmp_path / "one-key.toml"
        *tables, name = key.split(".")
        path.write_text((f"[{'.'.join(tables)}]\n" if tables else "") + f'{name} = "x"\n')
        read_toml(path)
    return check


def test_every_key_in_configuration_md_is_accepted_by_its_loader(tmp_path):
    from ar import config as ar_config
    from auc import config as auc_config
    from gateway import config as gateway_config
    from ha import config as ha_config
    from hac import config as hac_config

    loaders = {
        "HAC": _toml_reader(hac_config.read_toml, tmp_path),
        "SA delivery over Diameter": lambda key: hac_config.parse_sa_delivery({key: "x"}),
        "HA": _toml_reader(ha_config.SCHEMA.read_toml, tmp_path),
        "mip6-aaa-gw": _toml_reader(gateway_config.read_toml, tmp_path),
        "mip6-auc": _toml_reader(auc_config.SCHEMA.read_toml, tmp_path),
        "mip6-ar": _toml_reader(ar_config.SCHEMA.read_toml, tmp_path),
    }
    documented = _documented_keys()
    refused = []
    for (section, subsection), keys in documented.items():
        check = loaders.get(subsection) or loaders.get(section)
        assert check is not None, f"no loader known for keys of {section} / {subsection}"
        refused += [f"{section} / {subsection}: {key}" for key in sorted(keys)
                    if not _accepted_by(check, key)]
    assert len(documented) >= 5
    assert not refused, "\n".join(refused)
