"""EAP-GTC (RFC 3748 §5.6): the server's prompt is answered with the password; no MSK."""

from __future__ import annotations

from aaa_mip6.eap import EapError, Type

from . import EapMethod, register


@register
class GenericTokenCard(EapMethod):
    name = "gtc"
    type = Type.GTC

    def process(self, identifier: int, type_data: bytes) -> bytes:
        if self.credentials.password is None:
            raise EapError("EAP-GTC needs a password", reason="no-credentials")
        self.done = True
        return self.credentials.password.encode("utf-8")
