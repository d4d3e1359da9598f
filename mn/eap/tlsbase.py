"""The TLS-over-EAP engine that EAP-TLS, EAP-TTLS and PEAPv0 share.

Three parts, all sans-I/O:

* :class:`TlsFragment`, :func:`fragment_message` and :class:`Reassembler`: the
  framing of RFC 5216 §3.1 (flags L, M, S, the PEAP/TTLS version bits and the
  TLS Message Length), used unchanged by RFC 5281 §9.1 and PEAPv0.
* :class:`TlsEngine`: a pyOpenSSL client on memory BIOs: TLS records in,
  TLS records out, keys exported at the end.
* :class:`TlsMethodBase`: an :class:`~mn.eap.EapMethod` that runs the engine
  over the framing; EAP-TLS, TTLS and PEAP add only what happens once the
  handshake is over.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from OpenSSL import SSL

from aaa_mip6.eap import EapError
from aaa_mip6.errors import ConfigError

from . import EapCredentials, EapMethod

FLAG_LENGTH = 0x80  # L: the TLS Message Length field is present
FLAG_MORE = 0x40  # M: more fragments follow
FLAG_START = 0x20  # S: the server starts the method
VERSION_MASK = 0x07  # PEAP/TTLS version; reserved (zero) in EAP-TLS

DEFAULT_FRAGMENT_SIZE = 1020
DEFAULT_MAX_MESSAGE = 64 * 1024

_LENGTH = struct.Struct("!I")
_TLS_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
_READ_CHUNK = 16 * 1024

TLS13_EXPORTER_LABEL = b"EXPORTER_EAP_TLS_Key_Material"  # RFC 9190 §2.3, RFC 9427 §2.1
MSK_LENGTH = 64


class TunnelFailure(EapError):
    """The TLS handshake, the tunnel or the inner method failed.

    The method then answers the request (with its TLS alert, or empty) and
    expects EAP-Failure, as RFC 5216 §2.1.3 and RFC 5281 §11.2.4 ask.
    """

    reason = "rejected"


@dataclass(frozen=True, slots=True)
class TlsFragment:
    """The Type-Data of one EAP-TLS/TTLS/PEAP packet."""

    data: bytes = b""
    start: bool = False
    more: bool = False
    message_length: int | None = None  # present iff the L flag is set
    version: int = 0

    def encode(self) -> bytes:
        flags = self.version & VERSION_MASK
        flags |= FLAG_START if self.start else 0
        flags |= FLAG_MORE if self.more else 0
        if self.message_length is None:
            return bytes([flags]) + self.data
        return bytes([flags | FLAG_LENGTH]) + _LENGTH.pack(self.message_length) + self.data

    @classmethod
    def decode(cls, type_data: bytes) -> TlsFragment:
        """Parse Type-Data; raise :class:`EapError` when it is too short for its flags."""
        if not type_data:
            raise EapError("TLS-based EAP packet without its Flags octet")
        flags = type_data[0]
        if not flags & FLAG_LENGTH:
            return cls(bytes(type_data[1:]), bool(flags & FLAG_START),
                       bool(flags & FLAG_MORE), None, flags & VERSION_MASK)
        if len(type_data) < 1 + _LENGTH.size:
            raise EapError("L flag set but the 4-octet TLS Message Length is missing")
        (length,) = _LENGTH.unpack_from(type_data, 1)
        return cls(bytes(type_data[1 + _LENGTH.size:]), bool(flags & FLAG_START),
                   bool(flags & FLAG_MORE), length, flags & VERSION_MASK)


def fragment_message(message: bytes, fragment_size: int = DEFAULT_FRAGMENT_SIZE,
                     version: int = 0) -> list[TlsFragment]:
    """Split one outgoing TLS message; the first of several fragments carries L."""
    if fragment_size < 1:
        raise ValueError("fragment_size must be positive")
    if len(message) <= fragment_size:
        return [TlsFragment(message, version=version)]
    chunks = [message[i:i + fragment_size] for i in range(0, len(message), fragment_size)]
    return [
        TlsFragment(chunk, more=index < len(chunks) - 1,
                    message_length=len(message) if index == 0 else None, version=version)
        for index, chunk in enumerate(chunks)
    ]


class Reassembler:
    """Joins the fragments of incoming TLS messages, with a bound on their size."""

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE):
        self.max_message = max_message
        self._parts: list[bytes] | None = None  # None: no message in progress
        self._received = 0
        self._expected: int | None = None

    @property
    def in_progress(self) -> bool:
        return self._parts is not None

    def add(self, fragment: TlsFragment) -> bytes | None:
        """Take one fragment; return the whole message once its last fragment is in.

        A bad fragment raises :class:`EapError` and drops the partial message.
        """
        try:
            return self._add(fragment)
        except EapError:
            self._abort()
            raise

    def _add(self, fragment: TlsFragment) -> bytes | None:
        if fragment.start and self.in_progress:
            raise EapError("Start flag inside a fragmented TLS message")
        if fragment.more and not fragment.data:
            raise EapError("fragment with the M flag but no TLS data")
        if self._parts is None:
            self._parts, self._received, self._expected = [], 0, fragment.message_length
            if self._expected is not None and self._expected > self.max_message:
                raise EapError(f"TLS Message Length {self._expected} exceeds "
                               f"the {self.max_message}-octet bound")
        elif fragment.message_length is not None and fragment.message_length != self._expected:
            raise EapError("TLS Message Length changed between fragments")
        self._parts.append(fragment.data)
        self._received += len(fragment.data)
        limit = self.max_message if self._expected is None else self._expected
        if self._received > limit:
            raise EapError(f"fragments carry more than the {limit} octets announced or allowed")
        if fragment.more:
            return None
        if self._expected is not None and self._received != self._expected:
            raise EapError(f"TLS message ended after {self._received} of "
                           f"{self._expected} announced octets")
        message = b"".join(self._parts)
        self._abort()
        return message

    def _abort(self) -> None:
        self._parts, self._received, self._expected = None, 0, None


def _tls_version(credentials: EapCredentials) -> int:
    try:
        return _TLS_VERSIONS[credentials.tls_max_version]
    except KeyError:
        raise ConfigError(
            f"tls_max_version must be one of {sorted(_TLS_VERSIONS)}, "
            f"not {credentials.tls_max_version!r}"
        ) from None


def client_context(credentials: EapCredentials, *, client_certificate: bool) -> SSL.Context:
    """A TLS 1.2+ client context that verifies the EAP server against ``ca_cert``."""
    if credentials.ca_cert is None:
        raise ConfigError("a TLS-based EAP method needs ca_cert to verify the EAP server")
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_max_proto_version(_tls_version(credentials))
    context.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_TICKET)
    try:
        context.load_verify_locations(str(credentials.ca_cert))
    except SSL.Error:
        raise ConfigError(f"ca_cert {credentials.ca_cert} is not a readable PEM CA file") from None
    context.set_verify(SSL.VERIFY_PEER)
    if client_certificate:
        if credentials.client_cert is None or credentials.client_key is None:
            raise ConfigError("EAP-TLS needs client_cert and client_key")
        try:
            context.use_certificate_chain_file(str(credentials.client_cert))
            context.use_privatekey_file(str(credentials.client_key))
            context.check_privatekey()
        except SSL.Error:
            raise ConfigError(
                f"client_cert {credentials.client_cert} and client_key "
                f"{credentials.client_key} are not a matching PEM certificate and key"
            ) from None
    return context


class TlsEngine:
    """A TLS client on memory BIOs: feed it records, take records out; no socket."""

    def __init__(self, context: SSL.Context):
        self._connection = SSL.Connection(context, None)
        self._connection.set_connect_state()
        self.established = False

    def start(self) -> None:
        """Produce the ClientHello (taken with :meth:`take_output`)."""
        self._advance()

    def receive(self, records: bytes) -> bytes:
        """Feed TLS records from the server; return any application data they carried."""
        if records:
            self._connection.bio_write(records)  # an empty write is an OpenSSL error
        if not self._advance():
            return b""
        received = []
        while True:
            try:
                received.append(self._connection.recv(_READ_CHUNK))
            except SSL.WantReadError:
                return b"".join(received)
            except SSL.ZeroReturnError:
                raise TunnelFailure("the EAP server closed the TLS tunnel") from None
            except SSL.Error as error:
                raise TunnelFailure(f"TLS tunnel failed: {_describe(error)}") from None

    def send(self, plaintext: bytes) -> None:
        """Encrypt application data for the server (taken with :meth:`take_output`)."""
        try:
            self._connection.sendall(plaintext)
        except SSL.Error as error:
            raise TunnelFailure(f"TLS tunnel failed: {_describe(error)}") from None

    def take_output(self) -> bytes:
        """All TLS records produced so far and not yet taken."""
        chunks = []
        while True:
            try:
                chunks.append(self._connection.bio_read(_READ_CHUNK))
            except SSL.WantReadError:
                return b"".join(chunks)

    @property
    def tls_version(self) -> str:
        """"TLSv1.2" or "TLSv1.3" once established."""
        return self._connection.get_protocol_version_name()

    def export_key(self, label: bytes, length: int, context: bytes | None = None) -> bytes:
        """RFC 5705 / RFC 8446 §7.5 exporter; ``context=None`` is the no-context form."""
        return self._connection.export_keying_material(label, length, context)

    def msk(self, type_code: int, tls12_label: bytes) -> bytes:
        """The 64-octet MSK: RFC 9190 §2.3 / RFC 9427 §2.1 for TLS 1.3, else the
        method's TLS 1.2 PRF label (RFC 5216 §2.3, RFC 5281 §8), which equals the
        RFC 5705 exporter without context."""
        if self.tls_version == "TLSv1.3":
            return self.export_key(TLS13_EXPORTER_LABEL, 128, bytes([type_code]))[:MSK_LENGTH]
        return self.export_key(tls12_label, MSK_LENGTH)

    def _advance(self) -> bool:
        """Drive the handshake; true once it is complete."""
        if self.established:
            return True
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            return False
        except SSL.Error as error:
            raise TunnelFailure(f"TLS handshake failed: {_describe(error)}") from None
        self.established = True
        return True


def _describe(error: SSL.Error) -> str:
    """OpenSSL's reason strings (e.g. 'certificate verify failed'); they hold no secrets."""
    entries = error.args[0] if error.args and isinstance(error.args[0], list) else []
    return ", ".join(str(entry[-1]) for entry in entries) or type(error).__name__


