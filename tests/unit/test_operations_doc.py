"""docs/operations.md quotes what the programs really write: every log line and counter
in its troubleshooting table is in their code, so a renamed message breaks this test
rather than silently leaving an operator grepping for a line that no longer exists."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs import section

ROOT = Path(__file__).resolve().parents[2]
# The programs' packages (every top-level package but the tests): a module moved between
# them keeps its messages in view.
SOURCES = sorted(init.parent.name for init in ROOT.glob("*/__init__.py")
                 if init.parent.name != "tests")
# How a quoted line is cut into the pieces the code writes literally: "…" stands for a
# variable part; a bootstrap line's "result=NNN (reason)" is the format "result=%s" plus
# a reason string; "mip6-hac: …" is the program's name, which starts its one-line errors.
CUTS = re.compile(r"…|(?<=result=)[0-9-]+(?: \()?|\)$"
                  r"|(?<=^mip6-hac): |(?<=^mip6-ha): |(?<=^mip6-aaa-gw): |(?<=^mip6-auc): ")


def _code() -> str:
    assert {"aaa_mip6", "hac", "ha", "auc"} <= set(SOURCES)
    return "\n".join(path.read_text() for package in SOURCES
                     for path in sorted((ROOT / package).rglob("*.py")))


def _quoted_lines() -> list[str]:
    """The backquoted texts of the "log line or counter" column of the table."""
    rows = [line for line in section("operations.md", "Troubleshooting").splitlines()
            if line.startswith("| ") and not line.startswith("| symptom")]
    assert len(rows) >= 25
    return [quoted for row in rows for quoted in re.findall(r"`([^`]+)`", row.split(" | ")[1])]


def _in_code(quoted: str, code: str) -> bool:
    pieces = [piece.strip() for piece in CUTS.split(quoted) if piece.strip()]
    return bool(pieces) and all(piece in code for piece in pieces)


def test_every_quoted_log_line_and_counter_is_written_by_the_code():
    code = _code()
    missing = [quoted for quoted in _quoted_lines() if not _in_code(quoted, code)]
    assert not missing, "not in the code: " + "; ".join(missing)


def test_a_line_the_code_does_not_write_is_seen():
    code = _code()
    assert _in_code("result=401 (unknown identity)", code)
    assert not _in_code("result=401 (unknown user)", code)
    assert not _in_code("no answer from RADIUS … (server on fire)", code)
