"""The five MN-HA ciphersuites of RFC 6618 §5.6.2 and their algorithms.

A suite pairs an integrity algorithm (HMAC-SHA1-96, RFC 2404, or AES-XCBC-MAC-96,
RFC 3566) with a confidentiality algorithm (NULL, 3DES-CBC or AES-128-CBC, RFC 3602).
Each algorithm is *keyed* once per SA direction, so the per-packet work is only the
cipher pass and one MAC over state prepared in advance; the packet transform relies
on that to stay close to the cost of the bare `cryptography` calls.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import ConfigError

ICV_LENGTH = 12  # both MACs are truncated to 96 bits


class HmacSha1_96:
    """HMAC-SHA1 truncated to its first 96 bits (RFC 2404)."""

    name = "HMAC-SHA1-96"
    key_length = 20

    def keyed(self, key: bytes):
        """Return ``icv(data) -> 12 octets``; the keyed inner/outer state is computed once.

        Any key length works (RFC 2104), which the RFC 2202 vectors need; the suite
        enforces the 20 octets of RFC 2404.
        """
        prepared = hmac.HMAC(key, hashes.SHA1())

        def icv(data) -> bytes:
            mac = prepared.copy()
            mac.update(data)
            return mac.finalize()[:ICV_LENGTH]

        return icv


class AesXcbcMac96:
    """AES-XCBC-MAC-96 (RFC 3566); `cryptography` has CMAC but not XCBC.

    K1, K2 and K3 are AES-ECB encryptions of the constant blocks 0x01.., 0x02..,
    0x03.. under the key. The MAC is the CBC-MAC under K1 (an AES-CBC pass with a
    zero IV, whose last output block is the tag) of the message whose last block
    has been XORed with K2 (complete block) or padded 10* and XORed with K3.
    """

    name = "AES-XCBC-MAC-96"
    key_length = 16
    _BLOCK = 16

    def keyed(self, key: bytes):
        """Return ``icv(data) -> 12 octets`` with K1, K2, K3 derived once.

        The CBC-MAC runs through one long-lived AES-CBC context under K1 (a new
        ``Cipher`` per MAC costs several times the AES work on a 1400-octet packet). The
        context is chained from the previous MAC's last output block, which is kept:
        XORing it into the first block of the next message cancels it, so every MAC is
        exactly the zero-IV CBC-MAC of RFC 3566. Stateful: one thread at a time, like
        the SA's CBC contexts.
        """
        derive = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        k1, k2, k3 = (derive.update(bytes([n]) * self._BLOCK) for n in (1, 2, 3))
        k2_int = int.from_bytes(k2, "big")
        k3_int = int.from_bytes(k3, "big")
        block = self._BLOCK
        chain = Cipher(algorithms.AES(k1), modes.CBC(bytes(block))).encryptor().update
        previous = 0  # the context's chaining block: the IV, then each MAC's last output

        def icv(data) -> bytes:
            nonlocal previous
            data = memoryview(data)
            size = len(data)
            if size and size % block == 0:
                split = size - block
                last = int.from_bytes(data[split:], "big") ^ k2_int
            else:
                split = size - size % block
                padded = bytes(data[split:]) + b"\x80" + bytes(block - 1 - size % block)
                last = int.from_bytes(padded, "big") ^ k3_int
            if split:
                first = int.from_bytes(data[:block], "big") ^ previous
                chain(first.to_bytes(block, "big"))
                chain(data[block:split])
            else:
                last ^= previous
            tag = chain(last.to_bytes(block, "big"))
            previous = int.from_bytes(tag, "big")
            return tag[:ICV_LENGTH]

        return icv


class NullCipher:
    """NULL encryption (RFC 2410): no IV, 4-octet alignment (RFC 4303 §2.4)."""

    name = "NULL"
    key_length = 0
    block_size = 4
    iv_length = 0

    def keyed(self, key: bytes) -> NullCipher:
        return self

    def encrypt(self, iv: bytes, data) -> bytes:
        return bytes(data)

    decrypt = encrypt


class CbcCipher:
    """A block cipher in CBC mode, the IV carried first in the payload (RFC 3602 §3)."""

    def __init__(self, name: str, algorithm, key_length: int, block_size: int):
        self.name = name
        self.key_length = key_length
        self.block_size = block_size
        self.iv_length = block_size
        self.algorithm = algorithm  # the `cryptography` block cipher class, keyed by calling it

    def keyed(self, key: bytes) -> _KeyedCbc:
        return _KeyedCbc(self.algorithm(key))


class _KeyedCbc:
    """CBC under one key; the algorithm object (key schedule input) is built once."""

    __slots__ = ("_algorithm",)

    def __init__(self, algorithm):
        self._algorithm = algorithm

    def __repr__(self) -> str:
        return f"<keyed {self._algorithm.name}-CBC>"

    def encrypt(self, iv: bytes, data) -> bytes:
        return Cipher(self._algorithm, modes.CBC(iv)).encryptor().update(data)

    def decrypt(self, iv: bytes, data) -> bytes:
        return Cipher(self._algorithm, modes.CBC(iv)).decryptor().update(data)


HMAC_SHA1_96 = HmacSha1_96()
AES_XCBC_MAC_96 = AesXcbcMac96()
NULL = NullCipher()
TRIPLE_DES_CBC = CbcCipher("3DES-CBC", TripleDES, key_length=24, block_size=8)
AES_128_CBC = CbcCipher("AES-128-CBC", algorithms.AES128, key_length=16, block_size=16)


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One row of RFC 6618 §5.6.2: a name, its 2-octet code and the two algorithms."""

    name: str
    code: bytes
    integrity: HmacSha1_96 | AesXcbcMac96 = field(repr=False)
    confidentiality: NullCipher | CbcCipher = field(repr=False)

    def keyed(self, ikey: bytes, ekey: bytes):
        """``(icv, cipher)`` for one SA direction; key sizes are checked against the suite."""
        for kind, key, wanted in (
            ("integrity", ikey, self.ikey_length),
            ("encryption", ekey, self.ekey_length),
        ):
            if len(key) != wanted:
                raise ConfigError(f"{self.name} needs a {wanted}-octet {kind} key, got {len(key)}")
        return self.integrity.keyed(ikey), self.confidentiality.keyed(ekey)

    @property
    def ikey_length(self) -> int:
        return self.integrity.key_length

    @property
    def icv_length(self) -> int:
        return ICV_LENGTH

    @property
    def ekey_length(self) -> int:
        return self.confidentiality.key_length

    @property
    def block_size(self) -> int:
        """Alignment of the encrypted part: the cipher block, or 4 octets for NULL."""
        return self.confidentiality.block_size

    @property
    def iv_length(self) -> int:
        return self.confidentiality.iv_length


