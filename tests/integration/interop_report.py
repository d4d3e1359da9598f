"""The EAP interop matrix: its rows and columns, and one report per pytest session.

Every result is keyed by a :class:`Cell` = (case, server, path): the case is a
:class:`Case` (a method, or a reject scenario), the server is the EAP server at the
far end, and the path is how the MN's EAP reaches it (:data:`PATHS`). Several test
modules fill the one matrix, each its own columns: test_eap_interop_matrix.py
(direct RADIUS), test_hac_eap_radius.py (through a real mip6-hac relaying to RADIUS)
and test_hac_eap_diameter.py (through mip6-hac, Diameter, freeDiameterd and
mip6-aaa-gw to FreeRADIUS).

Each such module calls :func:`join` from a session-scoped autouse fixture with a
function mapping its test items to cells. The first call registers a plugin that
records the outcome pytest itself reports for each test (pass, fail, skip with its
reason, or a known failure marked xfail); at the end of the session it writes the
report once, if any cell ran: to docs/interop.md when every cell ran, else (a column
whose module did not run reads "not run") to .pytest_cache/interop-partial.md, so a
partial run never overwrites the committed matrix. The report holds no timestamp and
an unchanged one is not rewritten, so a run that changes nothing leaves the tracked
docs/interop.md (and the git tree) as it was.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pytest
from OpenSSL import SSL

from aaa_mip6 import pki
from lab.servers.auc import IMSI as AUC_IMSI
from lab.servers.freeradius import SIM_IMSI
from mn.eap import EapCredentials
from tests.support import SERVER_BUILD_GAP

REPORT_ENV = "AAA_MIP6_INTEROP_REPORT"  # overrides where the report is written
DEFAULT_REPORT = Path(__file__).resolve().parents[2] / "docs" / "interop.md"
PARTIAL_REPORT = Path(__file__).resolve().parents[2] / ".pytest_cache" / "interop-partial.md"

PASS, FAIL, SKIP, KNOWN_FAILURE, NOT_RUN = "pass", "fail", "skip", "fail (known)", "not run"
_SEVERITY = {NOT_RUN: 0, PASS: 1, SKIP: 2, KNOWN_FAILURE: 3, FAIL: 4}


# --- what the matrix holds --------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One row of the matrix: a method, its inner method and TLS version, and a scenario."""

    method: str
    phase2: str | None = None  # TTLS inner method; PEAP always runs EAP-MSCHAPv2 inside
    tls: str | None = None  # "1.2" or "1.3" for the TLS-based methods
    scenario: str = "accept"  # "accept", "wrong password" or "unknown client CA"

    @property
    def label(self) -> str:
        name = self.method + (f"/{self.phase2}" if self.phase2 else "")
        name += "/mschapv2" if self.method == "peap" else ""
        name += f", TLS {self.tls}" if self.tls else ""
        return name if self.scenario == "accept" else f"reject: {self.scenario}, {name}"

    @property
    def test_id(self) -> str:
        return self.label.replace(" ", "_")

    @property
    def keyed(self) -> bool:
        return self.method not in ("md5", "gtc")

    def credentials(self, server) -> EapCredentials:
        """The right credentials on ``server`` (FreeRadius or Hostapd) for an accept."""
        if self.method in SUBSCRIBER_METHODS:
            usim = getattr(server, "usim", None)
            if usim is not None:  # hostapd + mip6-auc: a Milenage USIM
                return EapCredentials(f"{SUBSCRIBER_METHODS[self.method]}{AUC_IMSI}@{SIM_REALM}",
                                      usim=usim, realm=SIM_REALM)
            return EapCredentials(f"1{SIM_IMSI}", sim_triplets=server.sim_triplets)
        if self.method == "tls":
            return EapCredentials(server.tls_user, client_cert=server.client_cert,
                                  client_key=server.client_key, ca_cert=server.ca_cert,
                                  tls_max_version=self.tls)
        if self.tls:
            return EapCredentials(server.user, password=server.password,
                                  anonymous_identity=server.anonymous_identity,
                                  ca_cert=server.ca_cert, phase2=self.phase2,
                                  tls_max_version=self.tls)
        return EapCredentials(server.user, server.password)

    def wrong_password(self, server) -> EapCredentials:
        return dataclasses.replace(self.credentials(server), password="not-" + server.password)

    def foreign_client(self, server, client: pki.Identity) -> EapCredentials:
        """EAP-TLS credentials with ``client``'s certificate instead of the server's own."""
        return dataclasses.replace(self.credentials(server), client_cert=client.cert_path,
                                   client_key=client.key_path)


