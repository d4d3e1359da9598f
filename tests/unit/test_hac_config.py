"""hac.config and hac.cli: every key validated, flags over the file, errors name the key;
hac.assemble's AAA wiring built from them; hac.process's start-up checks."""

from __future__ import annotations

import ipaddress
import logging
import re
import tomllib
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from aaa_mip6 import pki
from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import HomeAgent
from aaa_mip6.suites import SUITES
from aaa_mip6.twisted.diameter_eap import DiameterEapBackend
from hac import assemble, cli, process
from hac.config import SETTINGS, DiameterPeer, HacConfig, load_config, read_toml
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
    ("bootstrap.hoa_prefix", "2001:db8::1/64",
     "2001:db8::1/64 has host bits set; the prefix is 2001:db8::/64"),
    ("bootstrap.hoa_prefix", "10.0.0.0/8", "10.0.0.0/8 is an IPv4 prefix; IPv4 home addresses "
                                           "come from bootstrap.hoa_pool4 (--hoa-pool4)"),
    ("bootstrap.hoa_prefix", "home", "'home' is not an IPv6 prefix (e.g. 2001:db8:1::/64)"),
    ("bootstrap.hoa_pool4", "2001:db8:1::/64", "is an IPv6 prefix; IPv6 home addresses come "
                                               "from bootstrap.hoa_prefix (--hoa-prefix)"),
    ("home_agents.addresses", ["::1:7872"], "entry 1: ::1:7872 is ambiguous: write [::1]:7872 "
                                            "for an address and a port, or [::1:7872]"),
    ("radius.servers", ["2001:db8::5:1812"], "write [2001:db8::5]:1812"),
    ("diameter.peers", ["r.example.org=::1:3868"], "write [::1]:3868"),
    ("auth.methods", "psk,ldap", "each entry is psk or eap, once"),
    ("bootstrap.hoa_prefix", "2001:db8::/127", "too long"),
    ("instance", "", "non-empty string"),
    ("workers", 0, "1..64"),
    ("workers", "two", "1..64"),
    ("tls.client_ca", 3, "non-empty string"),
    ("tls.require_client_cert", "yes", "true or false"),
    ("tls.ticket_key_lifetime", 0, "positive number"),
    ("tcp_fast_open", 70_000, "0..65535"),
    ("tls.early_data", "yes", "true or false"),
    ("store.threads", 0, "1..64"),
    ("store.purge_interval", float("nan"), "positive number"),
    ("store.timeout", 0, "positive number"),
    ("store.retry_after", 0, "1..3600"),
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
    ("sa_delivery", "x", "must be a table"),
    ("log.level", "loud", "debug, info, warning, error"),
    ("log.format", "yaml", "must be one of text, json"),
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
    ("radius.accounting", "on", "true or false"),
    ("radius.accounting_servers", ["acct.example:1813"], "expected an IP address and port"),
    ("aaa.backend", "ldap", "radius, diameter"),
    ("diameter.origin_host", "hac example", "is not a DiameterIdentity"),
    ("diameter.origin_realm", "-bad.example", "is not a DiameterIdentity"),
    ("diameter.destination_realm", "", "non-empty string"),
    ("diameter.peers", "relay.example.org", "NAME=ADDRESS[:PORT]"),
    ("diameter.peers", ["relay.example.org=relay.example.net"], "is not an IP address"),
    ("diameter.peers", ["r.example.org=192.0.2.1:0"], "port must be 1..65535"),
    ("diameter.peers", ["r.example.org=192.0.2.1", "r.example.org=192.0.2.2"], "listed once"),
    ("diameter.peers", [], "non-empty list"),
    ("diameter.listen", "127.0.0.1", "must be HOST:PORT"),
    ("metrics.listen", "127.0.0.1", "is not ADDRESS:PORT"),
    ("diameter.ca", 1, "non-empty string"),
    ("diameter.cert", [], "non-empty string"),
    ("diameter.key", 0, "non-empty string"),
    ("diameter.request_timeout", 0, "positive number"),
    ("diameter.watchdog", 5, "at least 6 seconds"),
    ("diameter.retry_after", 0, "1..3600"),
    ("control.socket", "hac.sock", "must be an absolute path"),
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