_ALL = (
    CipherSuite("NULL_SHA", b"\x00\x02", HMAC_SHA1_96, NULL),
    CipherSuite("NULL_SHA256", b"\x00\x3b", AES_XCBC_MAC_96, NULL),
    CipherSuite("3DES_EDE_CBC_SHA", b"\x00\x0a", HMAC_SHA1_96, TRIPLE_DES_CBC),
    CipherSuite("AES_128_CBC_SHA", b"\x00\x2f", HMAC_SHA1_96, AES_128_CBC),
    CipherSuite("AES_128_CBC_SHA256", b"\x00\x3c", AES_XCBC_MAC_96, AES_128_CBC),
)

SUITES = types.MappingProxyType({suite.name: suite for suite in _ALL})
_BY_CODE = types.MappingProxyType({suite.code: suite for suite in _ALL})


def suite_by_code(code: bytes) -> CipherSuite | None:
    """The suite with this 2-octet code, or None for a code this project does not know."""
    return _BY_CODE.get(bytes(code))


@dataclass(frozen=True, slots=True)
class SaKeys:
    """The four keys of one SA, named as in :class:`aaa_mip6.sa.SecurityAssociation`."""

    mn_to_ha_ikey: bytes = field(repr=False)
    ha_to_mn_ikey: bytes = field(repr=False)
    mn_to_ha_ekey: bytes = field(repr=False)
    ha_to_mn_ekey: bytes = field(repr=False)


def new_keys(suite: CipherSuite) -> SaKeys:
    """Fresh keys from the OS CSPRNG, sized to the suite (empty encryption keys for NULL)."""
    return SaKeys(
        mn_to_ha_ikey=os.urandom(suite.ikey_length),
        ha_to_mn_ikey=os.urandom(suite.ikey_length),
        mn_to_ha_ekey=os.urandom(suite.ekey_length),
        ha_to_mn_ekey=os.urandom(suite.ekey_length),
    )
