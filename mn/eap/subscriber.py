"""The subscriber behind EAP-SIM, EAP-AKA and EAP-AKA': its (U)SIM and what persists between
bootstraps.

A USIM is one line of hostapd's hlr_auc_gw Milenage format (``IMSI Ki OPc AMF SQN``); a
SIM for servers with fixed triplets is hlr_auc_gw's triplet format (``IMSI:Kc:SRES:RAND``,
a line each). The state file (JSON, 0600, replaced atomically) keeps what a later bootstrap
needs: the highest SQN the USIM accepted, and per method the pseudonym, the
re-authentication identity, its counter and the keys fast re-authentication reuses.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aaa_mip6.errors import ConfigError
from aaa_mip6.milenage import Milenage
from aaa_mip6.subscriber_files import parse_milenage, parse_triplet, read_lines


@dataclass
class Subscriber:
    """One (U)SIM: the IMSI, Milenage if it has K/OPc, fixed GSM triplets if it has them."""

    imsi: str
    milenage: Milenage | None = None
    amf: bytes = b"\x00\x00"
    sqn: bytes = bytes(6)
    triplets: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)

    def gsm(self, rand: bytes) -> tuple[bytes, bytes] | None:
        """(SRES, Kc) for a RAND: the fixed triplet, else GSM-Milenage; None if neither."""
        if rand in self.triplets:
            return self.triplets[rand]
        return self.milenage.gsm_triplet(rand) if self.milenage else None

    def permanent_identity(self, prefix: str, realm: str | None) -> str:
        """``<prefix><IMSI>[@realm]`` (RFC 4186 §4.2.1.6: 1 SIM, 0 AKA, 6 AKA')."""
        return f"{prefix}{self.imsi}" + (f"@{realm}" if realm else "")


def load_usim(path: Path) -> Subscriber:
    """The first subscriber line of an hlr_auc_gw Milenage file: IMSI Ki OPc AMF SQN."""
    for where, text in read_lines(path, "--usim"):
        line = parse_milenage(text, where)
        return Subscriber(line.imsi, Milenage(line.k, line.opc), line.amf, line.sqn)
    raise ConfigError(f"--usim {path}: no 'IMSI Ki OPc AMF SQN' line")


def load_triplets(path: Path) -> Subscriber:
    """A SIM with fixed triplets: hlr_auc_gw lines IMSI:Kc:SRES:RAND, all of one IMSI."""
    imsi, triplets = None, {}
    for where, text in read_lines(path, "--sim-triplets"):
        line = parse_triplet(text, where)
        if imsi not in (None, line.imsi):
            raise ConfigError(f"{where}: another IMSI ({line.imsi}); one subscriber per file")
        imsi = line.imsi
        triplets[line.rand] = (line.sres, line.kc)
    if imsi is None:
        raise ConfigError(f"--sim-triplets {path}: no triplet lines")
    return Subscriber(imsi, triplets=triplets)


class PeerState:
    """The state file: ``{"sqn": hex, "methods": {name: {...}}}``; every change is written
    at once (an SQN once accepted must never be accepted again, even after a crash)."""

    def __init__(self, path: Path | None, initial_sqn: bytes):
        self.path = path
        self.data = {"sqn": initial_sqn.hex(), "methods": {}}
        if path is not None and Path(path).exists():
            try:
                loaded = json.loads(Path(path).read_text())
                bytes.fromhex(loaded["sqn"])
                self.data = {"sqn": loaded["sqn"], "methods": dict(loaded.get("methods", {}))}
            except (OSError, ValueError, KeyError, TypeError):
                raise ConfigError(f"--eap-state {path}: not a state file this program wrote; "
                                  "move it away to start afresh") from None

    @property
    def sqn(self) -> bytes:
        return bytes.fromhex(self.data["sqn"])

    def method(self, name: str) -> dict:
        return self.data["methods"].setdefault(name, {})

    def save(self) -> None:
        if self.path is None:
            return
        directory = Path(self.path).parent
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".eap-state-")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(self.data, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def accept_sqn(self, sqn: bytes) -> None:
        self.data["sqn"] = sqn.hex()
        self.save()
