"""EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2-02 with RFC 2759), peer side.

Challenge -> Response; Success-Request (the server's ``S=`` proof, checked) ->
Success-Response and the method is done with its MSK; Failure-Request ->
Failure-Response and the method stays not done, so a later EAP-Success is refused.
"""

from __future__ import annotations

import enum
import os
import struct

from aaa_mip6 import mschap
from aaa_mip6.eap import EapError, Type

from . import EapMethod, register

_HEADER = struct.Struct("!BBH")  # OpCode, MS-CHAPv2-ID, MS-Length
RESPONSE_VALUE_SIZE = 49
AUTHENTICATOR_RESPONSE_LENGTH = 42  # "S=" and 40 hex digits


class OpCode(enum.IntEnum):
    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


@register
class MsChapV2(EapMethod):
    name = "mschapv2"
    type = Type.MSCHAPV2

    def __init__(self, credentials):
        super().__init__(credentials)
        self._sent = None  # (authenticator challenge, peer challenge, NT-Response)
        self.failure_message: str | None = None

    @property
    def username(self) -> bytes:
        return self.credentials.identity.encode("utf-8")

    def process(self, identifier: int, type_data: bytes) -> bytes:
        if len(type_data) < _HEADER.size:
            raise EapError("EAP-MSCHAPv2 request shorter than its 4-octet header")
        opcode, ms_id, ms_length = _HEADER.unpack_from(type_data)
        if ms_length != len(type_data):
            raise EapError(f"EAP-MSCHAPv2 MS-Length {ms_length} != {len(type_data)} octets")
        body = type_data[_HEADER.size:]
        if opcode == OpCode.CHALLENGE:
            return self._challenge(ms_id, body)
        if opcode == OpCode.SUCCESS:
            return self._success(body)
        if opcode == OpCode.FAILURE:
            self.failure_message = body.decode("utf-8", "replace")
            return bytes([OpCode.FAILURE])
        raise EapError(f"EAP-MSCHAPv2 request with OpCode {opcode}")

    def _challenge(self, ms_id: int, body: bytes) -> bytes:
        if self._sent is not None:
            raise EapError("second EAP-MSCHAPv2 challenge", reason="unexpected")
        if len(body) < 1 + mschap.CHALLENGE_LENGTH or body[0] != mschap.CHALLENGE_LENGTH:
            raise EapError("EAP-MSCHAPv2 challenge value is not 16 octets")
        password = self.credentials.password
        if password is None:
            raise EapError("EAP-MSCHAPv2 needs a password", reason="no-credentials")
        authenticator_challenge = body[1:1 + mschap.CHALLENGE_LENGTH]
        peer_challenge = os.urandom(mschap.CHALLENGE_LENGTH)
        nt_response = mschap.generate_nt_response(
            authenticator_challenge, peer_challenge, self.username, password)
        self._sent = (authenticator_challenge, peer_challenge, nt_response)
        value = peer_challenge + bytes(8) + nt_response + b"\x00"  # flags 0
        data = bytes([RESPONSE_VALUE_SIZE]) + value + self.username
        return _HEADER.pack(OpCode.RESPONSE, ms_id, _HEADER.size + len(data)) + data

    def _success(self, body: bytes) -> bytes:
        if self._sent is None:
            raise EapError("EAP-MSCHAPv2 success before a challenge", reason="unexpected")
        authenticator_challenge, peer_challenge, nt_response = self._sent
        proof = body[:AUTHENTICATOR_RESPONSE_LENGTH]
        if len(proof) != AUTHENTICATOR_RESPONSE_LENGTH or not mschap.check_authenticator_response(
                proof, self.credentials.password, nt_response, peer_challenge,
                authenticator_challenge, self.username):
            raise EapError("EAP-MSCHAPv2 server proof does not verify", reason="bad-auth")
        self.msk = mschap.peer_msk(self.credentials.password, nt_response)
        self.done = True
        return bytes([OpCode.SUCCESS])
