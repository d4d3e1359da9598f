"""EAP-TLS/TTLS/PEAP framing, reassembly, the TTLS AVP codec, and EAP-TLS against an
in-memory TLS server (both directions fragmented)."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from OpenSSL import SSL

from aaa_mip6 import pki
from aaa_mip6.eap import EapError
from aaa_mip6.errors import ConfigError
from mn.eap import METHODS, EapCredentials
from mn.eap.tls import EapTls
from mn.eap.tlsbase import (
    FLAG_LENGTH, FLAG_MORE, FLAG_START, Reassembler, TlsFragment, fragment_message,
)
from mn.eap.peap import RESULT_SUCCESS, EapPeap, decode_tlvs, result_tlv
from mn.eap.ttls import Avp, EapTtls, decode_avps, encode_avps

fragments = st.builds(
    TlsFragment,
    data=st.binary(max_size=64),
    start=st.booleans(),
    more=st.booleans(),
    message_length=st.none() | st.integers(0, 2**32 - 1),
    version=st.integers(0, 7),
)


@given(fragments)
def test_fragment_round_trip(fragment):
    assert TlsFragment.decode(fragment.encode()) == fragment


@given(st.binary(max_size=32))
def test_fragment_decode_garbage_raises_only_eap_error(data):
    try:
        fragment = TlsFragment.decode(data)
    except EapError:
        return
    assert fragment.encode()[1:] == data[1:]


def test_fragment_flags_on_the_wire():
    encoded = TlsFragment(b"ab", start=True, more=True, message_length=7, version=1).encode()
    assert encoded == bytes([FLAG_LENGTH | FLAG_MORE | FLAG_START | 1]) + b"\0\0\0\x07ab"
    with pytest.raises(EapError):
        TlsFragment.decode(b"")
    with pytest.raises(EapError):
        TlsFragment.decode(bytes([FLAG_LENGTH, 0, 0]))


@given(st.binary(max_size=3000), st.integers(1, 1100))
def test_fragment_message_reassembles(message, size):
    parts = fragment_message(message, size)
    assert all(len(part.data) <= size for part in parts)
    assert all(part.more for part in parts[:-1]) and not parts[-1].more
    if len(parts) > 1:
        assert parts[0].message_length == len(message)
    reassembler = Reassembler()
    results = [reassembler.add(part) for part in parts]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1] == message


@given(st.data())
def test_any_fragmentation_reassembles(data):
    """Any split of a record, with L on the first fragment or on all, joins to it."""
    message = data.draw(st.binary(min_size=1, max_size=2000))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(message) - 1))) if len(message) > 1
                  else [])
    length_on_all = data.draw(st.booleans())
    pieces = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)])]
    reassembler = Reassembler()
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        length = len(message) if index == 0 or length_on_all else None
        result = reassembler.add(TlsFragment(piece, more=not last, message_length=length))
        assert result == (message if last else None)
    assert not reassembler.in_progress


@given(st.lists(st.binary(max_size=40), max_size=12), st.integers(0, 200))
def test_reassembler_garbage_raises_only_eap_error(raw_fragments, bound):
    reassembler = Reassembler(max_message=bound)
    for raw in raw_fragments:
        try:
            message = reassembler.add(TlsFragment.decode(raw))
        except EapError:
            continue
        assert message is None or len(message) <= bound


@pytest.mark.parametrize("fragments, why", [
    ([TlsFragment(b"x", more=True, message_length=100_000)], "bound"),
    ([TlsFragment(b"x" * 10, more=True, message_length=5)], "longer than announced"),
    ([TlsFragment(b"xx", more=True, message_length=5), TlsFragment(b"y")], "shorter"),
    ([TlsFragment(b"xx", more=True, message_length=5),
      TlsFragment(b"y", more=True, message_length=6)], "length changed"),
    ([TlsFragment(b"", more=True)], "empty M fragment"),
    ([TlsFragment(b"xx", more=True), TlsFragment(b"", start=True)], "Start inside"),
    ([TlsFragment(b"x" * 40, more=True), TlsFragment(b"x" * 40)], "no L, over bound"),
])
def test_reassembler_rejects(fragments, why):
    reassembler = Reassembler(max_message=64)
    with pytest.raises(EapError):
        for fragment in fragments:
            reassembler.add(fragment)
    assert not reassembler.in_progress, why
    assert reassembler.add(TlsFragment(b"ok")) == b"ok"  # usable again afterwards


avps = st.builds(Avp, code=st.integers(0, 2**32 - 1), data=st.binary(max_size=40),
                 vendor_id=st.integers(0, 2**32 - 1), mandatory=st.booleans())


@given(st.lists(avps, max_size=5))
def test_avp_round_trip(avp_list):
    encoded = encode_avps(avp_list)
    assert len(encoded) % 4 == 0
    assert decode_avps(encoded) == avp_list


@given(st.binary(max_size=64))
def test_avp_decode_garbage_raises_only_eap_error(data):
    try:
        decoded = decode_avps(data)
    except EapError:
        return
    assert encode_avps(decoded)[:len(data)].rstrip(b"\0") == data.rstrip(b"\0")


def test_avp_wire_format_and_unpadded_last_avp():
    avp = Avp(26, b"\x05S=00", vendor_id=311)
    assert avp.encode() == bytes.fromhex("0000001a c0000011 00000137 0553 3d3030 000000")
    assert decode_avps(avp.encode()[:-3]) == [avp]
    with pytest.raises(EapError):
        decode_avps(bytes.fromhex("00000001 40000004"))  # length below the header


# --- EAP-TLS against an in-memory server -------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("eap-tls-pki")
    ca = pki.make_ca(directory)
    other_ca = pki.make_ca(directory, "other-ca", common_name="another CA")
    return {
        "ca": ca,
        "server": pki.make_cert(directory, ca, "server", dns_names=("radius.example.org",)),
        "client": pki.make_cert(directory, ca, "client", client=True),
        "other_server": pki.make_cert(directory, other_ca, "other-server"),
    }


class InMemoryEapTlsServer:
    """Just enough EAP-TLS server (RFC 5216/9190) to drive the peer, fragmenting too."""

    def __init__(self, lab, server, version: int, fragment_size: int):
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_max_proto_version(version)
        context.set_cipher_list(b"ECDHE-ECDSA-AES128-GCM-SHA256")  # a SHA-256 PRF for TLS 1.2
        context.use_certificate_file(str(server.cert_path))
        context.use_privatekey_file(str(server.key_path))
        context.load_verify_locations(str(lab["ca"].cert_path))
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
        self.connection = SSL.Connection(context, None)
        self.connection.set_accept_state()
        self.fragment_size = fragment_size
        self.reassembler = Reassembler()
        self.outgoing: list[TlsFragment] = []
        self.established = False
        self.fragmented_in = False

    def respond(self, type_data: bytes) -> bytes | None:
        """The next request's Type-Data, or None for EAP-Success."""
        fragment = TlsFragment.decode(type_data)
        if self.outgoing:
            assert fragment == TlsFragment()
            return self.outgoing.pop(0).encode()
        self.fragmented_in |= fragment.more
        message = self.reassembler.add(fragment)
        if message is None:
            return TlsFragment().encode()
        if not message:
            return None  # the peer acknowledged our last flight
        self.connection.bio_write(message)
        if not self.established:
            try:
                self.connection.do_handshake()
            except SSL.WantReadError:
                pass
            else:
                self.established = True
                if self.connection.get_protocol_version_name() == "TLSv1.3":
                    self.connection.send(b"\x00")  # RFC 9190 commitment message
        output = b""
        while True:
            try:
                output += self.connection.bio_read(65536)
            except SSL.WantReadError:
                break
        if not output:
            return None
        self.outgoing = fragment_message(output, self.fragment_size)
        return self.outgoing.pop(0).encode()


