"""TLS 1.3 early data (aaa_mip6.twisted.early_data, ServerTLS/ClientTLS) in memory: OpenSSL's
calls through cryptography's binding, and Twisted's TLS protocols over StringTransports."""

from __future__ import annotations

import contextlib

import pytest
from OpenSSL import SSL
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from aaa_mip6 import pki
from aaa_mip6.twisted.early_data import (
    READ_EARLY_DATA_FINISH,
    READ_EARLY_DATA_SUCCESS,
    EarlyDataClientFactory,
    EarlyDataServerProtocol,
    _ffi,
    _lib,
    write_early_data,
)
from aaa_mip6.twisted.tls import MAX_EARLY_DATA, ClientTLS, ServerTLS

INIT = b"an MN Init"


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(directory)
    return ca, pki.make_cert(directory, ca, "hac", dns_names=("hac.example",))


def server_tls(identities, early_data: bool = True) -> ServerTLS:
    return ServerTLS(identities[1].cert_path, identities[1].key_path, early_data=early_data)


def client_tls(identities) -> ClientTLS:
    return ClientTLS("hac.example", identities[0].cert_path)


@implementer(IHandshakeListener)
class Recorder(Protocol):
    """An application on one end: notes what reaches it, answers data with ``reply``."""

    def __init__(self, reply: bytes = b""):
        self.events: list = []
        self.reply = reply

    def handshakeCompleted(self):  # noqa: N802 (Twisted API)
        self.events.append("handshake")

    def dataReceived(self, data):  # noqa: N802 (Twisted API)
        self.events.append(data)
        if self.reply:
            self.transport.write(self.reply)


class Link:
    """A client and a server TLS protocol joined by StringTransports, moved by hand."""

    def __init__(self, client: ClientTLS, server: ServerTLS, early: bytes):
        self.clock = Clock()
        self.server_app, self.client_app = Recorder(b"answer"), Recorder()
        server_factory = TLSMemoryBIOFactory(server, False,
                                             Factory.forProtocol(lambda: self.server_app),
                                             clock=self.clock)
        if server.early_data:
            server_factory.protocol = EarlyDataServerProtocol
        client_factory = EarlyDataClientFactory(client,
                                                Factory.forProtocol(lambda: self.client_app),
                                                early, self.clock)
        self.server, self.client = (server_factory.buildProtocol(None),
                                    client_factory.buildProtocol(None))
        self.server_wire, self.client_wire = StringTransport(), StringTransport()
        self.server.makeConnection(self.server_wire)
        self.client.makeConnection(self.client_wire)
        self.first_flight = self.client_wire.value()

    def run(self) -> None:
        for _ in range(10):
            self.clock.advance(0)  # Twisted's TLS aggregates writes until the next turn
            for wire, receiver in ((self.client_wire, self.server),
                                   (self.server_wire, self.client)):
                data = wire.value()
                wire.clear()
                if data:
                    receiver.dataReceived(data)

    def close(self) -> None:
        self.client.loseConnection()
        self.run()


def returning(identities, server: ServerTLS) -> ClientTLS:
    """A ClientTLS holding a ticket of ``server`` (after one full handshake)."""
    client = client_tls(identities)
    first = Link(client, server, INIT)
    first.run()
    assert first.server_app.events[0] == "handshake"  # no ticket yet: no early data
    first.close()
    return client


def test_a_returning_mn_is_answered_before_its_handshake_completes(identities):
    server = server_tls(identities)
    client = returning(identities, server)
    link = Link(client, server, INIT)
    link.run()
    # The HAC saw the Init before the handshake completed and answered it as 0.5-RTT data.
    assert link.server_app.events == [INIT, "handshake"]
    assert link.client_app.events == ["handshake", b"answer"]
    assert client.early_data_accepted(link.client)


def test_without_early_data_at_the_hac_the_init_waits_for_the_handshake(identities):
    server = server_tls(identities, early_data=False)
    client = returning(identities, server)
    link = Link(client, server, INIT)
    link.run()
    assert link.server_app.events == ["handshake"]  # the early Init was never taken
    assert not client.early_data_accepted(link.client)


def test_a_tls12_mn_still_connects_to_an_early_data_hac(identities):
    client = client_tls(identities)
    make = client.clientConnectionForTLS

    def tls12_only(protocol):
        connection = make(protocol)
        connection.set_options(SSL.OP_NO_TLSv1_3)
        return connection

    client.clientConnectionForTLS = tls12_only
    link = Link(client, server_tls(identities), INIT)
    link.run()
    link.client.write(b"Init")
    link.run()
    assert link.client.getHandle().get_protocol_version_name() == "TLSv1.2"
    assert link.server_app.events == ["handshake", b"Init"]
    assert link.client_app.events == ["handshake", b"answer"]


def test_an_mn_that_sent_early_data_and_heard_nothing_counts_as_not_answered(identities):
    from mn.client import _answered

    client = returning(identities, server_tls(identities))
    link = Link(client, server_tls(identities), INIT)  # never run: nothing came back
    assert _answered(link.client) is False
    link.run()
    assert _answered(link.client) is True
    assert _answered(object()) is None


