"""TCP Fast Open (RFC 7413) for the MN-HAC connection: the ClientHello rides in the SYN.

A returning MN holds a Fast Open cookie from its last connection to the HAC's address
(the kernel keeps it, per network namespace and destination address), so its SYN can
carry data, and the HAC's kernel hands that data to the HAC before the three-way
handshake completes: the TLS handshake starts one round trip earlier. The data in the
SYN is the TLS ClientHello only; a SYN the network duplicates delivers a ClientHello
twice, which TLS tolerates as it tolerates any copied ClientHello (RFC 7413 §6.3.1:
the application must be idempotent to duplicated SYN data).

Linux needs ``net.ipv4.tcp_fastopen`` to allow it: bit 1 for clients (the default),
bit 2 for servers; 3 allows both. Without the bits the socket options below are
accepted and have no effect, so they are safe to set everywhere.

The server side is one socket option on the listening socket (:func:`listen_fast_open`).
The client side is ``TCP_FASTOPEN_CONNECT`` (Linux 4.11) set before ``connect()``:
``connect()`` then returns at once when a cookie is cached, and the first ``write()``
(the ClientHello) goes out in the SYN; without a cookie it is an ordinary connect that
asks for one. Twisted creates a client's socket in ``tcp.Client.createInternetSocket``
and connects it a reactor turn later, so :class:`FastOpenReactor` hands every
``connectTCP`` (of ``TCP4ClientEndpoint``, ``TCP6ClientEndpoint`` and the endpoints
``HostnameEndpoint`` makes) a client whose socket has the option. Adopting a socket
connected by hand (``adoptStreamConnection``) does not work: Twisted asks the socket
for its peer, and a deferred Fast Open connect has none until the first write.
``sendto(MSG_FASTOPEN)`` would need a transport of our own.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from twisted.internet import tcp
from twisted.internet.interfaces import IReactorTCP
from zope.interface import directlyProvides, implementer, providedBy

log = logging.getLogger(__name__)

TCP_FASTOPEN_CONNECT = getattr(socket, "TCP_FASTOPEN_CONNECT", 30)  # linux/tcp.h
SYSCTL = Path("/proc/sys/net/ipv4/tcp_fastopen")
SERVER_BIT = 0x2  # of the sysctl; bit 1 (0x1, the clients') is on by default


def sysctl_value(path: Path = SYSCTL) -> int | None:
    """``net.ipv4.tcp_fastopen`` of this network namespace, or None where it cannot be read."""
    try:
        return int(path.read_text().split()[0], 0)
    except (OSError, ValueError, IndexError):
        return None


def listen_fast_open(sock: socket.socket, queue: int) -> bool:
    """Let the listening ``sock`` accept data in SYNs (``queue`` of them pending at most:
    past it, a SYN's data is dropped and the client sends it again after an ordinary
    handshake); False where the kernel has no TCP Fast Open (the socket works as before)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, queue)
    except (OSError, AttributeError):
        return False
    return True


def connect_fast_open(sock: socket.socket) -> bool:
    """Make ``sock``'s coming ``connect()`` a Fast Open one; False where the kernel cannot."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    except OSError as error:
        log.debug("TCP Fast Open not available for the connection: %s", error)
        return False
    return True


class _FastOpenClient(tcp.Client):
    """Twisted's TCP client, its socket set for a Fast Open connect before it connects."""

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 (Twisted API)
        sock = super().createInternetSocket()
        connect_fast_open(sock)
        return sock


class _FastOpenConnector(tcp.Connector):
    def _makeTransport(self) -> tcp.Client:  # noqa: N802 (Twisted API)
        return _FastOpenClient(self.host, self.port, self.bindAddress, self, self.reactor)


@implementer(IReactorTCP)
class FastOpenReactor:
    """``reactor`` whose ``connectTCP`` makes Fast Open connections; all else is ``reactor``'s.

    Pass it to a client endpoint in place of the reactor. It provides every interface
    ``reactor`` provides, so ``HostnameEndpoint`` still finds its name resolver.
    """

    def __init__(self, reactor):
        self._reactor = reactor
        directlyProvides(self, *providedBy(reactor))

    def __getattr__(self, name: str):
        return getattr(self._reactor, name)

    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None):  # noqa: N802
        connector = _FastOpenConnector(host, port, factory, timeout, bindAddress,
                                       self._reactor)
        connector.connect()
        return connector
