"""TLS 1.3 early data (0-RTT, RFC 8446 §2.3, §4.2.10) under Twisted's memory-BIO TLS.

pyOpenSSL wraps none of OpenSSL's early-data calls, but the OpenSSL binding of
``cryptography`` it runs on has ``SSL_write_early_data``, ``SSL_read_early_data``,
``SSL_CTX_set_max_early_data`` and ``SSL_SESSION_get_max_early_data``; it lacks
``SSL_get_early_data_status``, so the client learns that its early data was accepted
from its handshake state instead (``ClientTLS.early_data_accepted``: a client sends
EndOfEarlyData exactly when the server accepted it, §4.5).

OpenSSL wants the first I/O call on a connection to be the early-data one: a server that
calls ``SSL_do_handshake`` first rejects early data, and a client must write its early
data before the handshake starts. Twisted's ``TLSMemoryBIOProtocol`` starts the handshake
in ``makeConnection``, so each side here is a subclass that puts the early-data call
first, in ``_checkHandshakeStatus``:

- :class:`EarlyDataServerProtocol` reads early data with ``SSL_read_early_data`` until
  OpenSSL says it is over (accepted or not), hands it to the application before the
  handshake completes -- the application sees ``dataReceived`` before
  ``handshakeCompleted`` and must only do what a replay could not abuse -- and sends the
  application's answer as 0.5-RTT data (``SSL_write_early_data``, to a client that holds
  the resumption secret but has not yet proven it is live).
- :class:`EarlyDataClientFactory` makes connections that send ``early_data`` with the
  ClientHello when the offered session allows that much early data.

Replays: OpenSSL accepts early data only with a ticket it finds in its session cache and
removes it there as it does (single-use tickets, RFC 8446 §8.1), see
:class:`aaa_mip6.twisted.tls.ServerTLS`.
"""

from __future__ import annotations

from cryptography.hazmat.bindings.openssl.binding import Binding
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory

_binding = Binding()
_lib, _ffi = _binding.lib, _binding.ffi

READ_EARLY_DATA_ERROR, READ_EARLY_DATA_SUCCESS, READ_EARLY_DATA_FINISH = 0, 1, 2  # ssl.h
_CHUNK = 16_384


def write_early_data(connection, data: bytes) -> bool:
    """Queue ``data`` as early data on a client ``connection`` that has not started its
    handshake; False (nothing written) unless its session allows that much early data."""
    session = connection.get_session()
    if session is None or _lib.SSL_SESSION_get_max_early_data(session._session) < len(data):
        return False
    written = _ffi.new("size_t *")
    if _lib.SSL_write_early_data(connection._ssl, data, len(data), written) != 1:
        _lib.ERR_clear_error()
        return False
    return written[0] == len(data)


class EarlyDataServerProtocol(BufferingTLSTransport):
    """A server TLS connection that delivers early data before the handshake completes."""

    _reading_early_data = True

    def _checkHandshakeStatus(self) -> None:  # noqa: N802 (Twisted API)
        if self._reading_early_data and not self._aborted:
            self._read_early_data()
            if self._reading_early_data or self._aborted:
                return
        super()._checkHandshakeStatus()

    def _read_early_data(self) -> None:
        """Read what early data there is; a failure is left for the ordinary handshake to
        report, from OpenSSL's error queue."""
        ssl = self._tlsConnection._ssl
        buffer = _ffi.new("char[]", _CHUNK)
        size = _ffi.new("size_t *")
        received = []
        while True:
            result = _lib.SSL_read_early_data(ssl, buffer, _CHUNK, size)
            if result == READ_EARLY_DATA_ERROR:
                if _lib.SSL_get_error(ssl, result) != _lib.SSL_ERROR_WANT_READ:
                    self._reading_early_data = False  # do_handshake raises the error
                break
            received.append(_ffi.buffer(buffer, size[0])[:])
            if result == READ_EARLY_DATA_FINISH:
                self._reading_early_data = False
                break
        self._flushSendBIO()
        data = b"".join(received)
        if data and not self._aborted:
            ProtocolWrapper.dataReceived(self, data)

    def _write(self, octets: bytes) -> None:
        """While early data is read, the answer goes out as 0.5-RTT data."""
        if not self._reading_early_data:
            super()._write(octets)
            return
        if self._lostTLSConnection:
            return
        written = _ffi.new("size_t *")
        if _lib.SSL_write_early_data(self._tlsConnection._ssl, octets, len(octets),
                                     written) != 1 or written[0] != len(octets):
            _lib.ERR_clear_error()
            self._bufferedWrite(octets[written[0]:])  # sent after the handshake
        self._flushSendBIO()


class _EarlyDataClientProtocol(BufferingTLSTransport):
    _early_data_sent = False
    heard_from_server = False  # whether any octet came from the server

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        self.heard_from_server = True
        super().dataReceived(data)

    def _checkHandshakeStatus(self) -> None:  # noqa: N802 (Twisted API)
        if not self._early_data_sent:
            self._early_data_sent = True
            if self.factory.early_data:
                write_early_data(self._tlsConnection, self.factory.early_data)
        super()._checkHandshakeStatus()


class EarlyDataClientFactory(TLSMemoryBIOFactory):
    """Client TLS whose connections send ``early_data`` with the ClientHello when they can
    (a session offered that allows it); the application learns whether the server took
    it from ``ClientTLS.early_data_accepted`` once the handshake is done. Each connection's
    ``heard_from_server`` says whether the server sent anything at all (a TCP Fast Open
    connect succeeds before the SYN is sent: a refusal comes later, as a lost connection)."""

    protocol = _EarlyDataClientProtocol

    def __init__(self, creator, wrapped_factory, early_data: bytes, clock):
        super().__init__(creator, True, wrapped_factory, clock=clock)
        self.early_data = early_data