def test_cli_diameter_flags_reach_their_keys(tmp_path):
    flags = ["--listen", "127.0.0.1:0", "--cert", "c", "--key", "k", "--psk-file", "p",
             "--store", "sqlite:///s.db", "--ha", "192.0.2.1", "--hoa-prefix", "2001:db8:1::/64",
             "--aaa-backend", "diameter", "--diameter-origin-host", "hac.example.org",
             "--diameter-origin-realm", "example.org", "--diameter-realm", "example.net",
             "--diameter-peer", "relay.example.org=192.0.2.6",
             "--diameter-peer", "relay2.example.org=[2001:db8::6]:3869",
             "--diameter-listen", "192.0.2.10:5658", "--diameter-ca", "ca.pem",
             "--diameter-cert", "d.pem", "--diameter-key", "d.key"]
    arguments = cli.build_parser().parse_args(flags)
    loaded = load_config(None, cli.config_overrides(arguments))
    assert (loaded.aaa_backend, loaded.diameter_origin_host, loaded.diameter_origin_realm,
            loaded.diameter_realm) == ("diameter", "hac.example.org", "example.org",
                                       "example.net")
    assert loaded.diameter_peers == (
        DiameterPeer("relay.example.org", ipaddress.ip_address("192.0.2.6"), None),
        DiameterPeer("relay2.example.org", ipaddress.ip_address("2001:db8::6"), 3869))
    assert str(loaded.diameter_listen) == "192.0.2.10:5658"
    assert (loaded.diameter_ca, loaded.diameter_cert, loaded.diameter_key) == (
        Path("ca.pem"), Path("d.pem"), Path("d.key"))
    assert loaded.aaa_configured and not loaded.radius_servers


# --- the PSK file is optional for an EAP-only HAC -------------------------------------

WITHOUT_PSK = {key: value for key, value in REQUIRED.items() if key != "credentials.psk_file"}


def test_psk_file_is_optional_when_psk_is_not_run():
    loaded = load_config(None, {**WITHOUT_PSK, "auth.methods": ["eap"],
                                "radius.servers": ["192.0.2.5"], "radius.secret": "s"})
    assert loaded.psk_file is None and loaded.auth_methods == ("eap",)


def test_psk_run_without_a_psk_file_names_key_flag_and_method():
    with pytest.raises(ConfigError, match=re.escape(
            "credentials.psk_file (--psk-file) is required while auth.methods includes psk")):
        load_config(None, {**WITHOUT_PSK, "auth.methods": ["eap", "psk"],
                           "radius.servers": ["192.0.2.5"], "radius.secret": "s"})


def test_eap_only_without_any_aaa_is_refused():
    with pytest.raises(ConfigError, match="no AAA server is configured .*aaa.backend = diameter"):
        load_config(None, {**WITHOUT_PSK, "auth.methods": ["eap"]})


# --- aaa.backend = "diameter" ---------------------------------------------------------

DIAMETER = {
    "aaa.backend": "diameter", "diameter.origin_host": "hac.example.org",
    "diameter.origin_realm": "example.org", "diameter.destination_realm": "example.net",
    "diameter.peers": ["relay.example.org=127.0.0.1"], "diameter.ca": "/etc/mip6/d-ca.pem",
    "diameter.cert": "/etc/mip6/d.pem", "diameter.key": "/etc/mip6/d.key",
}


def diameter_config(**changes) -> HacConfig:
    values = {**REQUIRED, **DIAMETER}
    values.update({key.replace("__", "."): value for key, value in changes.items()})
    return load_config(None, {key: value for key, value in values.items() if value is not None})


def test_diameter_backend_settings_and_defaults():
    loaded = diameter_config(auth__methods=["eap"], credentials__psk_file=None)
    assert loaded.aaa_configured and loaded.psk_file is None
    assert loaded.diameter_peers == (
        DiameterPeer("relay.example.org", ipaddress.ip_address("127.0.0.1"), None),)
    assert (loaded.diameter_request_timeout, loaded.diameter_watchdog,
            loaded.diameter_retry_after) == (10.0, 30.0, 5)
    assert diameter_config(diameter__peers="relay.example.org=[::1]:3869").diameter_peers[0] \
        == DiameterPeer("relay.example.org", ipaddress.ip_address("::1"), 3869)


@pytest.mark.parametrize("key", ["diameter.origin_host", "diameter.origin_realm",
                                 "diameter.destination_realm", "diameter.ca", "diameter.cert",
                                 "diameter.key"])
