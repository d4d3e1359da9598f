"""EAP-TTLSv0 (RFC 5281) with PAP or MS-CHAPv2 as the inner (phase 2) authentication.

Inside the tunnel TTLS carries Diameter-style AVPs (RFC 5281 §10); the header
is packed and parsed by python-diameter, this module adds the checks that make
every malformed AVP an :class:`~aaa_mip6.eap.EapError`.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from diameter.message.avp import Avp as DiameterAvp
from diameter.message.packer import Unpacker

from aaa_mip6 import mschap
from aaa_mip6.eap import EapError, Type
from aaa_mip6.errors import ConfigError

from . import EapCredentials, register
from .mschapv2 import AUTHENTICATOR_RESPONSE_LENGTH
from .tlsbase import TlsMethodBase, TunnelFailure

MSK_LABEL = b"ttls keying material"  # RFC 5281 §8
CHALLENGE_LABEL = b"ttls challenge"  # RFC 5281 §11.1
PAP_PADDING = 16  # RFC 5281 §11.2.5: User-Password padded with NULs to a multiple of 16

USER_NAME = 1
USER_PASSWORD = 2
MICROSOFT = 311  # RFC 2548 vendor-specific AVPs
MS_CHAP_ERROR = 2
MS_CHAP_CHALLENGE = 11
MS_CHAP2_RESPONSE = 25
MS_CHAP2_SUCCESS = 26

_FLAG_VENDOR = 0x80
_FLAG_MANDATORY = 0x40
_HEADER = struct.Struct("!II")  # code, flags(8) | length(24)
_VENDOR_HEADER = 12


@dataclass(frozen=True, slots=True)
class Avp:
    """One TTLS AVP; ``vendor_id`` 0 means none (the V flag clear)."""

    code: int
    data: bytes
    vendor_id: int = 0
    mandatory: bool = True

    def encode(self) -> bytes:
        flags = _FLAG_MANDATORY if self.mandatory else 0
        return DiameterAvp(self.code, self.vendor_id, self.data, flags).as_bytes()


def encode_avps(avps: list[Avp]) -> bytes:
    return b"".join(avp.encode() for avp in avps)


def decode_avps(data: bytes) -> list[Avp]:
    """Parse a sequence of AVPs; the last one's padding may be left out."""
    padded = bytes(data) + b"\0" * (-len(data) % 4)
    unpacker = Unpacker(padded)
    avps = []
    while not unpacker.is_done():
        offset = unpacker.get_position()
        if len(padded) - offset < _HEADER.size:
            raise EapError(f"TTLS AVP header truncated at offset {offset}")
        code, flags_length = _HEADER.unpack_from(padded, offset)
        flags, length = flags_length >> 24, flags_length & 0xFFFFFF
        header = _VENDOR_HEADER if flags & _FLAG_VENDOR else _HEADER.size
        if length < header or offset + length > len(data):
            raise EapError(f"TTLS AVP {code} at offset {offset} has a bad length {length}")
        parsed = DiameterAvp.from_unpacker(unpacker)
        avps.append(Avp(code, bytes(parsed.payload), parsed.vendor_id,
                        bool(flags & _FLAG_MANDATORY)))
    return avps


@register
class EapTtls(TlsMethodBase):
    """The peer side of EAP-TTLSv0; ``credentials.phase2`` is "pap" or "mschapv2"."""

    name = "ttls"
    type = Type.TTLS

    def __init__(self, credentials: EapCredentials):
        if credentials.phase2 not in ("pap", "mschapv2"):
            raise ConfigError(
                f"TTLS phase2 must be 'pap' or 'mschapv2', not {credentials.phase2!r}")
        if credentials.password is None:
            raise ConfigError("TTLS needs a password")
        super().__init__(credentials)
        self._user_name = credentials.identity.encode("utf-8")
        self._sent: tuple[int, bytes, bytes, bytes] | None = None  # MS-CHAPv2 state

    def _established(self, identifier: int) -> bytes:
        self.msk = self.engine.msk(Type.TTLS, MSK_LABEL)
        user_name = Avp(USER_NAME, self._user_name)
        if self.credentials.phase2 == "pap":
            self._finish()
            return encode_avps([user_name, Avp(USER_PASSWORD, self._padded_password())])
        return encode_avps([user_name, *self._mschapv2_response()])

    def _padded_password(self) -> bytes:
        password = self.credentials.password.encode("utf-8")
        return password + b"\0" * (-len(password) % PAP_PADDING)

    def _mschapv2_response(self) -> list[Avp]:
        """RFC 5281 §11.2.4: the challenge and identifier come from the TLS exporter."""
        implicit = self.engine.export_key(CHALLENGE_LABEL, mschap.CHALLENGE_LENGTH + 1)
        challenge, ident = implicit[:mschap.CHALLENGE_LENGTH], implicit[mschap.CHALLENGE_LENGTH]
        peer_challenge = secrets.token_bytes(mschap.CHALLENGE_LENGTH)
        nt_response = mschap.generate_nt_response(
            challenge, peer_challenge, self._user_name, self.credentials.password)
        self._sent = (ident, challenge, peer_challenge, nt_response)
        response = bytes([ident, 0]) + peer_challenge + bytes(8) + nt_response
        return [Avp(MS_CHAP_CHALLENGE, challenge, MICROSOFT),
                Avp(MS_CHAP2_RESPONSE, response, MICROSOFT)]

    def _tunnel_data(self, identifier: int, data: bytes) -> bytes:
        avps = {(avp.vendor_id, avp.code): avp.data for avp in decode_avps(data)}
        if self._sent is None or self._finished:
            return b""  # e.g. a Reply-Message after PAP: nothing to answer
        if (MICROSOFT, MS_CHAP_ERROR) in avps:
            raise TunnelFailure("TTLS/MS-CHAPv2: the server rejected the password")
        success = avps.get((MICROSOFT, MS_CHAP2_SUCCESS))
        if success is None:
            raise EapError("TTLS/MS-CHAPv2: neither MS-CHAP2-Success nor MS-CHAP-Error")
        ident, challenge, peer_challenge, nt_response = self._sent
        proof = success[1:1 + AUTHENTICATOR_RESPONSE_LENGTH]
        if success[:1] != bytes([ident]) or not mschap.check_authenticator_response(
                proof, self.credentials.password, nt_response, peer_challenge, challenge,
                self._user_name):
            raise EapError("TTLS/MS-CHAPv2: the server's authenticator response does not verify",
                           reason="bad-auth")
        self._finish()
        return b""
