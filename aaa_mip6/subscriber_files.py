"""hostapd hlr_auc_gw's subscriber file formats, read by the MN (its (U)SIM) and the AuC
(every subscriber) alike: Milenage lines ``IMSI Ki OPc AMF SQN [RES_len]`` and triplet lines
``IMSI:Kc:SRES:RAND``; ``#`` starts a comment. Errors name the flag, the file and the line,
never a key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

_IMSI = re.compile(r"[0-9]{6,15}\Z")


@dataclass(frozen=True)
class MilenageLine:
    imsi: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    amf: bytes
    sqn: bytes
    res_len: int = 8


@dataclass(frozen=True)
class TripletLine:
    imsi: str
    kc: bytes = field(repr=False)
    sres: bytes = field(repr=False)
    rand: bytes


def read_lines(path: Path, flag: str) -> Iterator[tuple[str, str]]:
    """(where, line) for each line that is not blank or a comment; ``where`` names the flag,
    file and line for messages."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{flag} {path}: cannot read ({getattr(error, 'strerror', error)})"
                          ) from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield f"{flag} {path} line {number}", line


def _hex(text: str, size: int, what: str, where: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{where}: {what} is not hexadecimal") from None
    if len(value) != size:
        raise ConfigError(f"{where}: {what} must be {2 * size} hex digits")
    return value


def _imsi(text: str, where: str) -> str:
    if not _IMSI.match(text):
        raise ConfigError(f"{where}: IMSI {text[:20]!r} is not 6-15 digits")
    return text


def parse_milenage(line: str, where: str) -> MilenageLine:
    fields = line.split()
    if len(fields) not in (5, 6):
        raise ConfigError(f"{where}: expected 'IMSI Ki OPc AMF SQN [RES_len]', "
                          f"got {len(fields)} fields")
    res_len = 8
    if len(fields) == 6:
        if not fields[5].isdigit() or not 4 <= int(fields[5]) <= 8:
            raise ConfigError(f"{where}: RES_len must be 4..8")
        res_len = int(fields[5])
    return MilenageLine(_imsi(fields[0], where), _hex(fields[1], 16, "Ki", where),
                        _hex(fields[2], 16, "OPc", where), _hex(fields[3], 2, "AMF", where),
                        _hex(fields[4], 6, "SQN", where), res_len)


def parse_triplet(line: str, where: str) -> TripletLine:
    fields = line.split(":")
    if len(fields) != 4:
        raise ConfigError(f"{where}: expected IMSI:Kc:SRES:RAND")
    return TripletLine(_imsi(fields[0], where), _hex(fields[1], 8, "Kc", where),
                       _hex(fields[2], 4, "SRES", where), _hex(fields[3], 16, "RAND", where))
