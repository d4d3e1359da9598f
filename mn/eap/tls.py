"""EAP-TLS (RFC 5216; RFC 9190 for TLS 1.3): mutual certificate authentication."""

from __future__ import annotations

from aaa_mip6.eap import EapError, Type

from . import register
from .tlsbase import TlsMethodBase

MSK_LABEL = b"client EAP encryption"  # RFC 5216 §2.3
COMMITMENT_MESSAGE = b"\x00"  # RFC 9190 §2.5: the server will send no more handshake messages


@register
class EapTls(TlsMethodBase):
    """The peer side of EAP-TLS; ``credentials`` needs client_cert, client_key and ca_cert.

    With TLS 1.2 the method is done when the server's Finished arrives. With
    TLS 1.3 the client's Finished goes out first, so the peer waits for the
    server's commitment message before it calls itself done (RFC 9190 §2.1.1).
    """

    name = "tls"
    type = Type.TLS
    client_certificate = True

    def _established(self, identifier: int) -> bytes:
        self.msk = self.engine.msk(Type.TLS, MSK_LABEL)
        if self.engine.tls_version != "TLSv1.3":
            self._finish()
        return b""

    def _tunnel_data(self, identifier: int, data: bytes) -> bytes:
        if self.engine.tls_version == "TLSv1.3" and not self._finished \
                and data == COMMITMENT_MESSAGE:
            self._finish()
            return b""
        raise EapError(f"EAP-TLS server sent {len(data)} octets of application data "
                       "that are not the TLS 1.3 commitment message")
