"""hac.config and hac.cli: every key validated, flags over the file, errors name the key."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path

import pytest

from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import HomeAgent
from aaa_mip6.suites import SUITES
from hac import cli
from hac.config import SETTINGS, HacConfig, load_config, read_toml
from hac.provisioning import HaSelection

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {
    "listen": "127.0.0.1:7443", "tls.cert": "/etc/mip6/hac.pem", "tls.key": "/etc/mip6/hac.key",
    "credentials.psk_file": "/etc/mip6/psk", "store.url": "sqlite:///var/lib/mip6/sa.db",
    "home_agents.addresses": ["[2001:db8::1]:7000"], "bootstrap.hoa_prefix": "2001:db8:1::/64",
}


def config(**changes) -> HacConfig:
    values = dict(REQUIRED)
    values.update({key.replace("__", "."): value for key, value in changes.items()})
    return load_config(None, values)


def toml_file(tmp_path, text: str) -> Path:
    path = tmp_path / "hac.toml"
    path.write_text(text)
    return path


def test_defaults_from_the_quick_start_settings():
    loaded = config()
    assert (loaded.listen.host, loaded.listen.port) == ("127.0.0.1", 7443)
    assert loaded.workers == 1 and loaded.max_message == 65_535
    assert loaded.sa_policy().suites == frozenset(SUITES.values())
    policy = loaded.bootstrap_policy()
    assert policy.home_agents == (HomeAgent(ipaddress.IPv6Address("2001:db8::1"), None, 7000),)
    assert policy.selection is HaSelection.ROUND_ROBIN and policy.hoa_pool4 is None


@pytest.mark.parametrize("entry, agent", [
    ("[2001:db8::1]:7000", HomeAgent(ipaddress.IPv6Address("2001:db8::1"), None, 7000)),
    ("[2001:db8::1]", HomeAgent(ipaddress.IPv6Address("2001:db8::1"), None, 9999)),
    ("2001:db8::1", HomeAgent(ipaddress.IPv6Address("2001:db8::1"), None, 9999)),
    ("192.0.2.1:7000", HomeAgent(None, ipaddress.IPv4Address("192.0.2.1"), 7000)),
    ("192.0.2.1", HomeAgent(None, ipaddress.IPv4Address("192.0.2.1"), 9999)),
    ({"ip6": "2001:db8::1", "ip4": "192.0.2.1"},
     HomeAgent(ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv4Address("192.0.2.1"), 9999)),
])
def test_home_agent_forms(entry, agent):
    loaded = config(home_agents__addresses=[entry], home_agents__port=9999)
    assert loaded.bootstrap_policy().home_agents == (agent,)


def test_listen_forms():
    assert str(config(listen="[::1]:0").listen) == "[::1]:0"
    assert config(listen="[::]:7443").listen.family.name == "AF_INET6"


# Each key with a value it must refuse and a fragment of the reason.
BAD_VALUES = [
    ("listen", "127.0.0.1", "must be HOST:PORT"),
    ("listen", "hac.example:7443", "is not an IP address"),
    ("listen", "[::1]7443", "[address]:port"),
    ("listen", "127.0.0.1:70000", "port must be 0..65535"),
    ("tls.cert", "", "non-empty string"),
    ("tls.key", 5, "non-empty string"),
    ("credentials.psk_file", [], "non-empty string"),
    ("store.url", "mysql://db", "sqlite:/// or postgresql://"),
    ("home_agents.addresses", [], "non-empty list"),
    ("home_agents.addresses", ["ha.example"], "entry 1: 'ha.example' is not an IP address"),
    ("home_agents.addresses", ["192.0.2.1:0"], "port must be 1..65535"),
    ("home_agents.addresses", [{"ip6": "192.0.2.1"}], "entry 1"),
    ("home_agents.addresses", [{"port": 7}], "needs ip6 or ip4"),
    ("home_agents.addresses", [{"ip": "192.0.2.1"}], "unknown field 'ip'"),
    ("bootstrap.hoa_prefix", "2001:db8::1/64", "not an IPv6Network"),
    ("bootstrap.hoa_prefix", "2001:db8::/127", "too long"),
    ("instance", "", "non-empty string"),
    ("workers", 0, "1..64"),
    ("workers", "two", "1..64"),
    ("tls.client_ca", 3, "non-empty string"),
    ("tls.require_client_cert", "yes", "true or false"),
    ("tls.ticket_key_lifetime", 0, "positive number"),
    ("store.threads", 0, "1..64"),
    ("store.purge_interval", float("nan"), "positive number"),
    ("sa.suites", ["AES_256_GCM"], "unknown suite 'AES_256_GCM'"),
    ("sa.suites", [], "non-empty list"),
    ("sa.scopes", [2], "0 (signaling only) or 1"),
    ("sa.default_scope", 2, "0..1"),
    ("sa.lifetime", 59, "60..315360000"),
    ("home_agents.selection", "random", "round-robin, hash"),
    ("home_agents.port", 0, "1..65535"),
    ("bootstrap.hoa_pool4", "198.51.100.0/31", "too long"),
    ("bootstrap.dns6", "192.0.2.53", "not an IPv6Address"),
    ("bootstrap.dns4", "2001:db8::53", "not an IPv4Address"),
    ("limits.handshake_timeout", -1, "positive number"),
    ("limits.idle_timeout", True, "positive number"),
    ("limits.max_connections", 0, "1..1000000"),
    ("limits.rate", "fast", "positive number"),
    ("limits.burst", 0, "1..1000000"),
    ("limits.max_message", 10, "64..65535"),
    ("compat.draft01_auth", 1, "true or false"),
    ("log.level", "loud", "debug, info, warning, error"),
    ("auth.methods", ["psk", "ldap"], "each entry is psk or eap, once"),
    ("eap.identity_from_mn_id", "yes", "true or false"),
    ("limits.aaa_timeout", 0, "positive number"),
    ("radius.servers", ["radius.example:1812"], "expected an IP address and port"),
    ("radius.secret", "", "non-empty string"),
    ("radius.secret_file", 7, "non-empty string"),
    ("radius.nas_identifier", "", "non-empty string"),
    ("radius.nas_address", "nas.example", "is not an IP address"),
    ("radius.timeout", 0, "positive number"),
    ("radius.max_timeout", -1, "positive number"),
    ("radius.transmissions", 0, "1..10"),
    ("radius.dead_after", 0, "1..1000"),
    ("radius.hold_down", "long", "positive number"),
    ("radius.probe", "no", "true or false"),
]


def test_every_key_has_a_bad_value_case():
    assert {key for key, _, _ in BAD_VALUES} == set(SETTINGS)


@pytest.mark.parametrize("key, value, reason", BAD_VALUES)
def test_bad_value_is_refused_naming_the_key(key, value, reason):
    with pytest.raises(ConfigError) as caught:
        load_config(None, {**REQUIRED, key: value})
    message = str(caught.value)
    assert message.startswith(key) and reason in message


@pytest.mark.parametrize("key", [key for key in REQUIRED if key != "bootstrap.hoa_prefix"])
def test_missing_required_key_names_key_and_flag(key):
    values = {k: v for k, v in REQUIRED.items() if k != key}
    with pytest.raises(ConfigError, match=re.escape(key) + r" \(--[a-z-]+\) is required"):
        load_config(None, values)


def test_cross_key_rules():
    without_prefix = {k: v for k, v in REQUIRED.items() if k != "bootstrap.hoa_prefix"}
    with pytest.raises(ConfigError, match="hoa_prefix .* or bootstrap.hoa_pool4 is required"):
        load_config(None, without_prefix)
    assert config(bootstrap__hoa_prefix="", bootstrap__hoa_pool4="198.51.100.0/24").hoa_prefix \
        is None
    with pytest.raises(ConfigError, match="sa.default_scope must be one of sa.scopes"):
        config(sa__scopes=[0])
    with pytest.raises(ConfigError, match="tls.require_client_cert needs tls.client_ca"):
        config(tls__require_client_cert=True)


def test_file_values_and_flags_over_them(tmp_path):
    path = toml_file(tmp_path, """
