"""docs/usage.md "EAP with FreeRADIUS on loopback", run as written.

The shell blocks of that section run in one bash (``set -eu``: every step must work)
with only what the text calls variables replaced: the checkout (``AAA_MIP6``), the
demo directory (``DEMO``) and the two ports. So the walk-through installs etc/freeradius
into a fresh copy of Debian's stock /etc/freeradius/3.0, and every EAP method the MN
speaks runs through the shipped snippet; its failure steps show the reject and timeout
log lines the section quotes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.processes import free_port
from tests.integration import stock_freeradius as stock

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
USAGE = REPO / "docs" / "usage.md"
SECTION = "## EAP with FreeRADIUS on loopback"
SCRIPT_TIMEOUT = 240.0  # seconds; the wrong-secret step alone waits about 14 s
PORT_ATTEMPTS = 3
METHOD_RUNS = 8  # md5, gtc, mschapv2, pwd, ttls/pap, ttls/mschapv2, peap (alice); tls (bob)
AAA_HOME_ADDRESS = "mip6-ip6-hoa          2001:db8:1:0:0:0:0:{}"  # users.aaa-mip6


def walkthrough_blocks(text: str) -> list[str]:
    """The ```sh blocks of the walk-through section, in order."""
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def with_variables(script: str, values: dict[str, str]) -> str:
    """``script`` with each variable's assignment line replaced; each must appear once."""
    for pattern, replacement in values.items():
        script, count = re.subn(pattern, lambda _: replacement, script, flags=re.MULTILINE)
        assert count == 1, f"the walk-through should set {pattern!r} once, found {count}"
    return script


def _run(script: str, demo: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in its own process group; whatever it left running is stopped."""
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    process = subprocess.Popen(["bash", "-c", "set -eu\n" + script], env=environment,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the walk-through did not end within {SCRIPT_TIMEOUT} s; "
                    f"stderr:\n{stderr[-3000:]}{_log_tails(demo)}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # background servers of a failed run
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _log_tails(demo: Path) -> str:
    """The ends of the servers' logs, for a failure message (the directory goes away)."""
    tails = []
    for name in ("hac.log", "hac2.log", "radius.log"):
        if (demo / name).exists():
            lines = (demo / name).read_text(errors="replace").splitlines()[-25:]
            tails.append(f"\n--- {name}:\n" + "\n".join(lines))
    return "".join(tails)


def _bind_failed(demo: Path) -> bool:
    log = demo / "radius.log"
    return log.exists() and "address already in use" in log.read_text(errors="replace").lower()


@pytest.fixture
def demo_parent():
    stock.skip_unless_runnable()
    with stock.freerad_directory() as directory:
        yield directory


def test_the_eap_walkthrough_runs_every_method_through_the_shipped_snippet(demo_parent):
    blocks = walkthrough_blocks(USAGE.read_text())
    assert len(blocks) == 2, "the walk-through: set-up and methods, then failures"
    for attempt in range(PORT_ATTEMPTS):
        demo = demo_parent / f"demo{attempt}"
        hac_port, radius_port = free_port("127.0.0.1"), stock.free_radius_port()
        script = with_variables("\n".join(blocks), {
            r"^AAA_MIP6=.*$": f"AAA_MIP6={REPO}",
            r"^DEMO=.*$": f"DEMO={demo}",
            r"^HAC_PORT=\d+ RADIUS_PORT=\d+$": f"HAC_PORT={hac_port} RADIUS_PORT={radius_port}",
        })
        result = _run(script, demo)
        if result.returncode == 0 or not _bind_failed(demo):
            break
    assert result.returncode == 0, (
        f"the walk-through failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        f"{_log_tails(demo)}")

    hac_log = (demo / "hac.log").read_text()
    assert hac_log.count("result=200") == METHOD_RUNS, hac_log
    assert result.stdout.count(AAA_HOME_ADDRESS.format(10)) == METHOD_RUNS - 1  # alice
    assert result.stdout.count(AAA_HOME_ADDRESS.format(11)) == 1  # bob, EAP-TLS

    # A wrong password: 401 for the MN; the HAC's line says what FreeRADIUS said.
    assert re.search(r"^mip6-mn: bootstrap with the HAC 127\.0\.0\.1:\d+ failed at done: HAC "
                     r"status 401 Unauthorized$", result.stderr, re.MULTILINE), result.stderr
    assert ("result=401 (the AAA rejected the MN: Reply-Message 'pap: Cleartext password "
            "does not match \"known good\" password', EAP-Failure)") in hac_log
    # A wrong secret: no answer at all, told apart from a reject.
    no_answer = (f"no answer from RADIUS server 127.0.0.1:{radius_port} "
                 "(wrong secret or server down)")
    hac2_log = (demo / "hac2.log").read_text()
    assert f"result=504 (AAA: AaaTimeout: {no_answer})" in hac2_log, hac2_log
    assert re.search(r"^mip6-mn: bootstrap with the HAC 127\.0\.0\.1:\d+ failed at eap: HAC "
                     r"status 504 Gateway Time-out$", result.stderr, re.MULTILINE), result.stderr
    assert "Shared secret is incorrect" in (demo / "radius.log").read_text(errors="replace")
    assert result.stdout.count("exit status 1") == 2
