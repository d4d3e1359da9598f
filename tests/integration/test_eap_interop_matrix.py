"""Every MN EAP method against two EAP servers, FreeRADIUS 3.2 and hostapd, via RADIUS.

Each accepting cell checks Access-Accept, EAP-Success at the peer, the negotiated
TLS version, and that the MSK the peer derived equals the one the server handed
out as MS-MPPE keys. The reject cells check a wrong password and an EAP-TLS client
certificate from a CA the server does not trust. These are the "direct RADIUS"
columns of the session's interop matrix (see ``interop_report``).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from pyrad import packet

from aaa_mip6 import pki
from aaa_mip6.eap import EapError
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration import interop_report
from tests.integration.interop_report import (
    ALL_CASES,
    PATH_DIRECT,
    Case,
    Cell,
    InteropReport,
    Result,
)
from tests.integration.radius_eap_driver import EapRun, RadiusEapDriver

pytestmark = pytest.mark.integration

SERVERS = {"FreeRADIUS": "freeradius", "hostapd": "hostapd"}  # report name -> fixture
UNKNOWN_ISSUER = "unable to get local issuer certificate"  # OpenSSL's text, in both logs

# Diagnosed failures, each with its cause; strict, so a fix turns them into failures to remove.
KNOWN_FAILURES: dict = {}


def _params() -> list:
    params = []
    for case in ALL_CASES:
        for server in SERVERS:
            reason = KNOWN_FAILURES.get((case, server))
            marks = (pytest.mark.xfail(strict=True, raises=EapError, reason=reason),
                     ) if reason else ()
            params.append(pytest.param(case, server, marks=marks,
                                       id=f"{case.test_id}-{server}"))
    return params


@pytest.fixture(scope="session", autouse=True)
def interop_matrix_report(request) -> InteropReport:
    """This module's cells in the session's matrix (docs/interop.md at the end)."""
    return interop_report.join(request.config, __name__, interop_report.param_cell(PATH_DIRECT))


@pytest.fixture(scope="module")
def foreign_client(tmp_path_factory) -> pki.Identity:
    return interop_report.make_foreign_client(tmp_path_factory.mktemp("foreign-pki"))


@pytest.fixture
def server(request, server_name):
    """The running server named by the ``server_name`` parameter (skips if not installed)."""
    return request.getfixturevalue(SERVERS[server_name])


def _authenticate(server, case: Case, credentials: EapCredentials) -> EapRun:
    reason = interop_report.unsupported(server, case)
    if reason is not None:
        pytest.skip(reason)
    outer = credentials.anonymous_identity or credentials.identity
    driver = RadiusEapDriver(server.host, server.port, server.secret)
    return driver.authenticate(EapPeer(case.method, credentials), outer)


@pytest.mark.parametrize("case, server_name", _params())
def test_matrix(request, server, case: Case, server_name: str):
    if case.scenario == "accept":
        _check_accepted(_authenticate(server, case, case.credentials(server)), case)
    elif case.scenario == "wrong password":
        _check_wrong_password(server, case)
    else:
        _check_unknown_client_ca(server, case, request.getfixturevalue("foreign_client"))


def _check_accepted(run: EapRun, case: Case) -> None:
    assert run.accepted and run.reply.code == packet.AccessAccept
    assert run.peer.success and run.peer.method_done
    if case.tls:
        assert run.peer.method.engine.tls_version == f"TLSv{case.tls}"
    assert (None if run.msk is None else len(run.msk)) == interop_report.msk_length(case)
    assert run.peer.msk == run.msk


def _assert_rejected(run: EapRun) -> None:
    assert not run.accepted and run.reply.code == packet.AccessReject and run.msk is None
    assert run.peer.failure and not run.peer.success


def _check_wrong_password(server, case: Case) -> None:
    wrong = case.wrong_password(server)
    if case.method != "pwd":
        _assert_rejected(_authenticate(server, case, wrong))
        return
    # RFC 5931: the peer must not confirm when the server's confirm fails to verify.
    with pytest.raises(EapError) as caught:
        _authenticate(server, case, wrong)
    assert caught.value.reason == "bad-auth"


def _check_unknown_client_ca(server, case: Case, client: pki.Identity) -> None:
    before = server.log_path.read_text(errors="replace").count(UNKNOWN_ISSUER)
    _assert_rejected(_authenticate(server, case, case.foreign_client(server, client)))
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
    text = _sample_report().render()
    assert "| Case | A / RADIUS | B / RADIUS | A / relay |" in text
    assert "| md5 | fail | not run | not run |" in text
    assert "| pwd | not run | skip | not run |" in text
    assert "- md5 — A / RADIUS: fail: call: boom | bang" in text
    assert "- pwd — B / RADIUS: skip: no pwd" in text
    assert "Generated" not in text  # a timestamp would change the tracked file on every run


def test_report_write_failure_is_returned_not_raised(tmp_path):
    problem = _sample_report().write(tmp_path)  # a directory cannot be written as a file
    assert problem.startswith(f"interop matrix NOT written to {tmp_path}: IsADirectoryError")
    path = tmp_path / "interop.md"
    assert _sample_report().write(path) == f"interop matrix written to {path}"
    assert path.read_text().startswith("# EAP interoperability matrix")


def test_an_unchanged_report_is_not_rewritten(tmp_path):
    path = tmp_path / "interop.md"
    _sample_report().write(path)
    os.utime(path, ns=(0, 0))
    assert _sample_report().write(path) == f"interop matrix unchanged in {path}"
    assert path.stat().st_mtime_ns == 0


def _phase(when: str = "call", failed: bool = False, longrepr=None) -> SimpleNamespace:
    """What outcome_of reads from a pytest phase report."""
    return SimpleNamespace(when=when, failed=failed, skipped=False, longrepr=longrepr)


def _report_through(collector, item, phase) -> None:
    """Run the collector's makereport wrapper as pytest would, with ``phase`` as the result."""
    wrapper = collector.pytest_runtest_makereport(item, None)
    next(wrapper)
    with pytest.raises(StopIteration):
        wrapper.send(phase)