def test_diameter_backend_needs_each_of_its_keys(key):
    flag = SETTINGS[key].metadata["flag"]
    with pytest.raises(ConfigError, match=re.escape(
            f"{key} ({flag}) is required with aaa.backend = diameter")):
        diameter_config(**{key.replace(".", "__"): None})


@pytest.mark.parametrize("changes, message", [
    ({"diameter__peers": None},
     "diameter.peers (--diameter-peer) or diameter.listen (--diameter-listen) is required"),
    ({"workers": 2}, "workers (--workers) must be 1 with aaa.backend = diameter"),
    ({"radius__servers": ["192.0.2.5"], "radius__secret": "s"},
     "radius.servers (--radius-server) is set, but aaa.backend (--aaa-backend) is diameter"),
    ({"diameter__peers": None, "diameter__listen": "[::]:5658"},
     "diameter.listen (--diameter-listen): a wildcard address needs diameter.peers"),
])
def test_diameter_cross_key_rules(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        diameter_config(**changes)


def test_diameter_listen_alone_on_a_specific_address_is_enough():
    loaded = diameter_config(diameter__peers=None, diameter__listen="127.0.0.1:0")
    assert loaded.diameter_peers == () and str(loaded.diameter_listen) == "127.0.0.1:0"
    assert diameter_config(diameter__listen="[::]:5658").diameter_listen.port == 5658


@pytest.mark.parametrize("key, value", [("diameter.peers", ["r.example.org=192.0.2.6"]),
                                        ("diameter.listen", "192.0.2.10:5658")])
def test_diameter_peers_under_the_radius_backend_are_refused(key, value):
    flag = SETTINGS[key].metadata["flag"]
    with pytest.raises(ConfigError, match=re.escape(
            f"{key} ({flag}) is set, but aaa.backend (--aaa-backend) is radius")):
        config(**{key.replace(".", "__"): value})


# --- hac.assemble builds the Diameter backend from them ---------------------------------


@pytest.fixture(scope="module")
def diameter_pki(tmp_path_factory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("diameter-pki")
    ca = pki.make_ca(directory)
    own = pki.make_cert(directory, ca, "hac", dns_names=("hac.example.org",), client=True)
    return {"diameter.ca": str(ca.cert_path), "diameter.cert": str(own.cert_path),
            "diameter.key": str(own.key_path)}


def with_files(diameter_pki, **changes) -> HacConfig:
    """A Diameter config whose CA, certificate and key files exist, with ``changes``."""
    files = {key.replace(".", "__"): value for key, value in diameter_pki.items()}
    return diameter_config(**{**files, **changes})


def test_server_builds_a_diameter_backend_that_connects_and_listens(diameter_pki):
    loaded = with_files(diameter_pki, diameter__peers=["relay.example.org=127.0.0.1",
                                                       "relay2.example.org=127.0.0.1:3869"],
                        diameter__listen="127.0.0.1:0", diameter__watchdog=7)
    reactor = MemoryReactorClock()
    backend = assemble.aaa_backend(loaded, reactor)
    reactor.advance(1)  # the endpoints connect on the next turn
    assert isinstance(backend, DiameterEapBackend)
    node = backend.node
    assert (node.local.origin_host, node.local.origin_realm) == ("hac.example.org",
                                                                "example.org")
    assert node.local.auth_applications == frozenset({5})
    assert node.local.host_ip_addresses == ("127.0.0.1",)
    assert node.watchdog.tw == 7.0 and node.router.request_timeout == 10.0
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [
        ("127.0.0.1", 5658), ("127.0.0.1", 3869)]
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (0, "127.0.0.1")]
    assert "example.net" in repr(backend)


def test_server_check_names_a_missing_diameter_file(diameter_pki, tmp_path):
    hac_files = pki.make_cert(tmp_path, pki.make_ca(tmp_path), "hac", dns_names=("hac",))
    missing = tmp_path / "absent.pem"
    loaded = with_files(diameter_pki, diameter__cert=str(missing),
                        tls__cert=str(hac_files.cert_path), tls__key=str(hac_files.key_path),
                        auth__methods=["eap"], credentials__psk_file=None,
                        store__url=f"sqlite:///{tmp_path / 'sa.db'}")
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        process.check(loaded)


# --- flags for a first run, messages that say what to do ---------------------------------


def test_every_flag_sets_a_key_and_usage_documents_it():
    usage = (REPO / "docs" / "usage.md").read_text()
    actions = {"--help", "--version", "--check-config", "--config"}
    flags = {option for action in cli.build_parser()._actions for option in action.option_strings
             if option.startswith("--")} - actions
    keyed = {spec.metadata["flag"] for spec in SETTINGS.values() if spec.metadata["flag"]}
    assert flags == keyed
    for flag in flags | actions:
        assert f"`{flag}" in usage, flag


def test_an_eap_only_hac_from_flags_alone(tmp_path):
    flags = ["--listen", "127.0.0.1:0", "--cert", "c", "--key", "k", "--store",
             "sqlite:///s.db", "--ha", "[2001:db8::1]", "--hoa-prefix", "2001:db8:1::/64",
             "--auth-methods", "eap", "--radius-server", "192.0.2.5",
             "--radius-secret-file", "secret", "--instance", "hac7", "--hoa-pool4",
             "198.51.100.0/24", "--dns6", "2001:db8::53", "--dns4", "192.0.2.53",
             "--client-ca", "ca.pem", "--require-client-cert", "--max-connections", "100"]
    loaded = load_config(None, cli.config_overrides(cli.build_parser().parse_args(flags)))
    assert loaded.auth_methods == ("eap",) and loaded.psk_file is None
    assert (loaded.instance, str(loaded.hoa_pool4), str(loaded.dns6), str(loaded.dns4)) == (
        "hac7", "198.51.100.0/24", "2001:db8::53", "192.0.2.53")
    assert loaded.client_ca == Path("ca.pem") and loaded.require_client_cert
    assert loaded.max_connections == 100
    assert config(auth__methods="eap, psk", radius__servers=["192.0.2.5"],
                  radius__secret="s").auth_methods == ("eap", "psk")


def test_radius_secret_missing_or_given_twice_says_which():
    with pytest.raises(ConfigError) as neither:
        config(radius__servers=["192.0.2.5"])
    assert "not both" not in str(neither.value)
    assert str(neither.value).startswith("radius.servers (--radius-server) needs the shared "
                                         "secret: radius.secret_file")
    with pytest.raises(ConfigError, match=re.escape(
            "radius.secret (--radius-secret) and radius.secret_file (--radius-secret-file) "
            "are both set; keep one")):
        config(radius__servers=["192.0.2.5"], radius__secret="s", radius__secret_file="f")


@pytest.mark.parametrize("changes, note", [
    ({"auth__methods": ["psk"], "radius__servers": ["192.0.2.5"], "radius__secret": "s",
      "eap__identity_from_mn_id": True},
     "eap.identity_from_mn_id, radius.servers (--radius-server), radius.secret "
     "(--radius-secret) have no effect: auth.methods (--auth-methods) does not include eap"),
    ({"auth__methods": ["eap"], "radius__servers": ["192.0.2.5"], "radius__secret": "s"},
     "credentials.psk_file (--psk-file) has no effect: auth.methods (--auth-methods) does "
     "not include psk"),
    ({"radius__timeout": 3},
     "radius.timeout has no effect: no radius.servers (--radius-server) is set"),
    ({"radius__servers": ["192.0.2.5"], "radius__secret": "s",
      "radius__accounting_servers": ["192.0.2.6"]},
     "radius.accounting_servers has no effect: radius.accounting is false"),
    ({"auth__methods": ["psk"], "radius__accounting": True, "radius__secret": "s",
      "radius__accounting_servers": ["192.0.2.6"], "radius__servers": ["192.0.2.5"]},
     "radius.servers (--radius-server) has no effect: auth.methods (--auth-methods) does "
     "not include eap"),
    ({"radius__servers": ["192.0.2.5"], "radius__secret": "s",
      "diameter__origin_host": "hac.example.org"},
     "diameter.origin_host (--diameter-origin-host) has no effect: aaa.backend "
     "(--aaa-backend) is radius"),
])
def test_settings_without_effect_are_named_with_the_reason(changes, note):
    assert config(**changes).__class__ is HacConfig
    from hac.config import ineffective_settings
    assert ineffective_settings(config(**changes)) == [note]


def test_effective_settings_give_no_note():
    from hac.config import ineffective_settings
    assert ineffective_settings(config()) == []
    assert ineffective_settings(config(radius__servers=["192.0.2.5"], radius__secret="s",
                                       radius__timeout=3)) == []


def test_accounting_servers_default_to_the_auth_servers_on_port_1813():
    loaded = config(radius__servers=["192.0.2.5", "[2001:db8::5]:1645"], radius__secret="s",
                    radius__accounting=True)
    assert [(str(s.address), s.port, s.secret) for s in loaded.accounting_servers()] == [
        ("192.0.2.5", 1813, b"s"), ("2001:db8::5", 1813, b"s")]
    given = config(radius__accounting=True, radius__secret="s",
                   radius__accounting_servers=["192.0.2.9", "192.0.2.10:1646"])
    assert [(str(s.address), s.port) for s in given.accounting_servers()] == [
        ("192.0.2.9", 1813), ("192.0.2.10", 1646)]


def test_accounting_needs_servers_and_a_secret():
    with pytest.raises(ConfigError, match=r"^radius.accounting needs radius.servers "
                                          r"\(--radius-server\) or radius.accounting_servers"):
        config(radius__accounting=True, radius__secret="s")
    with pytest.raises(ConfigError, match="^radius.accounting needs the shared secret"):
        config(radius__accounting=True, radius__accounting_servers=["192.0.2.9"])


def test_psk_only_hac_with_accounting_uses_the_radius_keys():
    from hac.config import ineffective_settings
    assert ineffective_settings(config(auth__methods=["psk"], radius__accounting=True,
                                       radius__servers=["192.0.2.5"], radius__secret="s",
                                       radius__timeout=3)) == []


def test_summary_names_the_accounting_servers():
    loaded = config(radius__servers=["192.0.2.5"], radius__secret="s3cret",
                    radius__accounting=True)
    line = process.summary(loaded, loaded.listen, process.effective_methods(loaded))
    assert "AAA RADIUS 192.0.2.5:1812, RADIUS accounting 192.0.2.5:1813, store" in line


def test_store_description_never_shows_a_password():
    from hac.config import store_description
    assert store_description("postgresql://hac:s3cret@db.example:5432/mip6?password=x") == \
        "postgresql://hac@db.example:5432/mip6"
    assert store_description("sqlite:///var/lib/mip6/sa.db") == "sqlite:///var/lib/mip6/sa.db"


def test_summary_states_methods_aaa_store_agents_and_address():
    loaded = config(radius__servers=["192.0.2.5", "[2001:db8::5]:1645"], radius__secret="s3cret",
                    store__url="postgresql://hac:pw@db.example/mip6", instance="hac7",
                    home_agents__addresses=["[2001:db8::1]", {"ip6": "2001:db8::2",
                                                               "ip4": "192.0.2.2"}])
    line = process.summary(loaded, loaded.listen, process.effective_methods(loaded))
    assert line == ("HAC hac7: TLS on 127.0.0.1:7443, auth methods psk,eap, AAA RADIUS "
                    "192.0.2.5:1812, [2001:db8::5]:1645, store postgresql://hac@db.example/mip6, "
                    "home agents [2001:db8::1]:7872, [2001:db8::2]:7872 + 192.0.2.2:7872")
    assert "pw" not in line and "s3cret" not in line
    assert "auth methods psk, AAA none" in process.summary(config(), config().listen,
                                                          process.effective_methods(config()))


# --- start-up: the open-file limit, one-line failures, warnings once --------------------


def test_open_file_limit_is_raised_for_max_connections():
    import resource
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    loaded = config(limits__max_connections=500)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, before[1]))
        assert process.ensure_open_files(loaded) >= process.files_needed(loaded) > 500
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= process.files_needed(loaded)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_max_connections_beyond_the_hard_limit_is_refused(monkeypatch):
    monkeypatch.setattr(process, "raise_open_file_limit", lambda needed: (1024, 1024))
    loaded = config()  # the default 1024 connections need more than 1024 files
    with pytest.raises(ConfigError, match=re.escape(
            "limits.max_connections (--max-connections) 1024 needs 1091 open files per "
            "process, but the limit is 1024 (hard limit 1024): lower it to 957 or raise the "
            "hard limit")):
        process.ensure_open_files(loaded)


