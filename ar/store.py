"""The AR's LBSAs on disk, so a restart keeps every MN's temporary home agent service.

One file (``ar.state``), mode 0600 because every record holds a binding management key:
one :meth:`aaa_mip6.lke.lbsa.Lbsa.encode` record a line, keyed by care-of address.
Each change rewrites it whole (a temporary file, fsync, rename), so a crash leaves the
old file or the new one, never half of one; the ArCore bounds how many there are
(``ar.max_lbsas``) and drops expired ones when they are restored.
"""

from __future__ import annotations

import logging
import os
from ipaddress import IPv6Address
from pathlib import Path

from aaa_mip6.errors import ConfigError, LkeError
from aaa_mip6.lke.lbsa import Lbsa

log = logging.getLogger("mip6.ar.store")


class LbsaFile:
    """The saved LBSAs of one AR, by care-of address."""

    def __init__(self, path: Path):
        self.path = path
        self.by_care_of: dict[IPv6Address, Lbsa] = {}

    def load(self) -> list[Lbsa]:
        """The saved LBSAs (none if the file does not exist yet); a record that does not
        read is skipped with a warning, the others are kept. ConfigError if the file
        cannot be read or its directory is missing."""
        if not self.path.parent.is_dir():
            raise ConfigError(f"ar.state (--state) {self.path}: directory {self.path.parent} "
                              f"does not exist")
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ConfigError(f"ar.state (--state) {self.path}: cannot read "
                              f"({error.strerror or error})") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                lbsa = Lbsa.decode(line)
            except LkeError as error:
                log.warning("%s line %d skipped: %s", self.path, number, error)
                continue
            self.by_care_of[lbsa.care_of] = lbsa
        return list(self.by_care_of.values())

    def put(self, lbsa: Lbsa) -> None:
        self.by_care_of[lbsa.care_of] = lbsa
        self._write()

    def remove(self, care_of: IPv6Address) -> None:
        if self.by_care_of.pop(care_of, None) is not None:
            self._write()

    def _write(self) -> None:
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            for lbsa in self.by_care_of.values():
                handle.write(lbsa.encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
