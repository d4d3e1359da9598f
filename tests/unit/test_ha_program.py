"""mip6-ha at its edges: start-up failures as one line and an exit status, settings
without effect, the status file checked at start, reload, and why datagrams are dropped
logged at info level at most once per reason per interval (on a fake clock)."""

import errno
import ipaddress
import logging
import re
from pathlib import Path

import pytest
from twisted.internet import task
from twisted.internet.error import CannotListenError

from aaa_mip6 import program
from aaa_mip6.errors import ConfigError
from aaa_mip6.store.base import StoreError
from aaa_mip6.twisted.tun import TunnelError
from ha import cli, config
from ha.assemble import assemble_home_agent


@pytest.mark.parametrize(("error", "status", "text"), [
    (ConfigError("max_lifetime (--max-lifetime): must be an integer in 4..262140"), 2,
     "max_lifetime"),
    (StoreError("SA store: cannot connect to PostgreSQL u@db:5432/sa"), 1, "cannot connect"),
    (TunnelError("cannot open /dev/net/tun: Permission denied (root needed)"), 2,
     "tun: cannot open /dev/net/tun"),
    (CannotListenError("::1", 7872, OSError(errno.EADDRINUSE, "Address already in use")), 1,
     "listen [::1]:7872: Address already in use (another program"),
    (CannotListenError("::1", 80, OSError(errno.EACCES, "Permission denied")), 2,
     "a port below 1024 needs root or CAP_NET_BIND_SERVICE"),
    (CannotListenError("192.0.2.1", 7872, OSError(errno.EADDRNOTAVAIL, "Cannot assign")), 2,
     "listen 192.0.2.1:7872: Cannot assign (not an address of this host)"),
    (PermissionError(errno.EACCES, "Permission denied", "/var/lib/mip6/x"), 1,
     "Permission denied /var/lib/mip6/x"),
    (KeyError("boom"), 1, "unexpected error at start-up: KeyError"),
])
def test_startup_failures_are_one_line_with_their_exit_status(error, status, text):
    message, got = cli.startup_failure(error)
    assert got == status and text in message and "\n" not in message


def test_tun_route_without_tun_has_no_effect():
    base = {"listen": ["[::1]:0"], "store": "sqlite:///x.db", "tun_route": ["2001:db8:1::/64"]}
    assert config.ineffective_settings(config.load_config(None, base)) == [
        "tun_route (--tun-route) has no effect without tun (--tun): nothing is routed or "
        "forwarded"]
    assert config.ineffective_settings(config.load_config(None, {**base, "tun": "ha0"})) == []


def test_status_file_directory_is_checked(tmp_path):
    cli.check_status_file(str(tmp_path / "status.json"))
    cli.check_status_file(None)
    with pytest.raises(ConfigError, match="status_file .*: directory .*missing does not exist"):
        cli.check_status_file(str(tmp_path / "missing" / "status.json"))


def test_an_ambiguous_listen_address_names_the_fix():
    with pytest.raises(ConfigError, match=r"listen \(--listen\): '::1:7872': ::1:7872 is "
                                          r"ambiguous: write \[::1\]:7872"):
        config.load_config(None, {"listen": ["::1:7872"], "store": "sqlite:///x.db"})


def test_a_tun_name_too_long_names_the_key():
    with pytest.raises(ConfigError, match=r"^tun \(--tun\): the interface name"):
        config.load_config(None, {"listen": ["[::1]:0"], "store": "sqlite:///x.db",
                                  "tun": "x" * 16})


@pytest.fixture
def server(tmp_path):
    loaded = config.load_config(None, {"listen": ["[::1]:0"],
                                       "store": f"sqlite://{tmp_path}/sa.db",
                                       "status_file": str(tmp_path / "status.json")})
    clock = task.Clock()
    server = assemble_home_agent(loaded, clock)
    server.clock = clock.seconds
    yield server
    server.source.close()
    server.ledger.close()


def test_drops_are_logged_at_info_once_per_reason_per_interval(server, caplog):
    with caplog.at_level(logging.DEBUG, logger="mip6.ha"):
        for _ in range(4):
            server.datagram_received(b"\x08junk", ("::1", 5000))
        server.reactor.advance(server.drop_log.interval)
        server.datagram_received(b"\x08junk", ("192.0.2.9", 6000))
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(info) == 2 and len(debug) == 3
    assert info[0].startswith("dropped a packet from [::1]:5000: malformed (")
    assert "--home-agent" in info[0]
    assert info[1].startswith("dropped a packet from 192.0.2.9:6000: malformed")
    assert info[1].endswith("; 3 more malformed drop(s) not logged in the last 10 s")


