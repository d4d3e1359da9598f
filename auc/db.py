"""The AuC's files: hlr_auc_gw's Milenage and triplet files in, the SQN state file durable.

Milenage file: ``IMSI Ki OPc AMF SQN [RES_len]`` a line; triplet file: ``IMSI:Kc:SRES:RAND``
a line (both as hlr_auc_gw reads them; ``#`` starts a comment). The state file (JSON, 0600)
holds each subscriber's last issued SQN; it is replaced atomically and fsynced before a
vector leaves, so a crash never issues an SQN twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from aaa_mip6.errors import ConfigError
from aaa_mip6.milenage import Milenage
from aaa_mip6.subscriber_files import parse_milenage, parse_triplet, read_lines

from .core import MilenageSubscriber

def load_milenage(path: Path) -> dict[str, MilenageSubscriber]:
    subscribers = {}
    for where, text in read_lines(path, "--milenage"):
        line = parse_milenage(text, where)
        subscribers[line.imsi] = MilenageSubscriber(
            Milenage(line.k, line.opc), line.amf, int.from_bytes(line.sqn, "big"), line.res_len)
    return subscribers


def load_triplets(path: Path) -> dict[str, list[tuple[bytes, bytes, bytes]]]:
    triplets: dict[str, list] = {}
    for where, text in read_lines(path, "--triplets"):
        line = parse_triplet(text, where)
        triplets.setdefault(line.imsi, []).append((line.kc, line.sres, line.rand))
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