listen = "127.0.0.1:1"
workers = 2
[tls]
cert = "/f/hac.pem"
key = "/f/hac.key"
[credentials]
psk_file = "/f/psk"
[store]
url = "sqlite:///f/sa.db"
[sa]
suites = ["AES_128_CBC_SHA256"]
scopes = [1]
lifetime = 3600
[home_agents]
addresses = ["192.0.2.1", { ip6 = "2001:db8::2", ip4 = "192.0.2.2", port = 7000 }]
selection = "hash"
[bootstrap]
hoa_prefix = "2001:db8:1::/64"
hoa_pool4 = "198.51.100.0/24"
dns6 = "2001:db8::53"
[limits]
idle_timeout = 5
""")
    loaded = load_config(path, {"listen": "[::1]:2", "workers": None, "tls.cert": "/x.pem"})
    assert str(loaded.listen) == "[::1]:2" and loaded.cert == Path("/x.pem")
    assert loaded.workers == 2 and loaded.key == Path("/f/hac.key")
    assert loaded.sa_policy().suites == frozenset({SUITES["AES_128_CBC_SHA256"]})
    assert loaded.sa_policy().lifetime == 3600 and loaded.idle_timeout == 5.0
    policy = loaded.bootstrap_policy()
    assert policy.selection is HaSelection.HASH and len(policy.home_agents) == 2
    assert policy.home_agents[1].port == 7000 and policy.dns6 is not None


@pytest.mark.parametrize("text, message", [
    ("[sa]\nlifetim = 5\n", "unknown key sa.lifetim"),
    ("colour = 'blue'\n", "unknown key colour"),
    ("[tls.extra]\nx = 1\n", "unknown key tls.extra.x"),
    ("listen = \n", "not valid TOML"),
])
def test_bad_file_is_named(tmp_path, text, message):
    path = toml_file(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(f"config file {path}: {message}")):
        read_toml(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_toml(tmp_path / "none.toml")


def test_sample_config_is_valid_and_documents_every_key():
    sample = REPO / "etc" / "hac.toml"
    flat = read_toml(sample)
    load_config(sample)
    text = sample.read_text()
    documented = (REPO / "docs" / "configuration.md").read_text()
    for key in SETTINGS:
        assert f"`{key}`" in documented, key
        assert key.rpartition(".")[2] in text, key
    assert tomllib.loads(text) and flat


def test_cli_bad_configuration_exits_2_with_the_key(tmp_path, capsys):
    path = toml_file(tmp_path, "[limits]\nrate = 0\n")
    flags = ["--config", str(path), "--listen", "127.0.0.1:0", "--cert", "c", "--key", "k",
             "--psk-file", "p", "--store", "sqlite:///s.db", "--ha", "192.0.2.1",
             "--ha", "[2001:db8::1]:7000", "--hoa-prefix", "2001:db8:1::/64"]
    assert cli.main(flags) == 2
    assert capsys.readouterr().err == "mip6-hac: limits.rate: must be a positive number\n"


def test_cli_missing_files_exit_2_naming_the_file(tmp_path, capsys):
    flags = ["--listen", "127.0.0.1:0", "--cert", str(tmp_path / "c.pem"), "--key", "k",
             "--psk-file", "p", "--store", f"sqlite:///{tmp_path}/s.db", "--ha", "192.0.2.1",
             "--hoa-prefix", "2001:db8:1::/64"]
    assert cli.main(flags) == 2
    assert f"{tmp_path}/c.pem" in capsys.readouterr().err


def test_cli_repeated_ha_flags_become_the_list():
    parsed = cli.build_parser().parse_args(["--ha", "192.0.2.1", "--ha", "[2001:db8::1]:7"])
    assert parsed.ha == ["192.0.2.1", "[2001:db8::1]:7"]