def test_a_status_file_that_cannot_be_written_warns_and_the_log_goes_on(server, tmp_path,
                                                                         caplog):
    server.status_path = str(tmp_path / "gone" / "status.json")
    with caplog.at_level(logging.INFO, logger="mip6.ha"):
        server.report()
        server.report()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot write" in warnings[0]
    assert len([r for r in caplog.records if r.getMessage().startswith("status ")]) == 2


def test_reload_applies_log_level_and_status_file_and_names_what_needs_a_restart(
        server, tmp_path, caplog):
    toml = tmp_path / "ha.toml"
    toml.write_text(f'listen = ["[::1]:0"]\nstore = "sqlite://{tmp_path}/sa.db"\n'
                    f'status_file = "{tmp_path}/status.json"\n')
    args = cli.build_parser().parse_args(["--config", str(toml)])
    running = [cli._load(args)]
    toml.write_text(toml.read_text().replace("status.json", "other.json")
                    + 'max_lifetime = 60\n[log]\nlevel = "debug"\n')
    old_level = logging.getLogger().level
    try:
        with caplog.at_level(logging.INFO, logger="mip6.ha"):
            cli.reload(args, server, running)
        assert logging.getLogger().level == logging.DEBUG
    finally:
        logging.getLogger().setLevel(old_level)
    assert server.status_path == f"{tmp_path}/other.json"
    assert running[0].status_file == f"{tmp_path}/other.json"
    assert "max_lifetime" in caplog.text and "takes a restart" in caplog.text
    toml.write_text("max_lifetime = 0\n")
    cli.reload(args, server, running)
    assert "the running settings stay" in caplog.text
    assert server.status_path == f"{tmp_path}/other.json"


def test_version_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--version"])
    assert exit_.value.code == program.EXIT_OK
    assert capsys.readouterr().out.startswith("mip6-ha ")


def test_the_old_hyphenated_keys_still_load_with_one_warning_naming_the_new_key(
        server, tmp_path, caplog, monkeypatch):
    toml = tmp_path / "ha.toml"
    toml.write_text(f'listen = ["[::1]:0"]\nstore = "sqlite://{tmp_path}/sa.db"\n'
                    f'status-file = "{tmp_path}/status.json"\nmax-lifetime = 60\n'
                    'log-level = "warning"\n')
    args = cli.build_parser().parse_args(["--config", str(toml)])
    # The schema warns once per key in a process's life: start this test's life afresh,
    # whatever other tests loaded before it.
    monkeypatch.setattr(config.SCHEMA, "_renamed_warned", set())
    monkeypatch.setattr(config.SCHEMA, "_renamed_read", [])
    loaded = cli._load(args)
    assert (loaded.status_file, loaded.policy.max_lifetime, loaded.log_level) == (
        f"{tmp_path}/status.json", 60, "warning")
    assert config.SCHEMA.deprecations() == [
        "config key status-file is deprecated: it is now status_file",
        "config key max-lifetime is deprecated: it is now max_lifetime",
        "config key log-level is deprecated: it is now log.level"]
    with caplog.at_level(logging.INFO, logger="mip6.ha"):
        cli.reload(args, server, [loaded])  # read again: no second warning
    assert "deprecated" not in caplog.text
    toml.write_text(toml.read_text() + "max_lifetime = 90\n")
    with pytest.raises(ConfigError, match="max-lifetime and max_lifetime are the same "
                                          "setting .*; keep max_lifetime"):
        cli._load(args)


def test_the_sample_config_loads_and_names_every_key(tmp_path):
    sample = Path(__file__).resolve().parents[2] / "etc" / "ha.toml"
    text = sample.read_text()
    assert config.load_config(sample).policy.home_agent == ipaddress.ip_address("2001:db8::1")
    head = text.partition("[log]")[0]  # the keys commented out, on: every one a key
    enabled = tmp_path / "ha.toml"
    enabled.write_text(re.sub(r"(?m)^# (\w+ = )", r"\1", head))
    loaded = config.load_config(enabled)
    assert loaded.tun == "mip6home" and loaded.status_file == "/run/mip6/ha-status.json"
    assert config.SCHEMA.deprecations() == []
    documented = (sample.parents[1] / "docs" / "configuration.md").read_text()
    for key in config.SETTINGS:
        assert key.rpartition(".")[2] in text and f"`{key}`" in documented, key
