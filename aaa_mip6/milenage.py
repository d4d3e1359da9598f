"""Milenage (3GPP TS 35.205/35.206) and GSM-Milenage (TS 55.205): the authentication
functions of a USIM and of the AuC that shares its key.

Sans-I/O and stateless: the subscriber key K, OPc, RAND, SQN and AMF go in, the vectors come
out. SQN bookkeeping (freshness on the MN, durable issue on the AuC) is the caller's.

f1/f1* (MAC-A/MAC-S), f2 (RES), f3 (CK), f4 (IK), f5/f5* (AK) follow TS 35.206 §4.1 with
the specification's default constants r1..r5 and c1..c5; c2/c3 of TS 55.205 turn a
Milenage vector into a GSM triplet (SRES, Kc) for EAP-SIM.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = RAND_SIZE = OPC_SIZE = 16
SQN_SIZE = AK_SIZE = 6
AMF_SIZE = 2
MAC_SIZE = RES_SIZE = 8
AUTN_SIZE = 16
AUTS_SIZE = 14
RESYNC_AMF = bytes(AMF_SIZE)  # TS 33.102 §6.3.3: MAC-S is computed with a dummy AMF of zero

# TS 35.206 §4.1: rotations in bits and the constants c1..c5 (only the last octet is set).
_ROTATIONS = (64, 0, 32, 64, 96)
_CONSTANTS = tuple(bytes(15) + bytes([value]) for value in (0, 1, 2, 4, 8))


class MilenageError(ValueError):
    """An input of the wrong size (a bad subscriber record, never a protocol event)."""


def _xor(a: bytes, b: bytes) -> bytes:
    """a xor b, of equal lengths (as integers: five times faster than octet by octet)."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _rotate(block: bytes, bits: int) -> bytes:
    octets = bits // 8
    return block[octets:] + block[:octets]