@pytest.mark.parametrize("error, status, line", [
    (ConfigError("listen (--listen) 127.0.0.1:1: Address already in use"), 2,
     "listen (--listen) 127.0.0.1:1: Address already in use"),
    (assemble.StartFailed("store.url (--store): cannot connect"), 1,
     "store.url (--store): cannot connect"),
    (PermissionError(13, "Permission denied", "/etc/mip6/hac.key"), 1,
     "cannot start: /etc/mip6/hac.key: Permission denied"),
    (RuntimeError("secret 1234"), 1,
     "cannot start: internal error (RuntimeError; --log-level debug shows where)"),
])
def test_start_failures_map_to_one_line_and_a_status(error, status, line):
    assert process.start_failure(error) == (status, line)


def test_store_errors_name_the_key_and_say_config_or_runtime(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(
            "store.url (--store): directory '/nonexistent' does not exist")):
        assemble.open_configured_store(config(store__url="sqlite:////nonexistent/sa.db"))


@pytest.fixture
def hac_files(tmp_path):
    ca = pki.make_ca(tmp_path)
    hac = pki.make_cert(tmp_path, ca, "hac", ip_addresses=("127.0.0.1",))
    psk = tmp_path / "psk"
    psk.write_text("alice@example.org 000102030405060708090a0b0c0d0e0f\n")
    psk.chmod(0o644)
    return {"tls__cert": str(hac.cert_path), "tls__key": str(hac.key_path),
            "credentials__psk_file": str(psk), "store__url": f"sqlite:///{tmp_path}/sa.db",
            "ca": ca, "dir": tmp_path}


