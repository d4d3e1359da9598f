"""docs/usage.md "EAP-SIM and EAP-AKA with hostapd and mip6-auc on loopback", run as written.

The section's shell blocks run in one bash (``set -eu``: every step must work) with only
what the text calls variables replaced: the checkout, the demo directory and the ports.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.processes import free_port
from tests.docs import shell_blocks

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("hostapd") is None,
                                 reason="hostapd is not installed")]

REPO = Path(__file__).resolve().parents[2]
SECTION = "EAP-SIM and EAP-AKA with hostapd and mip6-auc on loopback"
TIMEOUT = 180.0


def test_walkthrough_runs_as_written(tmp_path):
    script = "".join(shell_blocks("usage.md", SECTION))
    demo = tmp_path / "demo"
    replacements = {r"^AAA_MIP6=.*$": f"AAA_MIP6={REPO}", r"^DEMO=.*$": f"DEMO={demo}",
                    r"^HAC_PORT=\d+ RADIUS_PORT=\d+$":
                        f"HAC_PORT={free_port()} RADIUS_PORT={free_port()}"}
    for pattern, replacement in replacements.items():
        script, count = re.subn(pattern, replacement, script, flags=re.MULTILINE)
        assert count == 1, f"the walk-through should set {pattern!r} once"
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    # Output to files, not pipes: a server a failed step left in the background keeps its
    # copy of them open, and the test would wait for it instead of for the script.
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(["bash", "-c", "set -eu\n" + script], env=environment,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   start_new_session=True)
    try:
        process.wait(timeout=TIMEOUT)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # whatever a failed run left running
        except ProcessLookupError:
            pass
    stdout, stderr = out_path.read_text(), err_path.read_text()
    logs = "".join(f"\n--- {name}:\n{(demo / name).read_text(errors='replace')[-3000:]}"
                   for name in ("auc.log", "hac.log") if (demo / name).exists())
    assert process.returncode == 0, stderr[-3000:] + logs
    spis = re.findall(r"^mip6-spi\s+(\d+)$", stdout, re.MULTILINE)
    assert len(spis) == 6 and len(set(spis)) == 6, stdout + logs
    assert stdout.splitlines()[-1] == "2", stdout + logs
    assert (demo / "alice.usim.state").stat().st_mode & 0o777 == 0o600
    # The second run of each method re-authenticated fast: the AuC was asked once a method.
    assert (demo / "auc.log").read_text().count("SIM-REQ-AUTH") == 1, logs