def _ticket_max_early_data(identities, early_data: bool) -> int:
    client = returning(identities, server_tls(identities, early_data))
    connection = client.clientConnectionForTLS(None)
    return _lib.SSL_SESSION_get_max_early_data(connection.get_session()._session)


def test_only_an_early_data_hac_issues_tickets_that_allow_it(identities):
    assert _ticket_max_early_data(identities, True) == MAX_EARLY_DATA
    assert _ticket_max_early_data(identities, False) == 0


def test_too_much_early_data_is_not_sent(identities):
    client = returning(identities, server_tls(identities))
    connection = client.clientConnectionForTLS(None)
    connection.set_connect_state()
    assert not write_early_data(connection, b"x" * (MAX_EARLY_DATA + 1))


def _read_early(first_flight: bytes, server: ServerTLS) -> tuple[int, bytes]:
    """Feed a client's first flight to a new server connection: (result, early data)."""
    connection = server.serverConnectionForTLS(None)
    connection.set_accept_state()
    connection.bio_write(first_flight)
    buffer, size = _ffi.new("char[]", 4096), _ffi.new("size_t *")
    result = _lib.SSL_read_early_data(connection._ssl, buffer, 4096, size)
    with contextlib.suppress(SSL.Error):
        connection.bio_read(65536)
    return result, _ffi.buffer(buffer, size[0])[:]


def test_replayed_early_data_is_rejected_single_use_tickets(identities):
    server = server_tls(identities)
    client = returning(identities, server)
    link = Link(client, server, INIT)
    flight = link.first_flight
    assert _read_early(flight, server) == (READ_EARLY_DATA_SUCCESS, INIT)  # the original
    assert _read_early(flight, server) == (READ_EARLY_DATA_FINISH, b"")  # its replay: rejected


# --- the HAC's rule: before the handshake completes, it only answers ----------------


class Wire(StringTransport):
    def setTcpNoDelay(self, enabled):  # noqa: N802 (Twisted API)
        pass


def hac_connection(monkeypatch):
    """A HacProtocol for an EAP HAC that builds the identity response from mn-id (so an
    Init goes straight to the AAA server), its AAA requests noted instead of sent."""
    from collections import Counter
    from types import SimpleNamespace

    from aaa_mip6 import tvheaders as tv
    from hac import core, server

    monkeypatch.setattr(server, "session_reused", lambda transport: False)
    settings = core.SessionSettings(psk_lookup=lambda identity: None,
                                    server_secret=b"s" * 16, channel_binding=b"c" * 32,
                                    choose_suite=lambda codes: None,
                                    methods=(tv.AuthMethod.EAP,),
                                    eap_identity_from_mn_id=True)
    clock = Clock()
    hac = SimpleNamespace(session_settings=settings, reactor=clock, connections=0,
                          handshakes=0, resumptions=0, bootstraps=Counter(),
                          bootstrap_outcomes=Counter(), observe_bootstrap=None,
                          config=SimpleNamespace(handshake_timeout=10, idle_timeout=30))
    protocol = server.HacProtocol(hac)
    asked = []
    protocol._ask_aaa = asked.append
    protocol.makeConnection(Wire())
    return protocol, asked


def mn_init(method: str = "EAP") -> bytes:
    from aaa_mip6 import container
    from aaa_mip6 import messages as m
    from aaa_mip6 import tvheaders as tv

    return container.encode(1, m.encode(m.MnInit("mn@example.org", b"r" * 32,
                                                 (tv.AuthMethod[method],))))


def test_an_early_init_reaches_the_aaa_server_only_after_the_handshake(monkeypatch):
    protocol, asked = hac_connection(monkeypatch)
    protocol.dataReceived(mn_init())  # early data: the handshake has not completed
    assert asked == []
    protocol.handshakeCompleted()
    assert [action.user_name for action in asked] == ["mn@example.org"]


def test_an_early_request_refused_is_answered_at_once_and_closed_after_the_handshake(
        monkeypatch):
    protocol, asked = hac_connection(monkeypatch)
    protocol.dataReceived(mn_init("PSK"))  # a method this HAC does not run: 501 and close
    assert b"status-code:501" in protocol.transport.value()  # the answer went out at once
    assert not protocol.transport.disconnecting
    protocol.handshakeCompleted()
    assert protocol.transport.disconnecting and asked == []


def test_a_bad_client_hello_fails_the_early_data_server_as_any_handshake_fails(identities):
    link = Link(client_tls(identities), server_tls(identities), b"")
    lost = []
    link.server_app.connectionLost = lost.append
    link.server.dataReceived(b"\x16\x03\x01\x00\x05hello")  # a record that is no ClientHello
    assert link.server_wire.disconnecting
    link.server.connectionLost(None)
    assert lost and lost[0].check(SSL.Error)
    assert link.server_app.events == []
