"""The AuC's files: hlr_auc_gw's Milenage and triplet files in, the SQN state file durable.

Milenage file: ``IMSI Ki OPc AMF SQN [RES_len]`` a line; triplet file: ``IMSI:Kc:SRES:RAND``
a line (both as hlr_auc_gw reads them; ``#`` starts a comment). The state file (JSON, 0600)
holds each subscriber's last issued SQN; it is replaced atomically and fsynced before a
vector leaves, so a crash never issues an SQN twice.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from aaa_mip6.errors import ConfigError
from aaa_mip6.milenage import Milenage, MilenageError

from .core import MilenageSubscriber

_IMSI = re.compile(r"[0-9]{6,15}\Z")


def _lines(path: Path, flag: str):
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{flag} {path}: cannot read ({getattr(error, 'strerror', error)})"
                          ) from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield number, line


def _hex(text: str, size: int, what: str, where: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{where}: {what} is not hexadecimal") from None
    if len(value) != size:
        raise ConfigError(f"{where}: {what} must be {2 * size} hex digits")
    return value


def load_milenage(path: Path) -> dict[str, MilenageSubscriber]:
    subscribers = {}
    for number, line in _lines(path, "--milenage"):
        where = f"--milenage {path} line {number}"
        fields = line.split()
        if len(fields) not in (5, 6):
            raise ConfigError(f"{where}: expected 'IMSI Ki OPc AMF SQN [RES_len]'")
        if not _IMSI.match(fields[0]):
            raise ConfigError(f"{where}: IMSI {fields[0]!r} is not 6-15 digits")
        try:
            res_len = int(fields[5]) if len(fields) == 6 else 8
            milenage = Milenage(_hex(fields[1], 16, "Ki", where), _hex(fields[2], 16, "OPc", where))
        except (ValueError, MilenageError) as error:
            raise ConfigError(f"{where}: {error}") from None
        if not 4 <= res_len <= 8:
            raise ConfigError(f"{where}: RES_len must be 4..8")
        subscribers[fields[0]] = MilenageSubscriber(
            milenage, _hex(fields[3], 2, "AMF", where),
            int.from_bytes(_hex(fields[4], 6, "SQN", where), "big"), res_len)
    return subscribers


def load_triplets(path: Path) -> dict[str, list[tuple[bytes, bytes, bytes]]]:
    triplets: dict[str, list] = {}
    for number, line in _lines(path, "--triplets"):
        where = f"--triplets {path} line {number}"
        fields = line.split(":")
        if len(fields) != 4 or not _IMSI.match(fields[0]):
            raise ConfigError(f"{where}: expected IMSI:Kc:SRES:RAND")
        triplets.setdefault(fields[0], []).append(
            (_hex(fields[1], 8, "Kc", where), _hex(fields[2], 4, "SRES", where),
             _hex(fields[3], 16, "RAND", where)))
    return triplets


class SqnState:
    """``{IMSI: last issued SQN}``; :meth:`commit` makes changes durable before a reply."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.sqns: dict[str, int] = {}
        if self.path.exists():
            try:
                self.sqns = {imsi: int(sqn) for imsi, sqn in
                             json.loads(self.path.read_text()).items()}
            except (OSError, ValueError, AttributeError) as error:
                raise ConfigError(f"--state {self.path}: unreadable ({error}); it holds the "
                                  "issued SQNs: repair it, never delete it") from None

    def apply(self, subscribers: dict[str, MilenageSubscriber]) -> None:
        """A restart continues after the last SQN issued, never before."""
        for imsi, subscriber in subscribers.items():
            subscriber.sqn = max(subscriber.sqn, self.sqns.get(imsi, 0))

    def commit(self, changes: dict[str, int]) -> None:
        self.sqns.update(changes)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".auc-state-")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(self.sqns, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a crash too
            finally:
                os.close(directory)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
