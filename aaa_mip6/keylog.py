"""Key logs for reading captures in Wireshark: TLS secrets and MN-HA SA keys.

Both files hold secrets: they are created 0600 and only appended to, one line per
secret, flushed at once so a capture read while the MN still runs can use them.

- The TLS key log is the NSS ``SSLKEYLOGFILE`` format OpenSSL produces (Wireshark:
  ``tls.keylog_file``), so the RFC 6618 container inside the MN-HAC TLS shows in clear.
- The SA key log is Wireshark's ``esp_sa`` table (the ESP dissector's "ESP SAs"): an
  RFC 6618 protected packet is laid out as ESP (RFC 6618 §6), its first 32-bit word
  (PType and SPI) taking the place of the ESP SPI, so Wireshark's own ESP code verifies
  the HMAC-SHA1-96 ICV, decrypts, and hands the Mobility Header on to its mip6 dissector.
  Both directions of an SA share one SPI: the records tell them apart by the HA's
  address (destination of MN->HA packets, source of HA->MN ones). Wireshark has no
  AES-XCBC-MAC-96: the *_SHA256 suites' records name "ANY 96 bit authentication [no
  checking]" (the ESP code decrypts and skips the ICV) with the real 16-octet key, which
  etc/wireshark/mip6.lua reads from the same file to check the ICV itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from .sa import HomeAgent, SecurityAssociation
from .suites import SUITES
from .transform import PROTECTED

# Wireshark's names (epan/dissectors/packet-ipsec.c) for each suite's algorithms.
_ENCRYPTION = {"NULL": "NULL", "3DES-CBC": "TripleDES-CBC [RFC2451]",
               "AES-128-CBC": "AES-CBC [RFC3602]"}
_INTEGRITY = {"HMAC-SHA1-96": "HMAC-SHA-1-96 [RFC2404]",
              "AES-XCBC-MAC-96": "ANY 96 bit authentication [no checking]"}
_SPI_BITS = 28


def open_keylog(path: Path) -> BinaryIO:
    """``path`` opened for appending, 0600 before any secret lands in it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab", buffering=0)


def tls_keylog_writer(path: Path):
    """A pyOpenSSL ``set_keylog_callback`` callback appending each line to ``path``."""
    handle = open_keylog(path)

    def write(_connection, line: bytes) -> None:
        handle.write(line + b"\n")

    return write


def _quoted(*fields: str) -> str:
    return ",".join(f'"{field}"' for field in fields)


def esp_sa_records(sa: SecurityAssociation, home_agent: HomeAgent) -> list[str]:
    """Wireshark ``esp_sa`` records for ``sa``: per HA address, per protected PType, per
    direction. The suite's name and the MN are in a comment line before them."""
    suite = SUITES[sa.suite]
    encryption = _ENCRYPTION[suite.confidentiality.name]
    integrity = _INTEGRITY[suite.integrity.name]
    lines = [f"# mip6 SPI {sa.spi} {sa.suite} {sa.mn_id}"]
    for family, address in (("IPv6", home_agent.address6), ("IPv4", home_agent.address4)):
        if address is None:
            continue
        for ptype in sorted(PROTECTED):
            spi = f"0x{ptype << _SPI_BITS | sa.spi:08x}"
            for source, destination, ikey, ekey in (
                ("*", str(address), sa.mn_to_ha_ikey, sa.mn_to_ha_ekey),
                (str(address), "*", sa.ha_to_mn_ikey, sa.ha_to_mn_ekey),
            ):
                lines.append(_quoted(family, source, destination, spi, encryption,
                                     f"0x{ekey.hex()}" if ekey else "", integrity,
                                     f"0x{ikey.hex()}"))
    return lines


class SaKeyLog:
    """Appends the ``esp_sa`` records of every SA the MN is given to one file."""

    def __init__(self, path: Path):
        self._handle = open_keylog(path)

    def record(self, sa: SecurityAssociation, home_agent: HomeAgent) -> None:
        self._handle.write("".join(f"{line}\n" for line in esp_sa_records(sa, home_agent))
                           .encode())
