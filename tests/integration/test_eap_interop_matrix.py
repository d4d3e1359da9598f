"""Every MN EAP method against two EAP servers, FreeRADIUS 3.2 and hostapd, via RADIUS.

Each accepting cell checks Access-Accept, EAP-Success at the peer, the negotiated
TLS version, and that the MSK the peer derived equals the one the server handed
out as MS-MPPE keys. The reject cells check a wrong password and an EAP-TLS client
certificate from a CA the server does not trust. The session writes
docs/interop.md from the outcomes (see ``interop_report``).
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Iterator

import pytest
from OpenSSL import SSL
from pyrad import packet

from aaa_mip6 import pki
from aaa_mip6.eap import EapError
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration import interop_report
from tests.integration.freeradius import freeradius  # noqa: F401  (fixture)
from tests.integration.hostapd import hostapd  # noqa: F401  (fixture)
from tests.integration.interop_report import Cell, InteropReport, Result
from tests.integration.radius_eap_driver import EapRun, RadiusEapDriver

pytestmark = pytest.mark.integration

PATH_DIRECT = "direct RADIUS"
SERVERS = {"FreeRADIUS": "freeradius", "hostapd": "hostapd"}  # report name -> fixture
VERSION_COMMANDS = {"FreeRADIUS": ("freeradius", "-v"), "hostapd": ("hostapd", "-v")}
UNKNOWN_ISSUER = "unable to get local issuer certificate"  # OpenSSL's text, in both logs
MSK_LENGTHS = {"mschapv2": 32}  # the RADIUS MS-MPPE keys carry 16 + 16; others 64


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
    def keyed(self) -> bool:
        return self.method not in ("md5", "gtc")


_TUNNELS = [("ttls", "pap"), ("ttls", "mschapv2"), ("peap", None)]
ACCEPT_CASES = [
    *(Case(method) for method in ("md5", "gtc", "mschapv2", "pwd")),
    *(Case("tls", tls=version) for version in ("1.2", "1.3")),
    *(Case(method, phase2, version) for method, phase2 in _TUNNELS for version in ("1.2", "1.3")),
]
REJECT_CASES = [
    *(Case(method, scenario="wrong password") for method in ("md5", "gtc", "mschapv2", "pwd")),
    *(Case(method, phase2, "1.2", "wrong password") for method, phase2 in _TUNNELS),
    *(Case("tls", tls=version, scenario="unknown client CA") for version in ("1.2", "1.3")),
]
ALL_CASES = ACCEPT_CASES + REJECT_CASES

# Diagnosed failures, each with its cause; strict, so a fix turns them into failures to remove.
KNOWN_FAILURES: dict = {}

REPRODUCE = """\
On Debian 12 with the packages freeradius and hostapd installed, from the project root:

```
.venv/bin/pytest -m integration tests/integration/test_eap_interop_matrix.py
```

The servers are configured from scratch in a temp dir and listen on free ports on
127.0.0.1 (hostapd: on the wildcard address, answering 127.0.0.1 only). Set
`AAA_MIP6_INTEROP_REPORT=<file>` to write this report somewhere else."""


def _params() -> list:
    params = []
    for case in ALL_CASES:
        for server in SERVERS:
            reason = KNOWN_FAILURES.get((case, server))
            marks = (pytest.mark.xfail(strict=True, raises=EapError, reason=reason),
                     ) if reason else ()
            params.append(pytest.param(case, server, marks=marks,
                                       id=f"{case.label}-{server}".replace(" ", "_")))
    return params


def _cell_of(item: pytest.Item) -> Cell | None:
    """The matrix cell of a test in this module, None for any other test."""
    if getattr(item, "module", None) is None or item.module.__name__ != __name__:
        return None
    params = getattr(item, "callspec", None) and item.callspec.params
    if not params or "case" not in params:
        return None
    return Cell(params["case"].label, params["server_name"], PATH_DIRECT)


@pytest.fixture(scope="session", autouse=True)
def interop_matrix_report(request) -> Iterator[InteropReport]:
    """Collects this module's outcomes; writes docs/interop.md when the session ends."""
    report = InteropReport([case.label for case in ALL_CASES],
                           [(server, PATH_DIRECT) for server in SERVERS], REPRODUCE)
    report.versions = {name: interop_report.tool_version(argv)
                       for name, argv in VERSION_COMMANDS.items()}
    openssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    report.versions["MN EAP peer"] = f"mn/eap with pyOpenSSL on {openssl}"
    report.paths = {PATH_DIRECT: "the MN's EAP peer relayed by the test RADIUS client "
                                 "(tests/integration/radius_eap_driver.py) straight to the server"}
    with interop_report.collect_session(request.config, report, _cell_of):
        yield report


@pytest.fixture(scope="module")
def foreign_client(tmp_path_factory) -> pki.Identity:
    """An EAP-TLS client certificate from a CA neither server trusts."""
    directory = tmp_path_factory.mktemp("foreign-pki")
    ca = pki.make_ca(directory, common_name="not a RADIUS CA")
    return pki.make_cert(directory, ca, "client", common_name="mn-tls@example.org", client=True)


