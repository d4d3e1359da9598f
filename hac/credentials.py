"""The HAC's pre-shared keys: a file of ``NAI hex-key`` lines, reloadable while running.

Format: one MN per line, its NAI (RFC 4282, as in ``mn-id``) and its PSK in hex,
separated by spaces or tabs; a word starting with ``#`` starts a comment (a whole
line, or after the key; a ``#`` inside an NAI is part of the NAI);
blank lines are ignored. An NAI may appear once. Errors name the file and the line,
never the key. A reload that fails keeps the table already in use, so a typo in the
file cannot lock every MN out.
"""

from __future__ import annotations

import binascii
import logging
import string
import types
from collections.abc import Mapping
from pathlib import Path

from aaa_mip6 import tvheaders as tv
from aaa_mip6.errors import ConfigError, InvalidInput
from aaa_mip6.program import warn_if_exposed

log = logging.getLogger(__name__)

MIN_RECOMMENDED_OCTETS = 16  # shorter keys are accepted with a warning


def _without_comment(fields: list[str]) -> list[str]:
    """Drop a comment: the field that starts with ``#`` and all after it (an NAI may hold ``#``)."""
    for index, item in enumerate(fields):
        if item.startswith("#"):
            return fields[:index]
    return fields


def parse_psk_text(text: str, source: str) -> Mapping[str, bytes]:
    """The table of ``text``; ConfigError naming ``source`` and the line for a bad line."""
    table: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = _without_comment(line.split())
        if not fields:
            continue
        where = f"{source} line {number}"
        if len(fields) != 2:
            raise ConfigError(f"{where}: expected 'NAI hex-key', found {len(fields)} fields")
        nai, hex_key = fields
        try:
            tv.decode_value(tv.MN_ID, nai.encode())
        except InvalidInput as error:
            raise ConfigError(f"{where}: the NAI is not valid ({error})") from None
        if nai in table:
            raise ConfigError(f"{where}: {nai} is listed twice")
        if not all(digit in string.hexdigits for digit in hex_key):
            raise ConfigError(f"{where}: the key of {nai} is not hex (digits 0-9, a-f)")
        if len(hex_key) % 2:
            raise ConfigError(f"{where}: the key of {nai} has an odd number of hex digits "
                              "(two per octet)")
        key = binascii.unhexlify(hex_key)
        if not key:
            raise ConfigError(f"{where}: the key of {nai} is empty")
        if len(key) < MIN_RECOMMENDED_OCTETS:
            log.warning("%s: the key of %s has %d octets; %d or more are recommended",
                        where, nai, len(key), MIN_RECOMMENDED_OCTETS)
        table[nai] = key
    return types.MappingProxyType(table)


def load_psk_file(path: Path) -> Mapping[str, bytes]:
    """Read and parse a PSK file; warn (once) if anyone but its owner may read it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"PSK file {path}: cannot read ({error.strerror or error})") from None
    warn_if_exposed(path, "PSK file", log)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"PSK file {path}: not UTF-8 (octet {error.start})") from None
    return parse_psk_text(text, f"PSK file {path}")


class Credentials:
    """The PSK table in use, loaded from ``path``; :meth:`reload` swaps it atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._table = load_psk_file(self.path)

    def __repr__(self) -> str:
        return f"<Credentials {self.path} with {len(self._table)} identities>"

    def __len__(self) -> int:
        return len(self._table)

    def lookup(self, mn_id: str) -> bytes | None:
        """The PSK of ``mn_id``, or None for an unknown identity."""
        return self._table.get(mn_id)

    def reload(self) -> bool:
        """Re-read the file; on any error keep the current table, log why and return False."""
        try:
            table = load_psk_file(self.path)
        except ConfigError as error:
            log.error("PSK reload failed, keeping the %d identities in use: %s",
                      len(self._table), error)
            return False
        self._table = table
        log.info("PSK file %s reloaded: %d identities", self.path, len(table))
        return True
