"""aaa_mip6.twisted.tls with in-memory TLS: both ends run in this process, bytes moved by hand."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.bindings.openssl.binding import Binding
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given
from hypothesis import strategies as st
from OpenSSL import SSL

from aaa_mip6 import pki
from aaa_mip6.errors import ConfigError
from aaa_mip6.twisted.tls import (
    CertificateRejected,
    ClientTLS,
    ServerTLS,
    check_identity,
    own_certificate_der,
    peer_certificate_der,
    session_reused,
    ticket_key_setter,
)


_OPENSSL = Binding().lib  # for SSL_set_mode, which pyOpenSSL has no getter for


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A CA, a stranger CA, and the certificates the tests need."""
    d = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(d)
    stranger = pki.make_ca(d, "stranger", common_name="Stranger CA")
    return {
        "dir": d,
        "ca": ca,
        "hac": pki.make_cert(d, ca, "hac", dns_names=("hac.example",)),
        "ip": pki.make_cert(d, ca, "hac-ip", ip_addresses=("192.0.2.1", "2001:db8::1")),
        "wildcard": pki.make_cert(d, ca, "wild", dns_names=("*.lab.example",)),
        "wild_and_exact": pki.make_cert(d, ca, "wild2",
                                         dns_names=("*.lab.example", "hac.lab.example")),
        "cn_only": pki.make_cert(d, ca, "cn", common_name="hac.example"),
        "stranger_hac": pki.make_cert(d, stranger, "stranger-hac", dns_names=("hac.example",)),
        "mn": pki.make_cert(d, ca, "mn", dns_names=("mn.example",), client=True),
    }


def server_for(identity, **options) -> ServerTLS:
    return ServerTLS(identity.cert_path, identity.key_path, **options)


def client_for(lab, host="hac.example", **options) -> ClientTLS:
    return ClientTLS(host, lab["ca"].cert_path, **options)


def _pump(a: SSL.Connection, b: SSL.Connection) -> None:
    moved = True
    while moved:
        moved = False
        for source, sink in ((a, b), (b, a)):
            try:
                data = source.bio_read(65536)
            except SSL.WantReadError:
                continue
            if data:
                sink.bio_write(data)
                moved = True


class Pair:
    """A client and a server connection joined by memory BIOs."""

    def __init__(self, client: ClientTLS | SSL.Connection, server_tls: ServerTLS, *,
                 tls12_only=False):
        if isinstance(client, ClientTLS):
            client = client.clientConnectionForTLS(None)
        self.client = client
        self.client.set_connect_state()
        if tls12_only:
            self.client.set_options(SSL.OP_NO_TLSv1_3)
        self.server = server_tls.serverConnectionForTLS(None)
        self.server.set_accept_state()
        self.errors: dict[str, SSL.Error] = {}

    def run(self) -> dict[str, SSL.Error]:
        """Handshake and read post-handshake messages until quiet; return errors by side."""
        for _ in range(8):
            for side, connection in (("client", self.client), ("server", self.server)):
                if side in self.errors:
                    continue
                try:
                    connection.do_handshake()
                    connection.recv(1024)
                except SSL.WantReadError:
                    pass
                except SSL.Error as exc:
                    self.errors[side] = exc
            _pump(self.client, self.server)
        return self.errors

    def close(self) -> None:
        """Close cleanly: OpenSSL only lets a session resume if its connection was shut down."""
        self.client.shutdown()
        _pump(self.client, self.server)
        with pytest.raises(SSL.ZeroReturnError):
            self.server.recv(1024)
        self.server.shutdown()


def connect(client_tls, server_tls, **options) -> Pair:
    pair = Pair(client_tls, server_tls, **options)
    assert pair.run() == {}
    return pair


