"""The Local Binding Security Association (draft-liu-mobileip-lke-01 §1.1, §2.1).

An LBSA is what an MN and its access router share after a Local Key Exchange: the MN's
care-of address on the AR's link (the key of the association), the AR's addresses, the
16-octet binding management key Kbm and an end of life. The AR also keeps the last
sequence numbers it accepted, so a replayed Key Exchange Request or Binding Update is
refused after a restart too; :meth:`Lbsa.encode` / :meth:`Lbsa.decode` are the record
the ``mip6-ar`` shell stores (a 0600 file: Kbm is a secret).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from ipaddress import IPv6Address

from ..errors import LkeError

KBM_OCTETS = 16  # draft §2.1: "a 16-octet secret key Kbm"


@dataclass(frozen=True, slots=True)
class Lbsa:
    """One LBSA; ``expires`` is on the core's clock (POSIX seconds)."""

    care_of: IPv6Address
    ar_address: IPv6Address
    ar_link_local: IPv6Address
    mn_link_local: IPv6Address
    kbm: bytes = field(repr=False)
    expires: float
    ke_sequence: int
    bu_sequence: int | None = None
    """The last Binding Update sequence number the AR accepted under this LBSA."""

    def __post_init__(self):
        if len(self.kbm) != KBM_OCTETS:
            raise ValueError(f"Kbm must be {KBM_OCTETS} octets")

    def with_bu_sequence(self, sequence: int) -> Lbsa:
        return replace(self, bu_sequence=sequence)

    def encode(self) -> bytes:
        """The record as one JSON line (Kbm in hex: keep the file 0600)."""
        return json.dumps({
            "care_of": str(self.care_of), "ar_address": str(self.ar_address),
            "ar_link_local": str(self.ar_link_local), "mn_link_local": str(self.mn_link_local),
            "kbm": self.kbm.hex(), "expires": self.expires, "ke_sequence": self.ke_sequence,
            "bu_sequence": self.bu_sequence,
        }, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Lbsa:
        """A record written by :meth:`encode`; :class:`LkeError` if it is not one."""
        try:
            record = json.loads(data)
            bu_sequence = record["bu_sequence"]
            return cls(
                _address(record["care_of"]), _address(record["ar_address"]),
                _address(record["ar_link_local"]), _address(record["mn_link_local"]),
                bytes.fromhex(record["kbm"]), _time(record["expires"]),
                _sequence(record["ke_sequence"]),
                None if bu_sequence is None else _sequence(bu_sequence),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LkeError(f"not an LBSA record: {type(exc).__name__}") from None


def _address(value: object) -> IPv6Address:
    if not isinstance(value, str):
        raise TypeError("an address must be text")
    return IPv6Address(value)


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError("expires must be a number")
    return float(value)


def _sequence(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ValueError("sequence out of range")
    return value
