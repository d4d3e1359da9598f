"""EAP-MD5-Challenge (RFC 3748 §5.4): the CHAP response of RFC 1994 §4.1, no MSK."""

from __future__ import annotations

import hashlib

from aaa_mip6.eap import EapError, Type

from . import EapMethod, register


@register
class Md5Challenge(EapMethod):
    name = "md5"
    type = Type.MD5_CHALLENGE

    def process(self, identifier: int, type_data: bytes) -> bytes:
        if not type_data or type_data[0] == 0 or len(type_data) < 1 + type_data[0]:
            raise EapError("EAP-MD5 request without a whole challenge value")
        challenge = type_data[1:1 + type_data[0]]
        if self.credentials.password is None:
            raise EapError("EAP-MD5 needs a password", reason="no-credentials")
        value = chap_response(identifier, self.credentials.password.encode("utf-8"), challenge)
        self.done = True
        return bytes([len(value)]) + value + self.credentials.identity.encode("utf-8")


def chap_response(identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """RFC 1994 §4.1: MD5(Identifier || secret || Challenge)."""
    return hashlib.md5(bytes([identifier]) + secret + challenge).digest()