def _check(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise MilenageError(f"{name} must be {size} octets, not {len(value)}")


class Milenage:
    """One subscriber's functions: K and OPc fixed, the AES key schedule made once."""

    def __init__(self, k: bytes, opc: bytes):
        _check("K", k, KEY_SIZE)
        _check("OPc", opc, OPC_SIZE)
        self.opc = opc
        self._encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()

    @classmethod
    def from_op(cls, k: bytes, op: bytes) -> "Milenage":
        """The subscriber whose operator variant is given as OP (OPc = OP xor E_K(OP))."""
        return cls(k, opc_from_op(k, op))

    def _outputs(self, rand: bytes, sqn_amf: bytes | None) -> list[bytes]:
        """OUT1 (only with SQN||AMF) and OUT2..OUT5 of TS 35.206 §4.1, from two calls to
        AES: TEMP, then every OUTn's block in one ECB call (ECB encrypts each alone)."""
        _check("RAND", rand, RAND_SIZE)
        temp = self._encryptor.update(_xor(rand, self.opc))
        masked = _xor(temp, self.opc)
        blocks = [_xor(_rotate(masked, rotation), constant)
                  for rotation, constant in zip(_ROTATIONS[1:], _CONSTANTS[1:])]
        if sqn_amf is not None:
            in1 = _xor(sqn_amf * 2, self.opc)
            blocks.insert(0, _xor(_xor(temp, _rotate(in1, _ROTATIONS[0])), _CONSTANTS[0]))
        encrypted = self._encryptor.update(b"".join(blocks))
        return [_xor(encrypted[i:i + 16], self.opc) for i in range(0, len(encrypted), 16)]

    @staticmethod
    def _vector(out2: bytes, out3: bytes, out4: bytes, out5: bytes) -> "Vector":
        return Vector(res=out2[8:], ck=out3, ik=out4, ak=out2[:AK_SIZE],
                      ak_resync=out5[:AK_SIZE])

    @staticmethod
    def _sqn_amf(sqn: bytes, amf: bytes) -> bytes:
        _check("SQN", sqn, SQN_SIZE)
        _check("AMF", amf, AMF_SIZE)
        return sqn + amf

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> tuple[bytes, bytes]:
        """(MAC-A, MAC-S): f1 and f1* over SQN and AMF."""
        out1 = self._outputs(rand, self._sqn_amf(sqn, amf))[0]
        return out1[:MAC_SIZE], out1[MAC_SIZE:]

    def f2345(self, rand: bytes) -> "Vector":
        """RES, CK, IK, AK and AK* for one RAND."""
        return self._vector(*self._outputs(rand, None))

    # --- what the AuC and the USIM do with them (TS 33.102 §6.3) -------------------------

    def generate(self, rand: bytes, sqn: bytes, amf: bytes) -> tuple[bytes, "Vector"]:
        """The AuC's authentication vector: AUTN = SQN xor AK || AMF || MAC-A, and the keys."""
        out1, *rest = self._outputs(rand, self._sqn_amf(sqn, amf))
        vector = self._vector(*rest)
        return _xor(sqn, vector.ak) + amf + out1[:MAC_SIZE], vector

    def check_autn(self, rand: bytes, autn: bytes) -> tuple[bytes, "Vector"]:
        """The USIM's check of AUTN: (SQN, keys) when MAC-A verifies; MilenageError if not.

        SQN freshness is not judged here: the caller compares SQN with its own.
        """
        _check("AUTN", autn, AUTN_SIZE)
        vector = self.f2345(rand)
        sqn = _xor(autn[:SQN_SIZE], vector.ak)
        amf = autn[SQN_SIZE:SQN_SIZE + AMF_SIZE]
        mac_a, _ = self.f1(rand, sqn, amf)
        if not hmac.compare_digest(mac_a, autn[SQN_SIZE + AMF_SIZE:]):
            raise MilenageError("AUTN: MAC-A does not verify (wrong K/OPc, or not our network)")
        return sqn, vector

    def auts(self, rand: bytes, sqn_ms: bytes) -> bytes:
        """The USIM's resynchronisation token: SQN_MS xor AK* || MAC-S (AMF zero)."""
        _, mac_s = self.f1(rand, sqn_ms, RESYNC_AMF)
        return _xor(sqn_ms, self.f2345(rand).ak_resync) + mac_s

    def sqn_from_auts(self, rand: bytes, auts: bytes) -> bytes:
        """The AuC's reading of AUTS: SQN_MS when MAC-S verifies; MilenageError if not."""
        _check("AUTS", auts, AUTS_SIZE)
        sqn_ms = _xor(auts[:SQN_SIZE], self.f2345(rand).ak_resync)
        _, mac_s = self.f1(rand, sqn_ms, RESYNC_AMF)
        if not hmac.compare_digest(mac_s, auts[SQN_SIZE:]):
            raise MilenageError("AUTS: MAC-S does not verify")
        return sqn_ms

    def gsm_triplet(self, rand: bytes) -> tuple[bytes, bytes]:
        """(SRES, Kc) by TS 55.205 c2 and c3, for EAP-SIM from a Milenage subscriber."""
        return gsm_from_vector(self.f2345(rand))


@dataclass(frozen=True)
class Vector:
    """The outputs of f2..f5* for one RAND. Keys: never log one."""

    res: bytes
    ck: bytes
    ik: bytes
    ak: bytes
    ak_resync: bytes

    def __repr__(self) -> str:
        return "Vector(<keys hidden>)"


def opc_from_op(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP) (TS 35.206 §4.1)."""
    _check("K", k, KEY_SIZE)
    _check("OP", op, OPC_SIZE)
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    return _xor(encryptor.update(op), op)


def gsm_from_vector(vector: Vector) -> tuple[bytes, bytes]:
    """TS 55.205 c2 (SRES = the XOR of RES's two 32-bit halves) and c3 (Kc = the XOR of
    the 64-bit halves of CK and IK)."""
    sres = _xor(vector.res[:4], vector.res[4:8])
    kc = _xor(_xor(vector.ck[:8], vector.ck[8:]), _xor(vector.ik[:8], vector.ik[8:]))
    return sres, kc
