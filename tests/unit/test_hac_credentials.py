"""hac.credentials: the PSK file, its errors (never quoting a key) and safe reloads."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.errors import ConfigError
from hac.credentials import Credentials, load_psk_file, parse_psk_text

KEY_A = "00112233445566778899aabbccddeeff"
KEY_B = "ffeeddccbbaa99887766554433221100"
GOOD = f"""# MNs of example.org
alice@example.org {KEY_A}

\tbob@example.org\t{KEY_B.upper()}   # bob's laptop
a#b@example.org {KEY_A}
"""


def write(path, text: str, mode: int = 0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_parses_entries_comments_blank_lines_and_case():
    table = parse_psk_text(GOOD, "psk")
    assert dict(table) == {
        "alice@example.org": bytes.fromhex(KEY_A),
        "bob@example.org": bytes.fromhex(KEY_B),
        "a#b@example.org": bytes.fromhex(KEY_A),
    }


SECRET = "deadbeefcafebabe0123456789abcdef"


@pytest.mark.parametrize("line, complaint", [
    ("alice@example.org", "expected 'NAI hex-key', found 1 fields"),
    (f"alice@example.org {SECRET} extra", "found 3 fields"),
    (f"not an@nai@example..org {SECRET}", "found 3 fields"),
    (f"alice@example..org {SECRET}", "the NAI is not valid"),
    (f"alice@example.org {SECRET}z", "the key of alice@example.org is not hex (digits 0-9, a-f)"),
    ("alice@example.org zz", "the key of alice@example.org is not hex"),
    (f"alice@example.org {SECRET[:-1]}", "has an odd number of hex digits (two per octet)"),
])
def test_errors_name_file_and_line_never_the_key(line, complaint):
    with pytest.raises(ConfigError) as caught:
        parse_psk_text(f"# header\n\n{line}\n", "PSK file /etc/psk")
    message = str(caught.value)
    assert message.startswith("PSK file /etc/psk line 3: ")
    assert complaint in message
    assert SECRET[:8] not in message


def test_duplicate_identity_is_an_error_naming_the_second_line():
    with pytest.raises(ConfigError, match="line 2: alice@example.org is listed twice"):
        parse_psk_text(f"alice@example.org {KEY_A}\nalice@example.org {KEY_B}\n", "f")


def test_short_key_is_accepted_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, "hac.credentials"):
        table = parse_psk_text("alice@example.org 0011\n", "f")
    assert table["alice@example.org"] == b"\x00\x11"
    assert "f line 1" in caplog.text and "0011" not in caplog.text


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_config_error(text):
    try:
        table = parse_psk_text(text, "f")
    except ConfigError:
        return
    assert all(isinstance(key, bytes) and key for key in table.values())


def test_file_warns_when_group_or_world_readable(tmp_path, caplog):
    path = write(tmp_path / "psk", GOOD, 0o644)
    with caplog.at_level(logging.WARNING, "hac.credentials"):
        load_psk_file(path)
    assert "readable by group or others (mode 0644)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "hac.credentials"):
        load_psk_file(path)  # a reload: the same file warns once
    assert "readable" not in caplog.text
    private = write(tmp_path / "psk-private", GOOD, 0o600)
    with caplog.at_level(logging.WARNING, "hac.credentials"):
        load_psk_file(private)
    assert "readable" not in caplog.text


def test_unreadable_file_and_non_utf8_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=f"PSK file {tmp_path}/missing: cannot read"):
        load_psk_file(tmp_path / "missing")
    (tmp_path / "latin").write_bytes(b"\xe9t\xe9@example.org 00\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_psk_file(tmp_path / "latin")


def test_reload_swaps_the_table_or_keeps_the_old_one(tmp_path, caplog):
    path = write(tmp_path / "psk", f"alice@example.org {KEY_A}\n")
    credentials = Credentials(path)
    assert credentials.lookup("alice@example.org") == bytes.fromhex(KEY_A)
    assert credentials.lookup("bob@example.org") is None

    write(path, f"bob@example.org {KEY_B}\n")
    assert credentials.reload() is True
    assert credentials.lookup("alice@example.org") is None
    assert credentials.lookup("bob@example.org") == bytes.fromhex(KEY_B)

    write(path, f"bob@example.org {SECRET}\ncarol@example.org xyz\n")
    with caplog.at_level(logging.ERROR, "hac.credentials"):
        assert credentials.reload() is False
    assert credentials.lookup("bob@example.org") == bytes.fromhex(KEY_B)
    assert "line 2" in caplog.text and "keeping the 1 identities" in caplog.text
    assert SECRET not in caplog.text and KEY_B not in repr(credentials)

    path.unlink()
    assert credentials.reload() is False
    assert len(credentials) == 1