def test_an_exposed_psk_file_warns_once_for_check_and_server(hac_files, caplog):
    files = {key: value for key, value in hac_files.items() if "__" in key}
    loaded = config(**files)
    with caplog.at_level(logging.WARNING):
        prepared = process.check(loaded)
        hac = assemble.assemble_hac(loaded, MemoryReactorClock(), tls=prepared.tls,
                                    credentials=prepared.credentials)
        hac.abandon()
    assert caplog.text.count("readable by group or others") == 1


def test_a_certificate_not_naming_its_host_warns(hac_files, caplog):
    other = pki.make_cert(hac_files["dir"], hac_files["ca"], "other",
                          dns_names=("someone.example.org",), client=True)
    with caplog.at_level(logging.WARNING):
        process._warn_about_certificate(other.cert_path, "diameter.cert",
                                       ({"hac.example.org"}, set()))
    assert "diameter.cert" in caplog.text and "names someone.example.org" in caplog.text
    assert "not hac.example.org" in caplog.text
    caplog.clear()
    bare = pki.make_cert(hac_files["dir"], hac_files["ca"], "bare", ip_addresses=("192.0.2.1",))
    with caplog.at_level(logging.WARNING):
        process._warn_about_certificate(bare.cert_path, "tls.cert",
                                       process._hac_names(config(listen="127.0.0.1:7443")))
        process._warn_about_certificate(bare.cert_path, "tls.cert",
                                       process._hac_names(config(listen="192.0.2.1:7443")))
        process._warn_about_certificate(bare.cert_path, "tls.cert",
                                       process._hac_names(config(listen="[::]:7443")))
    assert caplog.text.count("tls.cert") == 1 and "not 127.0.0.1" in caplog.text