@pytest.fixture
def server(request, server_name):
    """The running server named by the ``server_name`` parameter (skips if not installed)."""
    return request.getfixturevalue(SERVERS[server_name])


def _credentials(server, case: Case) -> EapCredentials:
    if case.method == "tls":
        return EapCredentials(server.tls_user, client_cert=server.client_cert,
                              client_key=server.client_key, ca_cert=server.ca_cert,
                              tls_max_version=case.tls)
    if case.tls:
        return EapCredentials(server.user, password=server.password,
                              anonymous_identity=server.anonymous_identity,
                              ca_cert=server.ca_cert, phase2=case.phase2,
                              tls_max_version=case.tls)
    return EapCredentials(server.user, server.password)


def _unsupported(server, case: Case) -> str | None:
    """Why this server build cannot run the case (only hostapd reports such gaps)."""
    if case.method == "pwd" and not getattr(server, "pwd_supported", True):
        return "this hostapd build has no EAP-pwd server"
    if case.tls == "1.3" and not getattr(server, "tls13_supported", True):
        return "this hostapd has no TLS 1.3 EAP server (hostapd 2.9 or later has)"
    return None


def _authenticate(server, case: Case, credentials: EapCredentials) -> EapRun:
    reason = _unsupported(server, case)
    if reason is not None:
        pytest.skip(reason)
    outer = credentials.anonymous_identity or credentials.identity
    driver = RadiusEapDriver(server.host, server.port, server.secret)
    return driver.authenticate(EapPeer(case.method, credentials), outer)


@pytest.mark.parametrize("case, server_name", _params())
def test_matrix(request, server, case: Case, server_name: str):
    credentials = _credentials(server, case)
    if case.scenario == "accept":
        _check_accepted(_authenticate(server, case, credentials), case)
    elif case.scenario == "wrong password":
        _check_wrong_password(server, case, credentials)
    else:
        _check_unknown_client_ca(server, case, credentials,
                                 request.getfixturevalue("foreign_client"))


def _check_accepted(run: EapRun, case: Case) -> None:
    assert run.accepted and run.reply.code == packet.AccessAccept
    assert run.peer.success and run.peer.method_done
    if case.tls:
        assert run.peer.method.engine.tls_version == f"TLSv{case.tls}"
    if case.keyed:
        assert run.msk is not None and len(run.msk) == MSK_LENGTHS.get(case.method, 64)
        assert run.peer.msk == run.msk
    else:
        assert run.msk is None and run.peer.msk is None


def _assert_rejected(run: EapRun) -> None:
    assert not run.accepted and run.reply.code == packet.AccessReject and run.msk is None
    assert run.peer.failure and not run.peer.success


def _check_wrong_password(server, case: Case, credentials: EapCredentials) -> None:
    wrong = dataclasses.replace(credentials, password="not-" + server.password)
    if case.method != "pwd":
        _assert_rejected(_authenticate(server, case, wrong))
        return
    # RFC 5931: the peer must not confirm when the server's confirm fails to verify.
    with pytest.raises(EapError) as caught:
        _authenticate(server, case, wrong)
    assert caught.value.reason == "bad-auth"


def _check_unknown_client_ca(server, case: Case, credentials: EapCredentials,
                             client: pki.Identity) -> None:
    foreign = dataclasses.replace(credentials, client_cert=client.cert_path,
                                  client_key=client.key_path)
    before = server.log_path.read_text(errors="replace").count(UNKNOWN_ISSUER)
    _assert_rejected(_authenticate(server, case, foreign))
    assert server.log_path.read_text(errors="replace").count(UNKNOWN_ISSUER) > before


# The report itself: rendering and a write that must not fail the run.

def _sample_report() -> InteropReport:
    report = InteropReport(["md5", "pwd"], [("A", "RADIUS"), ("B", "RADIUS"), ("A", "relay")],
                           "run it")
    report.record(Cell("md5", "A", "RADIUS"), Result(interop_report.PASS))
    report.record(Cell("md5", "A", "RADIUS"), Result(interop_report.FAIL, "call: boom | bang"))
    report.record(Cell("md5", "A", "RADIUS"), Result(interop_report.PASS))
    report.record(Cell("pwd", "B", "RADIUS"), Result(interop_report.SKIP, "no pwd"))
    return report


def test_report_keeps_the_worst_outcome_and_lists_reasons():
    text = _sample_report().render(datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc))
    assert "| Case | A / RADIUS | B / RADIUS | A / relay |" in text
    assert "| md5 | fail | not run | not run |" in text
    assert "| pwd | not run | skip | not run |" in text
    assert "- md5 — A / RADIUS: fail: call: boom | bang" in text
    assert "- pwd — B / RADIUS: skip: no pwd" in text
    assert "Generated: 2024-05-01 00:00 UTC" in text


def test_report_write_failure_is_returned_not_raised(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    problem = _sample_report().write(tmp_path, now)  # a directory cannot be written as a file
    assert problem is not None and "IsADirectoryError" in problem
    assert _sample_report().write(tmp_path / "interop.md", now) is None
    assert (tmp_path / "interop.md").read_text().startswith("# EAP interoperability matrix")
