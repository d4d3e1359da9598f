"""``mip6-ha bindings|sas|stats|flush`` against a running ``mip6-ha --control PATH``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from aaa_mip6.store import open_store
from aaa_mip6.transform import SaEndpoint
from lab.processes import stop_process
from tests.integration.test_ha_program import OUTER_BOUND, start
from tests.integration.test_sa_delivery import HOA, bu_status, new_sa

pytestmark = pytest.mark.integration


def verb(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ha.cli", *arguments], capture_output=True,
                          text=True, timeout=OUTER_BOUND)


def test_bindings_sas_stats_and_flush(tmp_path):
    url = f"sqlite:///{tmp_path}/sa.db"
    with open_store(url) as store:
        record = new_sa(store)
    spi = record.sa.spi
    control = tmp_path / "ha.sock"
    process, lines, port = start("--listen", "[::1]:0", "--store", url,
                                 "--control", str(control))
    try:
        assert stat.S_IMODE(os.stat(control).st_mode) == 0o600
        mn = SaEndpoint(record.sa, "mn")
        assert bu_status(mn, port, 1) == 0

        bindings = json.loads(verb("bindings", "--control", str(control), "--json").stdout)
        assert [(row["home_address"], row["spi"], row["sequence"]) for row in bindings] \
            == [(str(HOA), spi, 1)]
        text = verb("bindings", "--control", str(control)).stdout
        assert str(HOA) in text and text.startswith("HOME ADDRESS")

        sas = verb("sas", "--control", str(control), "--json")
        [sa] = json.loads(sas.stdout)
        assert (sa["spi"], sa["mn_id"], sa["revoked"]) == (spi, "mn@example.org", False)
        for key in (record.sa.mn_to_ha_ikey, record.sa.ha_to_mn_ekey):
            assert key.hex() not in sas.stdout
        assert json.loads(verb("sas", "--control", str(control), "--spi", "1",
                               "--json").stdout) == []

        stats = json.loads(verb("stats", "--control", str(control), "--json").stdout)
        assert (stats["bindings"], stats["sas"]) == (1, 1)

        flushed = verb("flush", "--spi", str(spi), "--control", str(control))
        assert (flushed.returncode, flushed.stdout) == (0, f"flushed {spi}\n")
        assert json.loads(verb("bindings", "--control", str(control), "--json").stdout) == []
        lines.wait_for(r"binding .* removed \(flushed\)")
        again = verb("flush", "--spi", str(spi), "--control", str(control))
        assert again.returncode == 1
        assert again.stderr == f"mip6-ha flush: SA {spi} is not held by this HA\n"

        assert bu_status(mn, port, 2) == 0  # looked up again; sequence 2 still newer
        assert len(json.loads(verb("bindings", "--control", str(control),
                                   "--json").stdout)) == 1
        config = tmp_path / "ha.toml"
        config.write_text(f'[control]\nsocket = "{control}"\n')
        assert json.loads(verb("stats", "--config", str(config), "--json").stdout)["sas"] == 1
    finally:
        stop_process(process)
    gone = verb("stats", "--control", str(control))
    assert gone.returncode == 3 and "no mip6-ha listening on" in gone.stderr