def test_a_system_ca_bundle_loads_without_a_warning():
    import warnings

    from aaa_mip6.twisted.tls import load_certificates
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not bundle.exists():
        pytest.skip("no system CA bundle")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the load
        assert load_certificates(bundle)


def test_check_names_the_key_of_a_file_it_cannot_use(hac_files):
    files = {key: value for key, value in hac_files.items() if "__" in key}
    missing = hac_files["dir"] / "absent.pem"
    with pytest.raises(ConfigError, match=re.escape(
            f"tls.cert (--cert): certificate file {missing}: cannot read")):
        process.check(config(**{**files, "tls__cert": str(missing)}))
    bad_psk = hac_files["dir"] / "bad-psk"
    bad_psk.write_text("alice@example.org zz\n")
    with pytest.raises(ConfigError, match=re.escape(
            f"credentials.psk_file (--psk-file): PSK file {bad_psk} line 1: the key of "
            "alice@example.org is not hex")):
        process.check(config(**{**files, "credentials__psk_file": str(bad_psk)}))


def test_control_socket_and_the_older_sa_delivery_key_are_one_socket():
    delivery = {"home_agents": {"2001:db8::1": "ha1.example.net"},
                "origin_host": "hac.example.org", "origin_realm": "example.org",
                "destination_realm": "example.net", "insecure_tcp": True,
                "peers": ["ha1.example.net=192.0.2.1:5658"],
                "control_socket": "/run/mip6/old.sock"}
    config = load_config(None, {**REQUIRED, "sa_delivery": delivery})
    assert str(config.control_path) == "/run/mip6/old.sock"
    with pytest.raises(ConfigError, match="name two sockets"):
        load_config(None, {**REQUIRED, "sa_delivery": delivery,
                           "control.socket": "/run/mip6/hac.sock"})
    same = load_config(None, {**REQUIRED, "sa_delivery": delivery,
                              "control.socket": "/run/mip6/old.sock"})
    assert str(same.control_path) == "/run/mip6/old.sock"


