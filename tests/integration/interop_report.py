"""Collects the EAP interop matrix while pytest runs it and writes docs/interop.md at the end.

Every result is keyed by a :class:`Cell` = (case, server, path): the case is a
method (or a reject scenario), the server is the EAP server at the far end, and
the path is how the MN's EAP reaches it (today only the test RADIUS driver;
the HAC relay will be one more path, i.e. one more column).

A test module activates it with :func:`collect_session` from a session-scoped
autouse fixture, so the file is only written when that module really ran. The
plugin records the outcome pytest itself reports for each test (pass, fail,
skip with its reason, or a known failure marked xfail).
"""

from __future__ import annotations

import datetime
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

REPORT_ENV = "AAA_MIP6_INTEROP_REPORT"  # overrides where the report is written
DEFAULT_REPORT = Path(__file__).resolve().parents[2] / "docs" / "interop.md"

PASS, FAIL, SKIP, KNOWN_FAILURE, NOT_RUN = "pass", "fail", "skip", "fail (known)", "not run"
_SEVERITY = {NOT_RUN: 0, PASS: 1, SKIP: 2, KNOWN_FAILURE: 3, FAIL: 4}


@dataclass(frozen=True)
class Cell:
    case: str
    server: str
    path: str


@dataclass(frozen=True)
class Result:
    outcome: str
    reason: str = ""


def tool_version(argv: Sequence[str]) -> str:
    """First line a server prints for its version flag (stdout, else stderr)."""
    try:
        run = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return f"not installed ({argv[0]})"
    except subprocess.TimeoutExpired:
        return f"no answer from {' '.join(argv)}"
    for text in (run.stdout, run.stderr):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return f"no output from {' '.join(argv)}"


class InteropReport:
    """The planned matrix (rows = cases, columns = (server, path)) and what happened."""

    def __init__(self, cases: Sequence[str], columns: Sequence[tuple[str, str]],
                 reproduce: str):
        self.cases = list(cases)
        self.columns = list(columns)
        self.reproduce = reproduce
        self.versions: dict[str, str] = {}
        self.paths: dict[str, str] = {}
        self.results: dict[Cell, Result] = {}

    def record(self, cell: Cell, result: Result) -> None:
        """Keep the worst outcome seen for a cell (a test reports setup, call and teardown)."""
        previous = self.results.get(cell)
        if previous is None or _SEVERITY[result.outcome] > _SEVERITY[previous.outcome]:
            self.results[cell] = result

    def result(self, cell: Cell) -> Result:
        return self.results.get(cell, Result(NOT_RUN))

    def render(self, now: datetime.datetime) -> str:
        header = ["Case"] + [f"{server} / {path}" for server, path in self.columns]
        lines = [
            "# EAP interoperability matrix",
            "",
            "Written by `tests/integration/test_eap_interop_matrix.py` at the end of its run "
            "(`tests/integration/interop_report.py`); do not edit by hand.",
            "",
            f"Generated: {now.strftime('%Y-%m-%d %H:%M UTC')}",
            "",
            "## Components",
            "",
            *[f"- {name}: `{text}`" for name, text in self.versions.items()],
            "",
            "## Paths",
            "",
            *[f"- {name}: {text}" for name, text in self.paths.items()],
            "",
            "## Matrix",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        notes = []
        for case in self.cases:
            row = [case]
            for server, path in self.columns:
                result = self.result(Cell(case, server, path))
                row.append(result.outcome)
                if result.reason:
                    notes.append(f"- {case} — {server} / {path}: {result.outcome}: "
                                 f"{result.reason}")
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "## Skips and failures", ""]
        lines += notes or ["None."]
        lines += ["", "## How to reproduce", "", self.reproduce.rstrip(), ""]
        return "\n".join(lines)

    def write(self, path: Path, now: datetime.datetime) -> str | None:
        """Write the report; return why it could not be written (never raises OSError)."""
        try:
            path.write_text(self.render(now))
        except OSError as error:
            return f"{type(error).__name__}: {error.strerror or error}"
        return None


def report_path() -> Path:
    return Path(os.environ.get(REPORT_ENV) or DEFAULT_REPORT)


def _short_reason(report: pytest.TestReport) -> str:
    """One line: the skip/xfail reason or the failure's crash message."""
    if hasattr(report, "wasxfail"):
        return report.wasxfail.removeprefix("reason: ")
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr or "")
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{report.when}: {first}"


def outcome_of(report: pytest.TestReport) -> Result | None:
    """The matrix outcome one phase report stands for; None for a passing setup/teardown."""
    if hasattr(report, "wasxfail"):
        if report.skipped:
            return Result(KNOWN_FAILURE, _short_reason(report))
        return Result(FAIL, f"passed, but is marked as a known failure: {report.wasxfail}")
    if report.failed:
        return Result(FAIL, _short_reason(report))
    if report.skipped:
        return Result(SKIP, _short_reason(report))
    if report.when == "call":
        return Result(PASS)
    return None


class _Collector:
    """A pytest plugin object: turns each test's phase reports into matrix results,
    and says in the terminal summary where the report went."""

    def __init__(self, report: InteropReport, cell_of: Callable[[pytest.Item], Cell | None]):
        self.report = report
        self.cell_of = cell_of
        self.summary: str | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        cell = self.cell_of(item)
        result = outcome_of(report)
        if cell is not None and result is not None:
            self.report.record(cell, result)
        return report

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.summary is not None:
            terminalreporter.write_line(self.summary)


@contextmanager
def collect_session(config: pytest.Config, report: InteropReport,
                    cell_of: Callable[[pytest.Item], Cell | None]) -> Iterator[InteropReport]:
    """Collect results while the body runs; then write the report if any cell ran.

    A report that cannot be written (read-only checkout) is announced, not raised.
    The plugin stays registered to the end of the session for that announcement.
    """
    collector = _Collector(report, cell_of)
    config.pluginmanager.register(collector)
    yield report
    if not report.results:
        return
    path = report_path()
    problem = report.write(path, datetime.datetime.now(datetime.timezone.utc))
    collector.summary = (f"interop matrix written to {path}" if problem is None
                         else f"interop matrix NOT written to {path}: {problem}")
