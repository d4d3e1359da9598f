"""``mip6-hac sas|stats|revoke`` against a running ``mip6-hac --control PATH``."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.integration.test_hac_program import (HAC, Running, flags, lab, run,  # noqa: F401
                                                running)
from tests.integration.test_hac_server import ALICE, RawMn, tls_connect

pytestmark = pytest.mark.integration


def verb(*arguments: str):
    return run([HAC, *arguments])


def test_sas_stats_and_revoke_on_the_control_socket(lab, tmp_path, running):
    control = tmp_path / "hac.sock"
    hac: Running = running([*flags(lab, tmp_path), "--control", str(control)],
                           tmp_path / "hac.log")
    port = hac.port()
    assert stat.S_IMODE(os.stat(control).st_mode) == 0o600
    with tls_connect(lab, port) as sock:
        assert RawMn(sock).bootstrap().message.status == 200

    listed = verb("sas", "--control", str(control), "--json")
    assert listed.returncode == 0, listed.stderr
    [sa] = json.loads(listed.stdout)
    assert (sa["mn_id"], sa["revoked"]) == (ALICE, False)
    assert sa["home_address6"].startswith("2001:db8:1:") and "keys" not in sa

    text = verb("sas", "--control", str(control))
    assert text.returncode == 0 and str(sa["spi"]) in text.stdout and ALICE in text.stdout
    assert text.stdout.splitlines()[0].split()[:3] == ["SPI", "MN", "SUITE"]

    keyed = json.loads(verb("sas", "--control", str(control), "--keys", "--json").stdout)
    keys = keyed[0]["keys"]
    assert set(keys) == {"mn_to_ha_ikey", "ha_to_mn_ikey", "mn_to_ha_ekey", "ha_to_mn_ekey"}
    for key in keys.values():
        assert key not in text.stdout and key not in listed.stdout and key not in hac.text()
    keyed_text = verb("sas", "--control", str(control), "--keys").stdout
    assert all(key in keyed_text for key in keys.values())
    # The same keys as Wireshark esp_sa records (etc/wireshark/mip6.lua): a comment naming
    # the SA, then one record per protected PType and direction for the HA's address.
    records = verb("sas", "--control", str(control), "--keys", "--format", "wireshark")
    assert records.returncode == 0, records.stderr
    lines = records.stdout.splitlines()
    assert lines[0].startswith(f"# mip6 SPI {sa['spi']} ") and len(lines) == 5
    assert all(line.startswith('"IPv6",') for line in lines[1:])
    assert f"0x{keys['mn_to_ha_ikey']}" in records.stdout
    assert f"0x{keys['ha_to_mn_ikey']}" in records.stdout
    refused = verb("sas", "--control", str(control), "--format", "wireshark")
    assert refused.returncode == 2 and "needs --keys" in refused.stderr

    assert json.loads(verb("sas", "--control", str(control), "--mn-id", "nobody",
                           "--json").stdout) == []
    assert [row["spi"] for row in json.loads(verb(
        "sas", "--control", str(control), "--spi", str(sa["spi"]), "--json").stdout)] \
        == [sa["spi"]]

    stats = verb("stats", "--control", str(control), "--json")
    assert json.loads(stats.stdout)["bootstraps"] == {"200": 1}
    assert "sas_issued 1" in verb("stats", "--control", str(control)).stdout.splitlines()

    revoke = verb("revoke", "--spi", str(sa["spi"]), "--control", str(control))
    assert revoke.returncode == 3 and revoke.stderr.count("\n") == 1
    assert "revoke needs SA delivery ([sa_delivery]" in revoke.stderr

    config = tmp_path / "hac.toml"  # the running HAC's own file names the socket
    config.write_text(f'listen = "127.0.0.1:0"\n'
                      f'[tls]\ncert = "{lab["hac"].cert_path}"\nkey = "{lab["hac"].key_path}"\n'
                      f'[store]\nurl = "sqlite:///{tmp_path}/sa.db"\n'
                      f'[home_agents]\naddresses = ["[2001:db8::1]"]\n'
                      f'[bootstrap]\nhoa_prefix = "2001:db8:1::/64"\n'
                      f'[credentials]\npsk_file = "{tmp_path / "psk"}"\n'
                      f'[control]\nsocket = "{control}"\n')
    assert json.loads(verb("stats", "--config", str(config), "--json").stdout)["sas_issued"] == 1
    config.write_text(config.read_text().replace(f'[control]\nsocket = "{control}"\n', ""))
    unset = verb("stats", "--config", str(config))
    assert unset.returncode == 2 and "sets no control.socket" in unset.stderr
    assert hac.stop() == 0
    assert "Traceback" not in hac.text()


def test_a_verb_with_nobody_listening_is_one_line_and_exit_3(tmp_path):
    gone = tmp_path / "gone.sock"
    result = verb("stats", "--control", str(gone))
    assert (result.returncode, result.stderr) == (
        3, f"mip6-hac stats: no mip6-hac listening on {gone} "
           f"(is it running with --control {gone}?)\n")


def test_with_workers_each_listens_and_stats_adds_them_up(lab, tmp_path, running):
    control = tmp_path / "hac.sock"
    hac: Running = running([*flags(lab, tmp_path), "--control", str(control),
                            "--workers", "2"], tmp_path / "hac.log")
    port = hac.port(workers=2)
    for path in (control, tmp_path / "hac.sock.1"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for _ in range(4):
        with tls_connect(lab, port) as sock:
            assert RawMn(sock).bootstrap().message.status == 200

    stats = verb("stats", "--control", str(control), "--json")
    assert stats.returncode == 0, stats.stderr
    counters = json.loads(stats.stdout)
    assert counters["total"]["bootstraps"] == {"200": 4}
    assert counters["total"]["sas_issued"] == 4 and "pid" not in counters["total"]
    assert sum(counters[worker]["bootstraps"].get("200", 0)
               for worker in ("worker0", "worker1")) == 4
    assert counters["worker0"]["pid"] != counters["worker1"]["pid"]
    assert "total.sas_issued 4" in verb("stats", "--control", str(control)).stdout.splitlines()
    for path in (control, tmp_path / "hac.sock.1"):  # the store is every worker's
        listed = json.loads(verb("sas", "--control", str(path), "--json").stdout)
        assert len(listed) == 4
    assert hac.stop() == 0
    assert "Traceback" not in hac.text()
