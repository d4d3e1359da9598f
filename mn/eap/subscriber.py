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
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aaa_mip6.errors import ConfigError
from aaa_mip6.milenage import Milenage, MilenageError

_IMSI = re.compile(r"[0-9]{6,15}\Z")


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


def _hex(text: str, size: int, what: str, where: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{where}: {what} is not hexadecimal") from None
    if len(value) != size:
        raise ConfigError(f"{where}: {what} must be {size} octets ({2 * size} hex digits)")
    return value


def _lines(path: Path, flag: str) -> list[str]:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{flag} {path}: cannot read ({getattr(error, 'strerror', error)})"
                          ) from None
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _imsi(text: str, where: str) -> str:
    if not _IMSI.match(text):
        raise ConfigError(f"{where}: IMSI {text!r} is not 6-15 digits")
    return text


def load_usim(path: Path) -> Subscriber:
    """The first subscriber line of an hlr_auc_gw Milenage file: IMSI Ki OPc AMF SQN."""
    lines = _lines(path, "--usim")
    if not lines:
        raise ConfigError(f"--usim {path}: no 'IMSI Ki OPc AMF SQN' line")
    fields = lines[0].split()
    where = f"--usim {path}"
    if len(fields) < 5:
        raise ConfigError(f"{where}: expected 'IMSI Ki OPc AMF SQN', got {len(fields)} fields")
    imsi = _imsi(fields[0], where)
    k = _hex(fields[1], 16, "Ki", where)
    opc = _hex(fields[2], 16, "OPc", where)
    amf = _hex(fields[3], 2, "AMF", where)
    sqn = _hex(fields[4], 6, "SQN", where)
    try:
        return Subscriber(imsi, Milenage(k, opc), amf, sqn)
    except MilenageError as error:
        raise ConfigError(f"{where}: {error}") from None


def load_triplets(path: Path) -> Subscriber:
    """A SIM with fixed triplets: hlr_auc_gw lines IMSI:Kc:SRES:RAND, all of one IMSI."""
    where = f"--sim-triplets {path}"
    imsi, triplets = None, {}
    for number, line in enumerate(_lines(path, "--sim-triplets"), 1):
        fields = line.split(":")
        if len(fields) != 4:
            raise ConfigError(f"{where} line {number}: expected IMSI:Kc:SRES:RAND")
        if imsi not in (None, fields[0]):
            raise ConfigError(f"{where} line {number}: another IMSI ({fields[0]}); "
                              "one subscriber per file")
        imsi = _imsi(fields[0], where)
        kc = _hex(fields[1], 8, "Kc", f"{where} line {number}")
        sres = _hex(fields[2], 4, "SRES", f"{where} line {number}")
        rand = _hex(fields[3], 16, "RAND", f"{where} line {number}")
        triplets[rand] = (sres, kc)
    if imsi is None:
        raise ConfigError(f"{where}: no triplet lines")
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
