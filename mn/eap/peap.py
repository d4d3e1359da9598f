"""PEAPv0 (draft-kamath-pppext-peapv0, [MS-PEAP]) with EAP-MSCHAPv2 inside.

Inside the tunnel PEAPv0 sends inner EAP packets without their 4-octet header
(just Type and Type-Data, the identifier being the outer one), except the
Extensions packet (type 33) that carries the Result TLV, which is whole. The
inner MSCHAPv2 is :class:`mn.eap.mschapv2.MsChapV2`, unchanged. No
cryptobinding: FreeRADIUS does not send a Crypto-Binding TLV, and the MSK is
the TLS one (RFC 5216 §2.3 label; RFC 9427 for TLS 1.3).
"""

from __future__ import annotations

import struct

from aaa_mip6.eap import Code, EapError, EapPacket, Type, decode
from aaa_mip6.errors import ConfigError

from . import EapCredentials, register
from .mschapv2 import MsChapV2
from .tlsbase import TlsMethodBase

MSK_LABEL = b"client EAP encryption"
EXTENSIONS = 33  # EAP type of the packet that carries TLVs
RESULT_TLV = 3
RESULT_SUCCESS = 1
RESULT_FAILURE = 2

_TLV_MANDATORY = 0x8000
_TLV_TYPE_MASK = 0x3FFF
_TLV_HEADER = struct.Struct("!HH")
_RESULT = struct.Struct("!HHH")


def decode_tlvs(data: bytes) -> list[tuple[int, bool, bytes]]:
    """(type, mandatory, value) for each TLV; raise EapError when one overruns the data."""
    tlvs, offset = [], 0
    while offset < len(data):
        if len(data) - offset < _TLV_HEADER.size:
            raise EapError(f"PEAP TLV header truncated at offset {offset}")
        kind, length = _TLV_HEADER.unpack_from(data, offset)
        start = offset + _TLV_HEADER.size
        if start + length > len(data):
            raise EapError(f"PEAP TLV at offset {offset} claims {length} octets")
        tlvs.append((kind & _TLV_TYPE_MASK, bool(kind & _TLV_MANDATORY),
                     bytes(data[start:start + length])))
        offset = start + length
    return tlvs


def result_tlv(status: int) -> bytes:
    return _RESULT.pack(_TLV_MANDATORY | RESULT_TLV, 2, status)


def _is_extensions_request(data: bytes) -> bool:
    """A whole EAP-Request/Extensions packet, the one kind PEAPv0 sends with its header."""
    return (len(data) >= 5 and data[0] == Code.REQUEST and data[4] == EXTENSIONS
            and int.from_bytes(data[2:4], "big") == len(data))


@register
class EapPeap(TlsMethodBase):
    """The peer side of PEAPv0/EAP-MSCHAPv2; needs identity, password and ca_cert."""

    name = "peap"
    type = Type.PEAP

    def __init__(self, credentials: EapCredentials):
        if credentials.password is None:
            raise ConfigError("PEAP/EAP-MSCHAPv2 needs a password")
        super().__init__(credentials)
        self._inner = MsChapV2(credentials)

    def _established(self, identifier: int) -> bytes:
        self.msk = self.engine.msk(Type.PEAP, MSK_LABEL)
        return b""

    def _tunnel_data(self, identifier: int, data: bytes) -> bytes:
        if _is_extensions_request(data):
            return self._extensions(decode(data))
        if not data:
            raise EapError("empty inner PEAP packet")
        inner_type, type_data = data[0], data[1:]
        if inner_type == Type.IDENTITY:
            return bytes([Type.IDENTITY]) + self.credentials.identity.encode("utf-8")
        if inner_type == self._inner.type:
            return bytes([self._inner.type]) + self._inner.process(identifier, type_data)
        return bytes([Type.NAK, self._inner.type])

    def _extensions(self, request: EapPacket) -> bytes:
        """Answer the Result TLV; success counts only after the inner method succeeded."""
        results = []
        for kind, mandatory, value in decode_tlvs(request.data):
            if kind == RESULT_TLV and len(value) == 2:
                results.append(int.from_bytes(value, "big"))
            elif mandatory:
                raise EapError(f"PEAP mandatory TLV {kind} is not supported")
        if len(results) != 1 or results[0] not in (RESULT_SUCCESS, RESULT_FAILURE):
            raise EapError("PEAP Extensions without exactly one valid Result TLV")
        if results[0] == RESULT_SUCCESS and self._inner.done:
            self._finish()
            status = RESULT_SUCCESS
        else:
            self.failure = "PEAP: the server reported failure" if results[0] == RESULT_FAILURE \
                else "PEAP: Result success before the inner MSCHAPv2 succeeded"
            status = RESULT_FAILURE
        return EapPacket(Code.RESPONSE, request.identifier, EXTENSIONS, result_tlv(status)).encode()