def test_modules_fill_one_report_written_once_at_the_end(tmp_path, monkeypatch):
    path = tmp_path / "interop.md"
    monkeypatch.setenv(interop_report.REPORT_ENV, str(path))
    collector = interop_report.ReportCollector(InteropReport(
        ["md5", "pwd"], [("A", "RADIUS"), ("B", "RADIUS"), ("A", "relay")], "run it"))
    collector.cell_of = {"one": interop_report.param_cell("RADIUS"),
                         "two": interop_report.param_cell("relay", "A")}

    def item(module: str, **params) -> SimpleNamespace:
        return SimpleNamespace(module=SimpleNamespace(__name__=module),
                               callspec=SimpleNamespace(params=params))

    collector.pytest_sessionfinish(None)
    assert not path.exists() and collector.summary is None  # nothing ran: nothing written
    _report_through(collector, item("one", case=Case("pwd"), server_name="B"), _phase())
    _report_through(collector, item("two", case=Case("md5")), _phase())
    _report_through(collector, item("two", case=Case("md5")), _phase(
        "teardown", True, SimpleNamespace(reprcrash=SimpleNamespace(message="gone"))))
    _report_through(collector, item("three", case=Case("md5"), server_name="A"), _phase())
    _report_through(collector, item("one", other=1), _phase())
    collector.pytest_sessionfinish(None)
    text = path.read_text()
    assert "| md5 | not run | not run | fail |" in text  # module three never joined
    assert "| pwd | not run | pass | not run |" in text
    assert "- md5 — A / relay: fail: teardown: gone" in text
    assert collector.summary == f"interop matrix written to {path}"