def _p_sha256(secret: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.2 PRF (RFC 5246 §5), written out to check the exporter independently."""
    output, a = b"", seed
    while len(output) < length:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        output += hmac.new(secret, a + seed, hashlib.sha256).digest()
    return output[:length]


def _credentials(lab, tls_max_version: str) -> EapCredentials:
    return EapCredentials("mn@example.org", client_cert=lab["client"].cert_path,
                          client_key=lab["client"].key_path, ca_cert=lab["ca"].cert_path,
                          tls_max_version=tls_max_version)


def _run(method: EapTls, server: InMemoryEapTlsServer) -> int:
    request, identifier = TlsFragment(start=True).encode(), 1
    while request is not None and identifier < 100:
        request = server.respond(method.process(identifier, request))
        identifier += 1
    return identifier


@pytest.mark.parametrize("version_name, version", [("1.2", SSL.TLS1_2_VERSION),
                                                   ("1.3", SSL.TLS1_3_VERSION)])
def test_eap_tls_in_memory_fragmented_both_ways(lab, version_name, version):
    method = EapTls(_credentials(lab, version_name))
    method.fragment_size = 200
    server = InMemoryEapTlsServer(lab, lab["server"], version, fragment_size=150)
    _run(method, server)
    assert server.fragmented_in and method.done and method.failure is None
    connection = server.connection
    if version_name == "1.2":
        expected = _p_sha256(connection.master_key(), b"client EAP encryption"
                             + connection.client_random() + connection.server_random(), 64)
    else:
        expected = connection.export_keying_material(
            b"EXPORTER_EAP_TLS_Key_Material", 128, b"\x0d")[:64]
    assert method.msk == expected


def test_eap_tls_rejects_server_from_another_ca(lab):
    method = EapTls(_credentials(lab, "1.3"))
    server = InMemoryEapTlsServer(lab, lab["other_server"], SSL.TLS1_3_VERSION, 1020)
    response, identifier = method.process(1, TlsFragment(start=True).encode()), 1
    while method.failure is None and identifier < 10:
        identifier += 1
        response = method.process(identifier, server.respond(response))
    assert method.failure is not None and "certificate verify failed" in method.failure
    assert not method.done and method.msk is None
    assert TlsFragment.decode(response).data[:1] == b"\x15"  # our TLS alert goes out
    with pytest.raises(EapError):
        method.process(identifier + 1, TlsFragment().encode())


def test_ack_expected_while_sending_fragments(lab):
    method = EapTls(_credentials(lab, "1.2"))
    method.fragment_size = 10
    first = TlsFragment.decode(method.process(1, TlsFragment(start=True).encode()))
    assert first.more and first.message_length > 10
    with pytest.raises(EapError):
        method.process(2, TlsFragment(b"not an ack").encode())


@pytest.mark.parametrize("change", [
    {"ca_cert": None}, {"client_cert": None}, {"tls_max_version": "1.1"},
])
def test_eap_tls_configuration_errors(lab, change):
    fields = dict(identity="mn", client_cert=lab["client"].cert_path,
                  client_key=lab["client"].key_path, ca_cert=lab["ca"].cert_path)
    with pytest.raises(ConfigError):
        EapTls(EapCredentials(**{**fields, **change}))


def test_requests_before_start_are_rejected(lab):
    method = EapTls(_credentials(lab, "1.3"))
    with pytest.raises(EapError):
        method.process(1, TlsFragment(b"\x16\x03\x03").encode())


# --- PEAP TLVs and garbage into a running method -----------------------------

tlvs = st.lists(st.tuples(st.integers(0, 0x3FFF), st.booleans(), st.binary(max_size=20)),
                max_size=5)


def _encode_tlvs(items) -> bytes:
    return b"".join(
        struct.pack("!HH", kind | (0x8000 if mandatory else 0), len(value)) + value
        for kind, mandatory, value in items
    )


@given(tlvs)
def test_tlv_round_trip(items):
    assert decode_tlvs(_encode_tlvs(items)) == items


@given(st.binary(max_size=40))
def test_tlv_decode_garbage_raises_only_eap_error(data):
    try:
        decoded = decode_tlvs(data)
    except EapError:
        return
    assert _encode_tlvs(decoded) == data


def test_result_tlv_wire_format():
    assert result_tlv(RESULT_SUCCESS) == bytes.fromhex("8003 0002 0001")
    assert decode_tlvs(result_tlv(2)) == [(3, True, b"\x00\x02")]


@given(st.lists(st.binary(max_size=80), min_size=1, max_size=4))
def test_garbage_after_start_raises_only_eap_error(lab, requests):
    method = EapTls(_credentials(lab, "1.3"))
    method.process(1, TlsFragment(start=True).encode())
    for identifier, request in enumerate(requests, start=2):
        try:
            response = method.process(identifier, request)
        except EapError:
            continue
        assert isinstance(response, bytes) and response
    assert not method.done


@pytest.mark.parametrize("method, fields", [
    (EapTtls, {"phase2": None, "password": "pw"}),
    (EapTtls, {"phase2": "chap", "password": "pw"}),
    (EapTtls, {"phase2": "pap", "password": None}),
    (EapPeap, {"password": None}),
])
def test_password_method_configuration_errors(lab, method, fields):
    with pytest.raises(ConfigError):
        method(EapCredentials("mn", ca_cert=lab["ca"].cert_path, **fields))


def test_tls_based_methods_are_registered():
    assert METHODS["tls"] is EapTls and METHODS["ttls"] is EapTtls and METHODS["peap"] is EapPeap
