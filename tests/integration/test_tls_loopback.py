"""aaa_mip6.twisted.tls over real Twisted TLS on 127.0.0.1 (in-process, ephemeral ports, a few seconds).

Each test runs its own fresh reactor, so the tests neither share nor leak reactor state
(hence ``clock=reactor`` for Twisted's TLS write buffering, which otherwise uses the global one).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import pytest
from OpenSSL import SSL
from twisted.internet import defer, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, wrapClientTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from aaa_mip6 import pki
from aaa_mip6.twisted.tls import (
    CertificateRejected,
    ClientTLS,
    ServerTLS,
    own_certificate_der,
    peer_certificate_der,
    session_reused,
)
from lab.reactors import run_on_fresh_reactor

SCENARIO_LIMIT = 10.0  # seconds before a hung scenario is stopped (a safety net, not a check)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(d)
    return {
        "ca": ca,
        "hac": pki.make_cert(d, ca, "hac", dns_names=("hac.example",),
                             ip_addresses=("127.0.0.1",)),
        "mn": pki.make_cert(d, ca, "mn", dns_names=("mn.example",), client=True),
    }


@dataclass
class Seen:
    """What one end saw of a TLS connection once its handshake was done."""

    version: str
    reused: bool
    peer_der: bytes | None
    own_der: bytes | None

    @classmethod
    def of(cls, transport) -> Seen:
        handle = transport.getHandle()
        return cls(handle.get_protocol_version_name(), session_reused(transport),
                   peer_certificate_der(transport), own_certificate_der(transport))


@implementer(IHandshakeListener)
class Echo(Protocol):
    def handshakeCompleted(self):  # noqa: N802 (Twisted API)
        self.factory.seen.append(Seen.of(self.transport))

    def dataReceived(self, data):  # noqa: N802 (Twisted API)
        self.transport.write(data)


@implementer(IHandshakeListener)
class Pinger(Protocol):
    """Sends one ping after the handshake, closes on the echo, reports what it saw."""

    def __init__(self, done: defer.Deferred):
        self.done = done
        self.seen = None

    def handshakeCompleted(self):  # noqa: N802 (Twisted API)
        self.seen = Seen.of(self.transport)
        self.transport.write(b"ping")

    def dataReceived(self, data):  # noqa: N802 (Twisted API)
        assert data == b"ping"
        self.transport.loseConnection()

    def connectionLost(self, reason):  # noqa: N802 (Twisted API)
        if reason.check(ConnectionDone) and self.seen is not None:
            self.done.callback(self.seen)
        else:
            self.done.errback(reason)


@implementer(IOpenSSLClientConnectionCreator)
class Tls12Only:
    """Wraps a ClientTLS so that it offers TLS 1.2 only."""

    def __init__(self, inner: ClientTLS):
        self.inner = inner

    def clientConnectionForTLS(self, tlsProtocol):  # noqa: N802 (Twisted API)
        connection = self.inner.clientConnectionForTLS(tlsProtocol)
        connection.set_options(SSL.OP_NO_TLSv1_3)
        return connection


async def listen(reactor, server_tls: ServerTLS):
    factory = Factory.forProtocol(Echo)
    factory.seen = []
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        TLSMemoryBIOFactory(server_tls, False, factory, clock=reactor))
    return port, factory.seen


async def ping(reactor, port, client_creator) -> Seen:
    done = defer.Deferred()
    endpoint = wrapClientTLS(client_creator,
                             TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                             clock=reactor)
    await endpoint.connect(Factory.forProtocol(lambda: Pinger(done)))
    return await done


def server_for(lab, **options) -> ServerTLS:
    return ServerTLS(lab["hac"].cert_path, lab["hac"].key_path, **options)


@pytest.mark.parametrize("tls12_only, version", [(True, "TLSv1.2"), (False, "TLSv1.3")])
def test_handshake_resumption_and_certificates(lab, tls12_only, version):
    client_tls = ClientTLS("hac.example", lab["ca"].cert_path)
    creator = Tls12Only(client_tls) if tls12_only else client_tls

    async def scenario(reactor):
        port, server_seen = await listen(reactor, server_for(lab))
        try:
            first = await ping(reactor, port, creator)
            second = await ping(reactor, port, creator)
        finally:
            await port.stopListening()
        return first, second, server_seen

    first, second, server_seen = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    hac_der = lab["hac"].cert_der
    assert first == Seen(version, False, hac_der, None)
    assert second == Seen(version, True, hac_der, None)
    assert server_seen == [Seen(version, False, None, hac_der), Seen(version, True, None, hac_der)]


def test_ip_reference_and_client_certificate(lab):
    mn = lab["mn"]
    client_tls = ClientTLS("127.0.0.1", lab["ca"].cert_path, cert_file=mn.cert_path,
                           key_file=mn.key_path)

    async def scenario(reactor):
        port, server_seen = await listen(
            reactor, server_for(lab, client_ca_file=lab["ca"].cert_path, require_client_cert=True))
        try:
            return await ping(reactor, port, client_tls), server_seen
        finally:
            await port.stopListening()

    client_seen, server_seen = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert client_seen.own_der == mn.cert_der
    assert [seen.peer_der for seen in server_seen] == [mn.cert_der]


def test_required_client_certificate_missing(lab):
    async def scenario(reactor):
        port, server_seen = await listen(
            reactor, server_for(lab, client_ca_file=lab["ca"].cert_path, require_client_cert=True))
        try:
            with pytest.raises(SSL.Error, match="certificate required"):
                await ping(reactor, port, ClientTLS("hac.example", lab["ca"].cert_path))
        finally:
            await port.stopListening()
        return server_seen

    assert run_on_fresh_reactor(scenario, SCENARIO_LIMIT) == []


def test_name_mismatch_fails_on_the_client(lab):
    async def scenario(reactor):
        port, server_seen = await listen(reactor, server_for(lab))
        try:
            with pytest.raises(CertificateRejected, match="does not match 'other.example'"):
                await ping(reactor, port, ClientTLS("other.example", lab["ca"].cert_path))
        finally:
            await port.stopListening()
        return server_seen

    assert run_on_fresh_reactor(scenario, SCENARIO_LIMIT) == []


def blocking_client(port: int, version: int, *, renegotiate: bool) -> None:
    """A plain pyOpenSSL client on a socket that may offer old TLS or renegotiate."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(version)
    context.set_max_proto_version(version)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # Blocking for OpenSSL, yet bounded: a silent server cannot hang the test.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", int(SCENARIO_LIMIT / 2), 0))
        connection = SSL.Connection(context, sock)
        connection.set_connect_state()
        connection.do_handshake()
        if renegotiate:
            connection.renegotiate()
            connection.do_handshake()


@pytest.mark.parametrize("version, renegotiate, refusal", [
    (SSL.TLS1_VERSION, False, "protocol version"),
    (SSL.TLS1_1_VERSION, False, "protocol version"),
    (SSL.TLS1_2_VERSION, True, "no renegotiation"),
])
def test_server_refuses(lab, version, renegotiate, refusal):
    async def scenario(reactor):
        port, server_seen = await listen(reactor, server_for(lab))
        try:
            with pytest.raises(SSL.Error, match=refusal):
                await threads.deferToThreadPool(
                    reactor, reactor.getThreadPool(), blocking_client, port.getHost().port,
                    version, renegotiate=renegotiate)
        finally:
            await port.stopListening()
        return server_seen

    server_seen = run_on_fresh_reactor(scenario, SCENARIO_LIMIT)
    assert [seen.version for seen in server_seen] == (["TLSv1.2"] if renegotiate else [])
