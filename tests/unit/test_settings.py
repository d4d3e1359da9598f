"""aaa_mip6.settings: the schema every program's settings use, and the shared parsers."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from aaa_mip6 import settings as parsers
from aaa_mip6.errors import ConfigError
from aaa_mip6.settings import Schema, setting


@pytest.mark.parametrize("parse, value, expected", [
    (parsers.integer(1, 10), "7", 7),
    (parsers.seconds(0.1), 30, 30.0),
    (parsers.seconds(0.1), "2.5", 2.5),
    (parsers.number(0.01, 1e6), 3, 3.0),
    (parsers.host_port, "[2001:db8::1]:5658", ("2001:db8::1", 5658)),
    (parsers.host_port, "192.0.2.1:0", ("192.0.2.1", 0)),
    (lambda text: parsers.host_port(text, 7872), "[::1]", ("::1", 7872)),
    (lambda text: parsers.host_port(text, 7872), "2001:db8::1", ("2001:db8::1", 7872)),
    (parsers.diameter_identity, "hac1.example.org", "hac1.example.org"),
    (parsers.optional_path, "", None),
])
def test_good_values_parse(parse, value, expected):
    assert parse(value) == expected


@pytest.mark.parametrize("parse, value, message", [
    (parsers.integer(1, 10), 11, "must be an integer in 1..10"),
    (parsers.integer(1, 10), True, "must be an integer in 1..10"),
    (parsers.seconds(6.0), 5, "must be a number of seconds in 6..86400"),
    (parsers.seconds(0, 3600), float("nan"), "must be a number of seconds in 0..3600"),
    (parsers.number(0.01, 1e6), "fast", "must be a number in 0.01..1000000"),
    (parsers.positive, 0, "must be a positive number"),
    (parsers.boolean, "yes", "must be true or false"),
    (parsers.log_level, "loud", "must be one of debug, info, warning, error"),
    (parsers.string, "", "must be a non-empty string"),
    (parsers.host_port, "192.0.2.1", "'192.0.2.1' is not ADDRESS:PORT"),
    (parsers.host_port, "host.example:5658", "is not ADDRESS:PORT"),
    (parsers.host_port, "::1:7872", "ambiguous: write [::1]:7872"),
    (lambda text: parsers.host_port(text, 7872), "ha.example", "is not an IP address"),
    (parsers.diameter_identity, "two words", "is not a DiameterIdentity"),
    (parsers.diameter_identity, "under_score.example", "is not a DiameterIdentity"),
])
def test_bad_values_say_what_a_good_one_is(parse, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(value)


@dataclass(frozen=True)
class Example:
    window: int = setting("window", parsers.integer(1, 64), 8, flag="--window")
    level: str = setting("log.level", parsers.log_level, "info")


SCHEMA = Schema(Example, renamed={"replay-window": "window", "log-level": "log.level"})


def test_a_renamed_key_is_read_with_one_warning_per_key_ever(tmp_path):
    schema = Schema(Example, renamed=SCHEMA.renamed)  # a process life of its own
    path = tmp_path / "old.toml"
    path.write_text('replay-window = 16\nlog-level = "debug"\n')
    assert schema.load(path) == Example(16, "debug")
    assert schema.deprecations() == [
        "config key replay-window is deprecated: it is now window",
        "config key log-level is deprecated: it is now log.level"]
    assert schema.load(path) == Example(16, "debug")
    assert schema.deprecations() == []


def test_both_names_of_a_key_are_refused(tmp_path):
    path = tmp_path / "both.toml"
    path.write_text("replay-window = 16\nwindow = 32\n")
    with pytest.raises(ConfigError, match="replay-window and window are the same setting"):
        SCHEMA.read_toml(path)


def test_errors_name_the_key_and_its_flag_and_an_unknown_override_is_a_bug():
    with pytest.raises(ConfigError, match=re.escape("window (--window): must be an integer")):
        SCHEMA.load(None, {"window": "99"})
    with pytest.raises(ValueError, match="no setting windows"):
        SCHEMA.load(None, {"windows": 1})


def test_a_diameter_peer_is_its_identity_and_address():
    assert parsers.diameter_peer("relay.example.org=[2001:db8::6]:3869") == (
        "relay.example.org", "2001:db8::6", 3869)
    assert parsers.diameter_peer("relay.example.org=192.0.2.6") == (
        "relay.example.org", "192.0.2.6", None)
    for text, message in (("relay.example.org", "is not NAME=ADDRESS[:PORT]"),
                          ("r.example.org=::1:3868", "write [::1]:3868"),
                          ("r.example.org=192.0.2.1:0", "port must be 1..65535"),
                          ("r_1.example.org=192.0.2.1", "is not a DiameterIdentity")):
        with pytest.raises(ValueError, match=re.escape(message)):
            parsers.diameter_peer(text)
    with pytest.raises(ValueError, match=re.escape("is not NAME=ADDRESS:PORT")):
        parsers.diameter_peer("relay.example.org=192.0.2.6", port_required=True)