@pytest.mark.parametrize("tls12_only, version", [(True, "TLSv1.2"), (False, "TLSv1.3")])
def test_handshake_and_certificates_for_channel_binding(lab, tls12_only, version):
    server_tls = server_for(lab["hac"])
    pair = connect(client_for(lab), server_tls, tls12_only=tls12_only)
    assert pair.client.get_protocol_version_name() == version
    hac_der = lab["hac"].cert_der
    assert peer_certificate_der(pair.client) == hac_der
    assert own_certificate_der(pair.server) == hac_der == server_tls.certificate_der
    assert own_certificate_der(pair.client) is None
    assert peer_certificate_der(pair.server) is None
    pair.client.sendall(b"ping")
    _pump(pair.client, pair.server)
    assert pair.server.recv(16) == b"ping"


def plain_client(version: int, ciphers: bytes = b"ALL:@SECLEVEL=0") -> SSL.Connection:
    """A client that does not verify and offers what aaa_mip6.twisted.tls forbids: old TLS and
    ciphers, renegotiation (security level 0 so that OpenSSL really offers them)."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(version)
    context.set_max_proto_version(version)
    context.set_cipher_list(ciphers)
    return SSL.Connection(context)


def test_tls12_server_picks_ecdhe_aead_from_everything(lab):
    pair = connect(plain_client(SSL.TLS1_2_VERSION), server_for(lab["hac"]))
    name = pair.client.get_cipher_name()
    assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name


def test_tls12_server_refuses_non_ecdhe_or_non_aead(lab):
    offer = b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-GCM-SHA256:@SECLEVEL=0"
    errors = Pair(plain_client(SSL.TLS1_2_VERSION, offer), server_for(lab["hac"])).run()
    assert "no shared cipher" in str(errors["server"])


@pytest.mark.parametrize("version", [SSL.TLS1_VERSION, SSL.TLS1_1_VERSION])
def test_old_tls_client_refused_by_server(lab, version):
    errors = Pair(plain_client(version), server_for(lab["hac"])).run()
    assert "unsupported protocol" in str(errors["server"])


def test_client_initiated_renegotiation_refused(lab):
    pair = connect(plain_client(SSL.TLS1_2_VERSION), server_for(lab["hac"]))
    assert pair.client.get_protocol_version_name() == "TLSv1.2"
    assert pair.client.renegotiate()
    errors = pair.run()
    assert "no renegotiation" in str(errors["client"])  # the HAC answered no_renegotiation
    # OpenSSL 3 servers refuse client renegotiation by default; the HAC also says so itself.
    assert pair.server.set_options(0) & SSL.OP_NO_RENEGOTIATION
    assert pair.server.total_renegotiations() == 0
    assert pair.client.total_renegotiations() == 1


@pytest.mark.parametrize("tls12_only", [True, False])
def test_session_ticket_resumes(lab, tls12_only):
    server_tls, client_tls = server_for(lab["hac"]), client_for(lab)
    first = connect(client_tls, server_tls, tls12_only=tls12_only)
    assert not session_reused(first.client)
    first.close()
    second = connect(client_tls, server_tls, tls12_only=tls12_only)
    assert session_reused(second.client) and session_reused(second.server)
    assert peer_certificate_der(second.client) == lab["hac"].cert_der
    second.close()
    third = connect(client_tls, server_tls, tls12_only=tls12_only)
    assert session_reused(third.client)


def test_ticket_keys_rotate(lab):
    clock = FakeClock()
    server_tls = server_for(lab["hac"], ticket_key_lifetime=60, clock=clock)
    client_tls = client_for(lab)
    connect(client_tls, server_tls).close()
    clock.now += 59
    resumed = connect(client_tls, server_tls)
    assert session_reused(resumed.client)
    resumed.close()
    clock.now += 1  # 60 s since the context started: new ticket keys
    after_rotation = connect(client_tls, server_tls)
    assert not session_reused(after_rotation.client)
    after_rotation.close()
    assert session_reused(connect(client_tls, server_tls).client)


def _client_hello_size(client_tls: ClientTLS) -> int:
    """Octets of the first flight the next connection of ``client_tls`` sends."""
    connection = client_tls.clientConnectionForTLS(None)
    connection.set_connect_state()
    with contextlib.suppress(SSL.WantReadError):
        connection.do_handshake()
    return len(connection.bio_read(65536))


TFO_SYN_DATA = 1420  # what a SYN carries on a 1500-octet link with TCP options


def test_a_ticket_goes_with_one_classical_key_share_that_fits_in_a_syn(lab):
    server_tls, client_tls = server_for(lab["hac"]), client_for(lab)
    full_size = _client_hello_size(client_tls)
    first = connect(client_tls, server_tls)
    if first.client.get_group_name() == "X25519MLKEM768":  # OpenSSL 3.5 on: the default
        assert full_size > TFO_SYN_DATA  # the hybrid key share is large
    first.close()
    assert _client_hello_size(client_tls) <= TFO_SYN_DATA
    resumed = connect(client_tls, server_tls)
    assert session_reused(resumed.client) and resumed.client.get_group_name() == "x25519"
    assert not client_tls.resumption_refused(resumed.client)


def test_a_refused_ticket_asks_for_a_new_full_hybrid_handshake(lab):
    clock = FakeClock()
    server_tls = server_for(lab["hac"], ticket_key_lifetime=60, clock=clock)
    client_tls = client_for(lab)
    connect(client_tls, server_tls).close()
    clock.now += 60  # new ticket keys: the ticket no longer resumes
    refused = connect(client_tls, server_tls)
    assert refused.client.get_group_name() == "x25519"  # all the MN offered with the ticket
    assert client_tls.resumption_refused(refused.client)
    again = connect(client_tls, server_tls)  # no ticket now: OpenSSL's default groups
    fresh = connect(client_for(lab), server_tls)
    assert again.client.get_group_name() == fresh.client.get_group_name()
    assert not client_tls.resumption_refused(again.client)


def _serve_once_in_a_child(make_server_tls) -> tuple[socket.socket, int]:
    """Fork a child that serves one TLS connection on a socket pair with the ServerTLS
    ``make_server_tls()`` returns; return the parent's end of the pair and the child's pid.

    The server writes one byte after the handshake so that a TLS 1.3 client has read the
    session ticket before it keeps its session.
    """
    parent_end, child_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            parent_end.close()
            context = make_server_tls().serverConnectionForTLS(None).get_context()
            connection = SSL.Connection(context, child_end)
            connection.set_accept_state()
            connection.do_handshake()
            connection.sendall(b"!")
            with contextlib.suppress(SSL.Error):
                connection.recv(1)  # until the client's close_notify
            code = 0
        finally:
            os._exit(code)
    child_end.close()
    return parent_end, pid


def _handshake_with_a_child(context: ssl.SSLContext, make_server_tls, session=None
                            ) -> tuple[ssl.SSLSession, bool]:
    """Connect to a forked server offering ``session``; return the new session and
    whether the offered one resumed."""
    sock, pid = _serve_once_in_a_child(make_server_tls)
    with context.wrap_socket(sock, server_hostname="hac.example", session=session) as tls:
        assert tls.recv(1) == b"!"
        outcome = tls.session, tls.session_reused
    assert os.waitpid(pid, 0)[1] == 0
    return outcome


@pytest.mark.parametrize("built_before_fork", [True, False])
def test_forked_workers_resume_each_others_tickets_when_the_context_is_built_first(
        lab, built_before_fork):
    shared = server_for(lab["hac"])
    make = (lambda: shared) if built_before_fork else (lambda: server_for(lab["hac"]))
    client = ssl.create_default_context(cafile=str(lab["ca"].cert_path))
    session, _ = _handshake_with_a_child(client, make)
    assert session.has_ticket
    _, reused = _handshake_with_a_child(client, make, session=session)
    assert reused is built_before_fork


def test_both_ends_let_idle_connections_release_their_buffers(lab):
    server = server_for(lab["hac"]).serverConnectionForTLS(None)
    client = client_for(lab).clientConnectionForTLS(None)
    for connection in (server, client):
        # SSL_set_mode adds bits (none here) and returns the mode in force
        assert _OPENSSL.SSL_set_mode(connection._ssl, 0) & SSL.MODE_RELEASE_BUFFERS


def test_aborted_connection_session_is_not_resumed(lab):
    server_tls, client_tls = server_for(lab["hac"]), client_for(lab)
    connect(client_tls, server_tls)  # dropped without close_notify
    assert not session_reused(connect(client_tls, server_tls).client)


@pytest.mark.parametrize("server_cert, host, message", [
    ("hac", "other.example", "does not match 'other.example'"),
    ("wildcard", "hac.lab.example", "no usable subjectAltName"),
    ("cn_only", "hac.example", "no usable subjectAltName"),
    ("stranger_hac", "hac.example", "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
    ("hac", "192.0.2.1", "no usable|does not match"),
    ("ip", "192.0.2.2", "does not match '192.0.2.2'"),
])
def test_client_rejects_wrong_certificate(lab, server_cert, host, message):
    pair = Pair(client_for(lab, host), server_for(lab[server_cert]))
    errors = pair.run()
    assert isinstance(errors["client"], CertificateRejected)
    assert re.search(message, str(errors["client"]))
    assert "server" in errors  # the HAC got the client's alert: no session was set up


@pytest.mark.parametrize("host", ["192.0.2.1", "2001:db8::1", "[2001:db8::1]", "2001:DB8:0::1"])
def test_ip_address_san_matches_ip_reference(lab, host):
    pair = connect(client_for(lab, host), server_for(lab["ip"]))
    assert peer_certificate_der(pair.client) == lab["ip"].cert_der


def test_exact_name_matches_even_beside_a_wildcard(lab):
    check_identity(lab["wild_and_exact"].cert, "HAC.lab.example")
    check_identity(lab["wild_and_exact"].cert, "hac.lab.example.")
    with pytest.raises(CertificateRejected, match="does not match"):
        check_identity(lab["wild_and_exact"].cert, "other.lab.example")


@given(label=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
def test_wildcard_never_matches(lab, label):
    with pytest.raises(CertificateRejected):
        check_identity(lab["wildcard"].cert, f"{label}.lab.example")


def test_dns_san_holding_an_ip_text_is_not_an_ip_id(lab, tmp_path):
    cert = pki.make_cert(tmp_path, lab["ca"], "odd", dns_names=("192.0.2.1",)).cert
    with pytest.raises(CertificateRejected):
        check_identity(cert, "192.0.2.1")


def test_reference_identity_cannot_be_a_wildcard(lab):
    with pytest.raises(ConfigError, match="wildcard"):
        client_for(lab, "*.example")
    with pytest.raises(ConfigError, match="neither a DNS name nor an IP"):
        client_for(lab, "bad name!")


def test_client_certificate_required(lab):
    server_tls = server_for(lab["hac"], client_ca_file=lab["ca"].cert_path,
                            require_client_cert=True)
    errors = Pair(client_for(lab), server_tls).run()
    assert "peer did not return a certificate" in str(errors["server"])
    mn = lab["mn"]
    pair = connect(client_for(lab, cert_file=mn.cert_path, key_file=mn.key_path), server_tls)
    assert peer_certificate_der(pair.server) == own_certificate_der(pair.client) == mn.cert_der


def test_client_certificate_optional_and_verified(lab):
    server_tls = server_for(lab["hac"], client_ca_file=lab["ca"].cert_path)
    pair = connect(client_for(lab), server_tls)
    assert peer_certificate_der(pair.server) is None
    outsider = lab["stranger_hac"]  # a certificate from a CA the HAC does not trust
    errors = Pair(client_for(lab, cert_file=outsider.cert_path, key_file=outsider.key_path),
                  server_tls).run()
    assert "certificate verify failed" in str(errors["server"])


def test_resumption_with_client_certificate(lab):
    mn = lab["mn"]
    server_tls = server_for(lab["hac"], client_ca_file=lab["ca"].cert_path,
                            require_client_cert=True)
    client_tls = client_for(lab, cert_file=mn.cert_path, key_file=mn.key_path)
    connect(client_tls, server_tls).close()
    again = connect(client_tls, server_tls)
    assert session_reused(again.server)
    assert peer_certificate_der(again.server) == mn.cert_der


def test_server_chain_file_is_sent(lab, tmp_path):
    intermediate = pki.make_ca(tmp_path, "intermediate", common_name="Intermediate CA")
    # re-sign the intermediate by the lab CA so that the chain leads to a trusted root
    builder = (x509.CertificateBuilder().subject_name(intermediate.cert.subject)
               .issuer_name(lab["ca"].cert.subject).public_key(intermediate.key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(intermediate.cert.not_valid_before_utc)
               .not_valid_after(intermediate.cert.not_valid_after_utc)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    signed = builder.sign(lab["ca"].key, hashes.SHA256())
    inter = pki.Identity(signed, intermediate.key, intermediate.cert_path, intermediate.key_path)
    leaf = pki.make_cert(tmp_path, inter, "leaf", dns_names=("hac.example",))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(leaf.cert_path.read_bytes() + signed.public_bytes(serialization.Encoding.PEM))
    pair = connect(client_for(lab), ServerTLS(chain, leaf.key_path))
    assert peer_certificate_der(pair.client) == leaf.cert_der


# --- configuration errors -------------------------------------------------------------------

def test_missing_certificate_file_is_named(lab, tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=f"certificate file {missing}: cannot read"):
        ServerTLS(missing, lab["hac"].key_path)


def test_garbage_files_are_named(lab, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a pem\n")
    with pytest.raises(ConfigError, match=f"certificate file {junk}: no valid PEM"):
        ServerTLS(junk, lab["hac"].key_path)
    with pytest.raises(ConfigError, match=f"key file {junk}: no valid PEM private key"):
        ServerTLS(lab["hac"].cert_path, junk)
    with pytest.raises(ConfigError, match=f"CA file {junk}"):
        ClientTLS("hac.example", junk)
    with pytest.raises(ConfigError, match=f"client CA file {junk}"):
        server_for(lab["hac"], client_ca_file=junk)


def test_mismatched_key_is_named_and_not_shown(lab):
    key_path: Path = lab["ip"].key_path
    with pytest.raises(ConfigError) as caught:
        ServerTLS(lab["hac"].cert_path, key_path)
    message = str(caught.value)
    assert f"key file {key_path} does not match certificate file {lab['hac'].cert_path}" == message
    assert b"PRIVATE" not in message.encode()


def test_encrypted_key_refused(lab, tmp_path):
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(lab["hac"].key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-pass")))
    with pytest.raises(ConfigError, match="encrypted keys are not supported") as caught:
        ServerTLS(lab["hac"].cert_path, encrypted)
    assert "secret-pass" not in str(caught.value)


def test_option_errors(lab):
    with pytest.raises(ConfigError, match="require_client_cert needs a client CA"):
        server_for(lab["hac"], require_client_cert=True)
    with pytest.raises(ConfigError, match="ticket_key_lifetime"):
        server_for(lab["hac"], ticket_key_lifetime=0)
    with pytest.raises(ConfigError, match="both a certificate file and a key file"):
        client_for(lab, cert_file=lab["mn"].cert_path)


# -- ticket keys shared between HACs (hac.ticket_keys hands them out from the store) ----

KEY_A, KEY_B = bytes(range(80)), bytes(range(80, 160))


def test_the_ticket_key_is_set_in_openssl_exactly():
    control, why = ticket_key_setter()
    assert control is not None, why
    context = SSL.Context(SSL.TLS_METHOD)
    from aaa_mip6.twisted.tls import _FFI, _set_ticket_key
    _set_ticket_key(context, KEY_A)
    read_back = _FFI.new("unsigned char[80]")
    assert control(context._context, 58, 80, read_back) == 1  # SSL_CTRL_GET_TLSEXT_TICKET_KEYS
    assert bytes(_FFI.buffer(read_back)) == KEY_A
    with pytest.raises(ValueError, match="80 octets"):
        _set_ticket_key(context, KEY_A[:79])


@pytest.mark.parametrize("tls12_only", [True, False])
def test_hacs_with_the_shared_key_resume_each_others_tickets_across_a_rotation(
        lab, tls12_only):
    wall = FakeClock()
    one, other = (server_for(lab["hac"], ticket_key_lifetime=60, wall_clock=wall)
                  for _ in range(2))  # two contexts, as two HAC processes have
    for server_tls in (one, other):
        server_tls.use_ticket_key(960, KEY_A)
        server_tls.use_ticket_key(1020, KEY_B)  # the next period's, given ahead
    client_tls = client_for(lab)
    connect(client_tls, one, tls12_only=tls12_only).close()
    resumed = connect(client_tls, other, tls12_only=tls12_only)
    assert session_reused(resumed.client) and session_reused(resumed.server)
    resumed.close()
    wall.now = 1020  # the rotation: both HACs switch to KEY_B
    rotated = connect(client_tls, one, tls12_only=tls12_only)
    assert not session_reused(rotated.client)  # a ticket of KEY_A: one full handshake
    rotated.close()
    assert session_reused(connect(client_tls, other, tls12_only=tls12_only).client)


def test_without_shared_keys_two_contexts_do_not_resume_each_others_tickets(lab):
    one, other = server_for(lab["hac"]), server_for(lab["hac"])
    client_tls = client_for(lab)
    connect(client_tls, one).close()
    assert not session_reused(connect(client_tls, other).client)


def test_ticket_key_periods_are_aligned_for_every_host():
    from hac.ticket_keys import periods
    assert periods(7199.5, 3600) == (3600, 7200)
    assert periods(7200, 3600) == (7200, 10800)
    assert periods(10.2, 0.5) == (10, 11)  # at least one second


def test_without_a_usable_openssl_symbol_keys_stay_per_process(lab, monkeypatch, caplog):
    import aaa_mip6.twisted.tls as tls_module
    import hac.ticket_keys as ticket_keys
    from aaa_mip6.twisted.tls import _load_address

    assert _load_address("/nonexistent/library.so") is None
    monkeypatch.setattr(tls_module, "ticket_key_setter", lambda: (None, "no symbols"))
    monkeypatch.setattr(ticket_keys, "ticket_key_setter", lambda: (None, "no symbols"))
    server_tls = server_for(lab["hac"])
    with pytest.raises(ValueError, match="no symbols"):
        server_tls.use_ticket_key(0, KEY_A)
    assert not ticket_keys.SharedTicketKeys.available()
    assert "TLS ticket keys cannot be shared (no symbols)" in caplog.text
    assert KEY_A.hex() not in caplog.text


def test_symbols_are_found_by_their_whole_name_only():
    import struct

    from aaa_mip6.twisted.tls import _symbol_values

    names = b"\x00xSSL_CTX_ctrl\x00PyInit__rust\x00"  # a suffix-shared name at offset 2
    entries = [(1, 0, 0, 0, 0x10, 0), (2, 0, 0, 0, 0x20, 0), (15, 0, 0, 0, 0x30, 0),
               (0, 0, 0, 0, 0x40, 0)]
    table = b"".join(struct.pack("<IBBHQQ", *entry) for entry in entries)
    assert _symbol_values(table, names, "<", (b"SSL_CTX_ctrl", b"PyInit__rust")) == {
        b"SSL_CTX_ctrl": [0x20], b"PyInit__rust": [0x30]}
