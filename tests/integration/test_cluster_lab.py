"""``mip6-lab cluster --short``, as CI runs it: the PostgreSQL primary, a HAC and an HA
killed in turn under load; the verdict (the last line) must hold nothing lost."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab.servers import patroni

pytestmark = pytest.mark.integration

LAB = Path(sys.executable).with_name("mip6-lab")
RUN_LIMIT = 180  # seconds: the short form's budget


def test_short_cluster_lab_loses_nothing_and_recovers_from_every_fault():
    if os.geteuid() != 0:
        pytest.skip("mip6-lab cluster needs root (network namespaces)")
    problem = patroni.missing()
    if problem:
        pytest.skip(problem)
    lab = subprocess.Popen([str(LAB), "cluster", "--short"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        stdout, stderr = lab.communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        lab.terminate()  # SIGTERM: the lab stops its servers and removes its namespaces
        stdout, stderr = lab.communicate(timeout=60)
        pytest.fail(f"mip6-lab cluster --short ran over {RUN_LIMIT} s:\n{stdout}{stderr}")
    done = subprocess.CompletedProcess(lab.args, lab.returncode, stdout, stderr)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    verdict = json.loads(lines[-1])
    print("\n" + "\n".join(lines))
    assert (verdict["acknowledged_sas_lost"], verdict["duplicate_spis"],
            verdict["mns_not_registered"], verdict["bootstraps_hung"]) == (0, 0, 0, 0), lines
    assert set(verdict["recovery_seconds"]) == {"postgres-primary", "hac", "ha"}
    assert all(seconds is not None and seconds < 45
               for seconds in verdict["recovery_seconds"].values()), verdict
    assert verdict["sas_acknowledged"] > 0 and verdict["registrations"] > 0
    # mip6-load's MNs kept (or regained) their bindings through every fault
    assert verdict["mip6_load"]["registered_at_end"] == verdict["kept_mns"] > 0
    assert verdict["pass"] is True and done.returncode == 0, done.stderr[-2000:]
    tag = re.search(r"namespaces (m6cl[0-9a-f]+)-", done.stdout).group(1)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{tag}-" not in left  # every namespace of the run removed