def make_foreign_client(directory: Path) -> pki.Identity:
    """An EAP-TLS client certificate (for the TLS user) from a CA no test server trusts."""
    ca = pki.make_ca(directory, common_name="not a RADIUS CA")
    return pki.make_cert(directory, ca, "client", common_name="mn-tls@example.org", client=True)


_TUNNELS = [("ttls", "pap"), ("ttls", "mschapv2"), ("peap", None)]
# The (U)SIM methods and their permanent identities' first digit (RFC 4186, 4187, 5448).
SUBSCRIBER_METHODS = {"sim": "1", "aka": "0", "aka-prime": "6"}
SIM_REALM = "wlan.example.org"
ACCEPT_CASES = [
    *(Case(method) for method in ("md5", "gtc", "mschapv2", "pwd")),
    *(Case("tls", tls=version) for version in ("1.2", "1.3")),
    *(Case(method, phase2, version) for method, phase2 in _TUNNELS for version in ("1.2", "1.3")),
    *(Case(method) for method in SUBSCRIBER_METHODS),
]
WRONG_PASSWORD_CASES = [
    *(Case(method, scenario="wrong password") for method in ("md5", "gtc", "mschapv2", "pwd")),
    *(Case(method, phase2, "1.2", "wrong password") for method, phase2 in _TUNNELS),
]
UNKNOWN_CA_CASES = [Case("tls", tls=version, scenario="unknown client CA")
                    for version in ("1.2", "1.3")]
ALL_CASES = ACCEPT_CASES + WRONG_PASSWORD_CASES + UNKNOWN_CA_CASES

MSK_LENGTHS = {"mschapv2": 32}  # the RADIUS MS-MPPE keys carry 16 + 16; others 64


def msk_length(case: Case) -> int | None:
    """The MSK length both ends must agree on, None for a method without one."""
    return MSK_LENGTHS.get(case.method, 64) if case.keyed else None


def unsupported(server, case: Case) -> str | None:
    """Why this server build cannot run the case (only hostapd reports such gaps)."""
    if case.method == "pwd" and not getattr(server, "pwd_supported", True):
        return SERVER_BUILD_GAP + "hostapd has no EAP-pwd server"
    if case.tls == "1.3" and not getattr(server, "tls13_supported", True):
        return SERVER_BUILD_GAP + "hostapd has no TLS 1.3 EAP server (2.9 or later has)"
    if case.method in ("aka", "aka-prime") and getattr(server, "usim", None) is None:
        return SERVER_BUILD_GAP + "FreeRADIUS 3.2 has no EAP-AKA or EAP-AKA' server"
    return None


PATH_DIRECT = "direct RADIUS"
PATH_HAC_RADIUS = "via HAC, RADIUS"
PATH_HAC_DIAMETER = "via HAC, Diameter, mip6-aaa-gw"
PATHS = {
    PATH_DIRECT: "the MN's EAP peer relayed by the test RADIUS client "
                 "(tests/integration/radius_eap_driver.py) straight to the server "
                 "(tests/integration/test_eap_interop_matrix.py)",
    PATH_HAC_RADIUS: "the MN (mn.bootstrap.EapBootstrap over TLS) -> a real mip6-hac -> "
                     "RADIUS -> the server; success means the HAC verified the MN's Done "
                     "with the MSK the server gave it (tests/integration/test_hac_eap_radius.py)",
    PATH_HAC_DIAMETER: "the MN -> a real mip6-hac (aaa.backend = diameter) -> Diameter EAP "
                       "over TLS -> freeDiameterd (relay) -> mip6-aaa-gw -> RADIUS -> the "
                       "server; the MSK crosses as EAP-Master-Session-Key "
                       "(tests/integration/test_hac_eap_diameter.py)",
}
COLUMNS = [("FreeRADIUS", PATH_DIRECT), ("hostapd", PATH_DIRECT),
           ("FreeRADIUS", PATH_HAC_RADIUS), ("hostapd", PATH_HAC_RADIUS),
           ("FreeRADIUS", PATH_HAC_DIAMETER)]
VERSION_COMMANDS = {"FreeRADIUS": ("freeradius", "-v"), "hostapd": ("hostapd", "-v"),
                    "freeDiameter": ("freeDiameterd", "--version")}
