"""Key logs for Wireshark: Wireshark's esp_sa records per SA, private append-only files,
and the mip6-mn flags that write them."""

import pytest

from aaa_mip6 import keylog, pki
from aaa_mip6.sa import Bootstrap, HomeAgent
from mn import cli
from mn.bootstrap import Bootstrapped
from tests.unit.test_mn_mobility import HA4, HA6, HOME_AGENT, make_sa


def fields(record: str) -> list[str]:
    return [field.strip('"') for field in record.split(",")]


def test_records_per_address_ptype_and_direction():
    sa = make_sa("AES_128_CBC_SHA", spi=0x1234)
    lines = keylog.esp_sa_records(sa, HOME_AGENT)
    assert lines[0] == "# mip6 SPI 4660 AES_128_CBC_SHA mn@example.org"
    records = [fields(line) for line in lines[1:]]
    assert len(records) == 2 * 2 * 2  # IPv6 and IPv4, PType 1 and 8, both directions
    assert {(r[0], r[1], r[2]) for r in records} == {
        ("IPv6", "*", str(HA6)), ("IPv6", str(HA6), "*"),
        ("IPv4", "*", str(HA4)), ("IPv4", str(HA4), "*")}
    assert {r[3] for r in records} == {"0x10001234", "0x80001234"}
    to_ha = [r for r in records if r[1] == "*"]
    from_ha = [r for r in records if r[1] != "*"]
    assert {(r[5], r[7]) for r in to_ha} == {(f"0x{sa.mn_to_ha_ekey.hex()}",
                                              f"0x{sa.mn_to_ha_ikey.hex()}")}
    assert {(r[5], r[7]) for r in from_ha} == {(f"0x{sa.ha_to_mn_ekey.hex()}",
                                                f"0x{sa.ha_to_mn_ikey.hex()}")}
    assert {(r[4], r[6]) for r in records} == {("AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]")}


@pytest.mark.parametrize("suite, encryption, integrity", [
    ("NULL_SHA", "NULL", "HMAC-SHA-1-96 [RFC2404]"),
    ("NULL_SHA256", "NULL", "ANY 96 bit authentication [no checking]"),
    ("3DES_EDE_CBC_SHA", "TripleDES-CBC [RFC2451]", "HMAC-SHA-1-96 [RFC2404]"),
    ("AES_128_CBC_SHA256", "AES-CBC [RFC3602]", "ANY 96 bit authentication [no checking]"),
])
def test_each_suite_names_wiresharks_algorithms(suite, encryption, integrity):
    records = [fields(line) for line in keylog.esp_sa_records(make_sa(suite), HOME_AGENT)[1:]]
    assert {(r[4], r[6]) for r in records} == {(encryption, integrity)}
    if encryption == "NULL":
        assert {r[5] for r in records} == {""}


def test_an_ipv4_only_home_agent_gets_ipv4_records_only():
    home_agent = HomeAgent(None, HA4, 7872)
    records = [fields(line) for line in keylog.esp_sa_records(make_sa(), home_agent)[1:]]
    assert {r[0] for r in records} == {"IPv4"} and len(records) == 4


def test_sa_keylog_is_private_and_appends(tmp_path):
    path = tmp_path / "sa.keys"
    path.write_text("kept\n")
    path.chmod(0o644)
    log = keylog.SaKeyLog(path)
    log.record(make_sa(spi=1), HOME_AGENT)
    log.record(make_sa(spi=2), HOME_AGENT)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.startswith("kept\n") and text.count("# mip6 SPI") == 2


def test_tls_keylog_writes_one_line_per_secret(tmp_path):
    path = tmp_path / "tls.keys"
    write = keylog.tls_keylog_writer(path)
    write(None, b"CLIENT_RANDOM 00 11")
    write(None, b"SERVER_HANDSHAKE_TRAFFIC_SECRET 22 33")
    assert path.read_bytes() == b"CLIENT_RANDOM 00 11\nSERVER_HANDSHAKE_TRAFFIC_SECRET 22 33\n"
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("flag", ["--tls-keylog", "--sa-keylog"])
def test_a_keylog_that_cannot_be_opened_is_a_usage_error_naming_the_flag(
        flag, tmp_path, capsys):
    ca = pki.make_ca(tmp_path)
    missing = tmp_path / "no-such-directory" / "keys"
    status = cli.main(["bootstrap", "--hac", "127.0.0.1:9", "--ca", str(ca.cert_path),
                       "--id", "mn@example.org", "--psk", "00112233", flag, str(missing)])
    assert status == 2
    error = capsys.readouterr().err
    assert error.strip() == f"mip6-mn: {flag} {missing}: No such file or directory"


def test_bootstrap_appends_the_sa_it_was_given(tmp_path, monkeypatch, capsys):
    ca = pki.make_ca(tmp_path)
    sa = make_sa("NULL_SHA", spi=77)
    monkeypatch.setattr(cli, "_run", lambda *args: Bootstrapped(sa, Bootstrap(HOME_AGENT)))
    path = tmp_path / "sa.keys"
    status = cli.main(["bootstrap", "--hac", "127.0.0.1:9", "--ca", str(ca.cert_path),
                       "--id", "mn@example.org", "--psk", "00112233", "--sa-keylog", str(path)])
    assert status == 0
    assert path.read_text().splitlines() == keylog.esp_sa_records(sa, HOME_AGENT)
    assert sa.mn_to_ha_ikey.hex() not in capsys.readouterr().out  # printed hidden, as before