class TlsMethodBase(EapMethod):
    """Runs a :class:`TlsEngine` over the EAP-TLS framing.

    Subclasses set ``client_certificate`` and implement :meth:`_established`
    (called once, right after the handshake) and :meth:`_tunnel_data`
    (called with each non-empty piece of decrypted application data); both
    return plaintext to send back inside the tunnel. They call :meth:`_finish`
    when their side is over; ``done`` follows once the response's last
    fragment has gone out, since the peer refuses requests after ``done``.
    Responses always carry version 0: PEAPv0 and TTLSv0 are what this peer
    speaks, and the version bits are reserved (zero) in EAP-TLS.
    """

    client_certificate = False
    fragment_size = DEFAULT_FRAGMENT_SIZE
    max_message = DEFAULT_MAX_MESSAGE

    def __init__(self, credentials: EapCredentials):
        super().__init__(credentials)
        self._context = client_context(credentials, client_certificate=self.client_certificate)
        self._engine: TlsEngine | None = None
        self._reassembler = Reassembler(self.max_message)
        self._outgoing: list[TlsFragment] = []
        self.failure: str | None = None  # why the tunnel failed, for diagnostics
        self._finished = False  # done once the last fragment of the response is out

    @property
    def engine(self) -> TlsEngine:
        if self._engine is None:
            raise EapError("TLS-based EAP request before the Start request")
        return self._engine

    def process(self, identifier: int, type_data: bytes) -> bytes:
        fragment = TlsFragment.decode(type_data)
        if self.failure is not None:
            raise EapError("request after the TLS tunnel failed")
        if self._outgoing:
            if fragment.data or fragment.start or fragment.more:
                raise EapError("expected an empty acknowledgement of our TLS fragment")
            return self._next_fragment()
        if fragment.start:
            if self._engine is not None:
                raise EapError("second Start request in one TLS-based EAP method")
            self._engine = TlsEngine(self._context)
            self._engine.start()
            return self._transmit()
        engine = self.engine
        message = self._reassembler.add(fragment)
        if message is None:
            return TlsFragment().encode()  # acknowledge the fragment
        try:
            self._handle(engine, identifier, message)
        except TunnelFailure as failure:
            self.failure = str(failure)  # send our alert or an empty answer; Failure follows
        return self._transmit()

    def process_after_done(self, identifier: int, type_data: bytes) -> bytes:
        """TLS records that carry no data after the method is done -- e.g. the TLS 1.3
        NewSessionTickets hostapd sends in a request of their own after TTLS/PAP -- are
        read and answered with an empty response; tunnelled data is refused."""
        message = self._reassembler.add(TlsFragment.decode(type_data))
        if message is not None:
            try:
                data = self.engine.receive(message)
            except TunnelFailure as failure:
                raise EapError(f"after the method finished: {failure}") from None
            if data:
                raise EapError(f"{self.name}: {len(data)} octets of tunnelled data after the "
                               "method finished", reason="unexpected")
        return TlsFragment().encode()

    def _handle(self, engine: TlsEngine, identifier: int, message: bytes) -> None:
        was_established = engine.established
        application_data = engine.receive(message)
        reply = b""
        if engine.established and not was_established:
            reply += self._established(identifier)
        if application_data:
            reply += self._tunnel_data(identifier, application_data)
        if reply:
            engine.send(reply)

    def _transmit(self) -> bytes:
        self._outgoing = fragment_message(self.engine.take_output(), self.fragment_size)
        return self._next_fragment()

    def _next_fragment(self) -> bytes:
        fragment = self._outgoing.pop(0)
        self.done = self._finished and not self._outgoing
        return fragment.encode()

    def _finish(self) -> None:
        """Called by a subclass when its side of the method is over (RFC 4137 DONE)."""
        self._finished = True

    def _established(self, identifier: int) -> bytes:
        """The handshake just completed: derive keys, maybe start the inner exchange."""
        return b""

    def _tunnel_data(self, identifier: int, data: bytes) -> bytes:
        """Decrypted application data from the server; return the plaintext answer."""
        raise EapError(f"{self.name}: unexpected {len(data)} octets of tunnelled data")