REPRODUCE = """\
On Debian 12 with the packages freeradius, hostapd and freediameter installed, from the
project root:

```
.venv/bin/pytest -m integration tests/integration/test_eap_interop_matrix.py \\
    tests/integration/test_hac_eap_radius.py tests/integration/test_hac_eap_diameter.py
```

The servers are configured from scratch in a temp dir and listen on free ports on
127.0.0.1 (hostapd: on the wildcard address, answering 127.0.0.1 only). hostapd's
EAP-SIM/AKA/AKA' servers take their vectors from `mip6-auc`; FreeRADIUS runs EAP-SIM with
fixed triplets in its users file (it has no EAP-AKA server). Running only
some of the modules leaves the other columns "not run" and writes the report to
`.pytest_cache/interop-partial.md` instead of this file. Set
`AAA_MIP6_INTEROP_REPORT=<file>` to write this report somewhere else."""


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


# --- the report -------------------------------------------------------------------------

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

    @property
    def complete(self) -> bool:
        """Every planned cell has a result."""
        return all(Cell(case, server, path) in self.results
                   for case in self.cases for server, path in self.columns)

    def render(self) -> str:
        header = ["Case"] + [f"{server} / {path}" for server, path in self.columns]
        lines = [
            "# EAP interoperability matrix",
            "",
            "Written at the end of a pytest session that ran the whole matrix "
            "(`tests/integration/interop_report.py`; a partial run writes "
            "`.pytest_cache/interop-partial.md`); do not edit by hand.",
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

    def write(self, path: Path) -> str:
        """Write the report unless ``path`` holds it already; one line saying which, or why
        it could not be written (never raises OSError)."""
        text = self.render()
        try:
            if path.is_file() and path.read_text() == text:
                return f"interop matrix unchanged in {path}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as error:
            return (f"interop matrix NOT written to {path}: "
                    f"{type(error).__name__}: {error.strerror or error}")
        return f"interop matrix written to {path}"


def matrix_report() -> InteropReport:
    """The project's matrix: every case, every column, the versions of the servers."""
    report = InteropReport([case.label for case in ALL_CASES], COLUMNS, REPRODUCE)
    report.versions = {name: tool_version(argv) for name, argv in VERSION_COMMANDS.items()}
    openssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    report.versions["MN EAP peer"] = f"mn/eap with pyOpenSSL on {openssl}"
    report.paths = dict(PATHS)
    return report


def report_path(complete: bool) -> Path:
    """The environment's choice, else docs/interop.md for a whole matrix, else the partial file."""
    override = os.environ.get(REPORT_ENV)
    if override:
        return Path(override)
    return DEFAULT_REPORT if complete else PARTIAL_REPORT


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


CellOf = Callable[[pytest.Item], "Cell | None"]


class ReportCollector:
    """A pytest plugin object: turns the phase reports of the joined modules' tests into
    matrix results, writes the report when the session ends, and says where it went."""

    def __init__(self, report: InteropReport):
        self.report = report
        self.cell_of: dict[str, CellOf] = {}  # module name -> its items' cells
        self.summary: str | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        module = getattr(item, "module", None)
        cell_of = self.cell_of.get(getattr(module, "__name__", None))
        cell = cell_of(item) if cell_of is not None else None
        result = outcome_of(report)
        if cell is not None and result is not None:
            self.report.record(cell, result)
        return report

    def pytest_sessionfinish(self, session) -> None:
        """Write once, after every fixture is gone; never fails the run."""
        if not self.report.results:
            return
        self.summary = self.report.write(report_path(self.report.complete))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.summary is not None:
            terminalreporter.write_line(self.summary)


_COLLECTOR = pytest.StashKey[ReportCollector]()


def join(config: pytest.Config, module: str, cell_of: CellOf) -> InteropReport:
    """Add ``module``'s tests to the session's matrix; ``cell_of`` maps each of its items
    to a cell (None: not a matrix test). The first call starts the session's report."""
    collector = config.stash.get(_COLLECTOR, None)
    if collector is None:
        collector = config.stash[_COLLECTOR] = ReportCollector(matrix_report())
        config.pluginmanager.register(collector, "aaa-mip6-interop-matrix")
    collector.cell_of[module] = cell_of
    return collector.report


def param_cell(path: str, server: str | None = None) -> CellOf:
    """A ``cell_of`` for tests parametrized with a :class:`Case` named ``case`` and, unless
    ``server`` names it, the server's name in a parameter ``server_name``."""
    def cell_of(item: pytest.Item) -> Cell | None:
        params = getattr(item, "callspec", None) and item.callspec.params
        if not params or not isinstance(params.get("case"), Case):
            return None
        return Cell(params["case"].label, server or params["server_name"], path)

    return cell_of