def test_the_ha_choice_reads_the_load_from_the_store_and_skips_unreachable_has(hac_files):
    from twisted.internet import defer

    from aaa_mip6.store import open_store
    from tests.unit.test_store import template

    files = {key: value for key, value in hac_files.items() if "__" in key}
    loaded = config(**files, home_agents__addresses=["2001:db8::1", "2001:db8::2"],
                    home_agents__selection="least-loaded", sa_delivery={
                        "origin_host": "hac.example.org", "origin_realm": "example.org",
                        "destination_realm": "example.net", "insecure_tcp": True,
                        "peers": ["ha1.example.net=127.0.0.1:5658"],
                        "home_agents": {"2001:db8::1": "ha1.example.net",
                                        "2001:db8::2": "ha2.example.net"}})
    first, second = loaded.bootstrap_policy().home_agents
    with open_store(files["store__url"]) as store:
        for _ in range(3):
            store.create(template(), hac_instance="other-hac", home_agent=first)
    hac = assemble.assemble_hac(loaded, MemoryReactorClock(), delivers=False)
    try:
        hac.in_store_thread = lambda function, *args: defer.maybeDeferred(function, *args)
        hac._refresh_home_agents()
        assert hac.provisioner.load == {first: 3}
        assert hac.provisioner.select_home_agent("mn@example.org") == second

        class Reachable:  # the delivering process's view: only ha1 has a usable route
            claimer = "hac.example.org"

            class queue:
                @staticmethod
                def usable_destinations():
                    return ["ha1.example.net"]

        hac.delivery = Reachable()
        hac._refresh_home_agents()
        assert hac.provisioner.down == frozenset({second})
        assert hac.provisioner.select_home_agent("mn@example.org") == first
        worker = assemble.assemble_hac(loaded, MemoryReactorClock(), delivers=False)
        try:  # another worker (or host) learns it from the store
            worker.in_store_thread = hac.in_store_thread
            worker._refresh_home_agents()
            assert worker.provisioner.down == frozenset({second})
        finally:
            worker.abandon()
    finally:
        hac.delivery = None
        hac.abandon()

@pytest.mark.parametrize("workers, warned", [(1, False), (2, True)])
def test_early_data_with_several_workers_warns(hac_files, caplog, workers, warned):
    files = {key: value for key, value in hac_files.items() if "__" in key}
    hac_files["dir"].joinpath("psk").chmod(0o600)
    with caplog.at_level(logging.WARNING):
        process.check(config(**files, tls__early_data=True, workers=workers))
    assert ("tls.early_data (--early-data) with workers = 2" in caplog.text) == warned


def test_a_worker_that_does_not_deliver_revokes_through_the_outbox(hac_files):
    from twisted.internet import defer

    from aaa_mip6.store import open_store
    from tests.unit.test_store import template

    files = {key: value for key, value in hac_files.items() if "__" in key}
    loaded = config(**files, home_agents__addresses=["2001:db8::1"], sa_delivery={
        "origin_host": "hac.example.org", "origin_realm": "example.org",
        "destination_realm": "example.net", "insecure_tcp": True,
        "peers": ["ha1.example.net=127.0.0.1:5658"],
        "home_agents": {"2001:db8::1": "ha1.example.net"}})
    (agent,) = loaded.bootstrap_policy().home_agents
    with open_store(files["store__url"]) as store:
        record = store.create(template(), hac_instance="hac", home_agent=agent)
    worker = assemble.assemble_hac(loaded, MemoryReactorClock(), delivers=False)
    try:
        worker.in_store_thread = lambda function, *args: defer.maybeDeferred(function, *args)
        assert worker.revoke(record.sa.spi).result is True
        assert worker.revoke(4242).result is False
        assert worker.sas_revoked == 1
        with open_store(files["store__url"]) as store:
            (owed,) = store.claim_outbox("worker-0", ["ha1.example.net"], 2**40, 10)
        assert owed.revoke and owed.record.sa.revoked
    finally:
        worker.abandon()
