"""TLS for the MN-HAC channel (RFC 6618 §5.1): pyOpenSSL connection creators for Twisted.

:class:`ServerTLS` is the HAC side and :class:`ClientTLS` the MN side; both plug into
``twisted.protocols.tls.TLSMemoryBIOFactory`` (or ``SSL4ServerEndpoint`` /
``wrapClientTLS``). Policy shared by both: TLS 1.2 and 1.3 only, ECDHE with AEAD
ciphers for TLS 1.2, no renegotiation (RFC 6618 forbids it at the HAC).

The MN checks the HAC certificate against its CA file and RFC 6125 with the rules of
RFC 6618: the reference identity is a DNS name or an IP address, matched only against
subjectAltName dNSName / iPAddress entries, never a wildcard, never the CN.

Session resumption (RFC 5077 tickets) keeps re-bootstrapping cheap. The server rotates
its ticket keys by building a new context every ``ticket_key_lifetime`` seconds: a
ticket resumes until the next rotation, after which the MN does one full handshake and
gets a new ticket. By default OpenSSL makes fresh random keys for every context, so only
processes forked after a :class:`ServerTLS` is built resume each other's tickets, until
their first rotation. :meth:`ServerTLS.use_ticket_key` instead sets keys that every HAC
shares (the store hands them out, :mod:`hac.ticket_keys`), so any HAC process on any host
resumes any MN's ticket, rotation after rotation.

pyOpenSSL and cryptography's bindings expose neither ``SSL_CTX_set_tlsext_ticket_keys``
(a macro over ``SSL_CTX_ctrl``) nor the ticket key callback, and cryptography's wheels
link OpenSSL statically without exporting it. :func:`ticket_key_setter` finds
``SSL_CTX_ctrl`` in that library's symbol table (pyelftools), at the load address
``/proc/self/maps`` gives, checked against an exported symbol; without it (a stripped
build) each process keeps its own keys, as before.

Both ends let OpenSSL free a connection's read and write buffers while it is idle
(``SSL_MODE_RELEASE_BUFFERS``), which matters for a HAC holding many idle connections.

A full handshake offers OpenSSL's default groups, the post-quantum hybrid X25519MLKEM768
first, whose key share makes the ClientHello about 1.5 kB. Beside a session ticket the MN
offers X25519 and P-256 only (:data:`RESUMPTION_GROUPS`): the ClientHello with its ticket
then fits in one SYN (TCP Fast Open, :mod:`aaa_mip6.twisted.fastopen`), and a resumed
session's keys still depend on the resumption secret of the hybrid handshake that made the
ticket. Should the HAC not resume, that handshake had classical key exchange only:
:meth:`ClientTLS.resumption_refused` says so and forgets the session, and the MN connects
again for a full hybrid handshake.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.bindings.openssl.binding import Binding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.hazmat import (
    DNS_ID,
    DNSPattern,
    IPAddress_ID,
    IPAddressPattern,
    verify_service_identity,
)
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from zope.interface import implementer

from aaa_mip6.errors import ConfigError

TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!PSK"
"""TLS 1.2 cipher suites: ephemeral ECDH key exchange and AEAD only (TLS 1.3 suites are all AEAD)."""

DEFAULT_TICKET_KEY_LIFETIME = 3600.0
"""Seconds a server context (and so its session ticket keys) is used for new connections."""

RESUMPTION_GROUPS = b"X25519:P-256"
"""The groups the MN offers beside a session ticket: one small key share (see above)."""

_SESSION_ID_CONTEXT = b"aaa-mip6 HAC"
_TICKET_READ_STATE = b"SSLv3/TLS read server session ticket"
_END_OF_EARLY_DATA_STATE = b"TLSv1.3 write end of early data"  # sent iff accepted
MAX_EARLY_DATA = 1024
"""Octets of early data a ticket allows: an MN Init (RFC 6618 §5.3) is a few hundred."""
_OPENSSL = Binding().lib  # the OpenSSL pyOpenSSL uses, for calls it does not wrap
_FFI = Binding().ffi
_SET_TICKET_KEYS = 59  # SSL_CTRL_SET_TLSEXT_TICKET_KEYS
TICKET_KEY_SIZE = 80  # 16 octets key name, 32 HMAC key, 32 AES key (OpenSSL 3)


@functools.cache
def ticket_key_setter() -> tuple[Callable | None, str]:
    """``(SSL_CTX_ctrl, "")`` of the OpenSSL pyOpenSSL uses, or ``(None, why not)``."""
    from cryptography.hazmat.bindings import _rust
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    path = os.path.realpath(_rust.__file__)
    try:
        with open(path, "rb") as library:
            elf = ELFFile(library)
            symbols = elf.get_section_by_name(".symtab")
            if symbols is None or elf.elfclass != 64:
                return None, f"{path} has no 64-bit symbol table"
            found = _symbol_values(symbols.data(), elf.get_section(symbols["sh_link"]).data(),
                                   "<" if elf.little_endian else ">",
                                   (b"SSL_CTX_ctrl", b"PyInit__rust"))
        base = _load_address(path)
        exported = ctypes.cast(ctypes.CDLL(path).PyInit__rust, ctypes.c_void_p).value
    except (OSError, AttributeError, ValueError, ELFError) as error:
        return None, f"cannot read {path} ({error})"
    if base is None:
        return None, f"{path} is not in /proc/self/maps"
    if len(found[b"SSL_CTX_ctrl"]) != 1 or found[b"PyInit__rust"] != [exported - base]:
        return None, f"SSL_CTX_ctrl not found in {path}"
    address = base + found[b"SSL_CTX_ctrl"][0]
    return _FFI.cast("long (*)(SSL_CTX *, int, long, void *)", address), ""


def _symbol_values(table: bytes, names: bytes, byte_order: str,
                   wanted: tuple[bytes, ...]) -> dict[bytes, list[int]]:
    """The values of the ``wanted`` symbols of an ELF64 symbol table (its bytes, and its
    string table's): one pass with ``struct`` over ~36 000 entries takes ~15 ms, where
    pyelftools' own name lookup builds a map of every symbol first (~0.7 s at each start)."""
    found: dict[bytes, list[int]] = {name: [] for name in wanted}
    lengths = {len(name) for name in wanted}
    for name_offset, _, _, _, value, _ in struct.iter_unpack(byte_order + "IBBHQQ", table):
        for length in lengths:
            name = names[name_offset:name_offset + length + 1]
            if name[-1:] == b"\0" and name[:-1] in found:
                found[name[:-1]].append(value)
    return found


def _load_address(path: str) -> int | None:
    """Where the shared object ``path`` is mapped in this process (its offset-0 mapping)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == path and int(fields[2], 16) == 0:
                return int(fields[0].partition("-")[0], 16)
    return None


def _set_ticket_key(context: SSL.Context, key: bytes) -> None:
    """Make ``context`` seal and open session tickets with ``key``."""
    control, why = ticket_key_setter()
    if control is None or len(key) != TICKET_KEY_SIZE:
        raise ValueError(why or f"a ticket key has {TICKET_KEY_SIZE} octets")
    if control(context._context, _SET_TICKET_KEYS, TICKET_KEY_SIZE, _FFI.from_buffer(key)) != 1:
        raise ValueError("OpenSSL refused the ticket key")


class CertificateRejected(SSL.Error):
    """The peer certificate failed the chain check or the RFC 6125 identity check.

    A subclass of ``OpenSSL.SSL.Error`` so that Twisted's TLS layer fails the handshake
    with it: the application protocol's ``connectionLost`` gets this error and message.
    Its ``args`` hold an OpenSSL-style error queue, which is what Twisted inspects.
    """

    def __init__(self, message: str):
        super().__init__([("aaa_mip6.tls", "certificate check", message)])
        self.message = message

    def __str__(self) -> str:
        return self.message


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None


def load_certificates(path: Path, what: str = "certificate file") -> list[x509.Certificate]:
    """Read one or more PEM certificates (a leaf and its chain, or CA certificates).

    A system CA bundle holds old roots with a serial number of 0, which cryptography
    accepts with a CryptographyDeprecationWarning on stderr; that warning is not the
    operator's to act on, so it is silenced here (and only that one).
    """
    data = _read(path, what)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't "
                                    "positive", category=CryptographyDeprecationWarning)
            certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{what} {path}: no valid PEM certificate") from None
    return certificates


def load_private_key(path: Path) -> PrivateKeyTypes:
    """Read an unencrypted PEM private key; errors name the file, never its content."""
    data = _read(path, "key file")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"key file {path}: encrypted keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"key file {path}: no valid PEM private key") from None


def _load_identity(cert_file: Path, key_file: Path) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
    chain = load_certificates(cert_file)
    key = load_private_key(key_file)
    if chain[0].public_key() != key.public_key():
        raise ConfigError(f"key file {key_file} does not match certificate file {cert_file}")
    return chain, key


def _base_context(chain: list[x509.Certificate], key: PrivateKeyTypes | None,
                  trusted: list[x509.Certificate]) -> SSL.Context:
    """A context with the policy both ends share, their own certificate and trusted CAs."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_max_proto_version(SSL.TLS1_3_VERSION)
    context.set_cipher_list(TLS12_CIPHERS)
    context.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    if chain:
        context.use_certificate(chain[0])
        for intermediate in chain[1:]:
            context.add_extra_chain_cert(intermediate)
        context.use_privatekey(key)
    store = context.get_cert_store()
    for ca in trusted:
        store.add_cert(crypto.X509.from_cryptography(ca))
    return context


def _connection(tls) -> SSL.Connection:
    """The OpenSSL connection behind a Twisted TLS transport (or the connection itself)."""
    return tls if isinstance(tls, SSL.Connection) else tls.getHandle()


def _der(certificate: x509.Certificate | None) -> bytes | None:
    return None if certificate is None else certificate.public_bytes(serialization.Encoding.DER)


def peer_certificate_der(tls) -> bytes | None:
    """DER of the certificate the peer presented (the MN hashes this for tls-server-end-point)."""
    return _der(_connection(tls).get_peer_certificate(as_cryptography=True))


def own_certificate_der(tls) -> bytes | None:
    """DER of this end's own certificate (the HAC hashes this for tls-server-end-point)."""
    return _der(_connection(tls).get_certificate(as_cryptography=True))


def session_reused(tls) -> bool:
    """Whether the handshake resumed an earlier session (pyOpenSSL has no wrapper for this)."""
    return bool(_OPENSSL.SSL_session_reused(_connection(tls)._ssl))


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """The HAC's TLS: certificate (with chain) and key from PEM files, optional client certificates.

    ``client_ca_file`` turns on client-certificate verification against that CA file; a
    client without a certificate is still accepted unless ``require_client_cert``.
    Raises :class:`ConfigError` naming the file for an unreadable or mismatched file.
    Keys of its own are per process (build it before forking workers so that they share
    them until their first rotation); :meth:`use_ticket_key` shares keys across HACs.
    """

    def __init__(self, cert_file: Path, key_file: Path, *, client_ca_file: Path | None = None,
                 require_client_cert: bool = False,
                 ticket_key_lifetime: float = DEFAULT_TICKET_KEY_LIFETIME,
                 early_data: bool = False, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time):
        if require_client_cert and client_ca_file is None:
            raise ConfigError("require_client_cert needs a client CA file to verify against")
        if not ticket_key_lifetime > 0:
            raise ConfigError("ticket_key_lifetime must be a positive number of seconds")
        self._chain, self._key = _load_identity(cert_file, key_file)
        self._client_cas = [] if client_ca_file is None else load_certificates(
            client_ca_file, "client CA file")
        self._require_client_cert = require_client_cert
        self._ticket_key_lifetime = ticket_key_lifetime
        self.early_data = early_data
        self._clock = clock
        self._wall_clock = wall_clock
        self._shared_keys: dict[float, bytes] = {}  # start (POSIX seconds) -> ticket key
        self._key_started: float | None = None  # of the shared key the context uses
        self._rotate()

    def reload(self, cert_file: Path, key_file: Path) -> None:
        """Read the certificate and key again (e.g. renewed in place): connections made
        from now on use them; established ones keep theirs. Raises :class:`ConfigError`
        naming the file, and keeps the old ones, for a file that is unreadable or a key
        that does not match."""
        self._chain, self._key = _load_identity(cert_file, key_file)
        self._rotate()

    def use_ticket_key(self, started: float, key: bytes) -> None:
        """Seal tickets with ``key`` (:data:`TICKET_KEY_SIZE` octets, a secret) from the
        POSIX time ``started`` on, instead of keys of this process's own; keys may be given
        ahead of their start. Raises ValueError when this OpenSSL build cannot take them
        (:func:`ticket_key_setter`)."""
        control, why = ticket_key_setter()
        if control is None:
            raise ValueError(why)
        self._shared_keys[started] = bytes(key)
        for old in sorted(self._shared_keys)[:-2]:  # the current and the next are enough
            del self._shared_keys[old]

    def _shared_key_now(self) -> tuple[float, bytes] | None:
        now = self._wall_clock()
        due = [started for started in self._shared_keys if started <= now]
        return None if not due else (max(due), self._shared_keys[max(due)])

    @property
    def certificate_der(self) -> bytes:
        """DER of the HAC's own certificate, for the tls-server-end-point channel binding."""
        return _der(self._chain[0])

    def _rotate(self) -> None:
        """Start a new context, with the shared ticket key now due, else with the fresh
        random ticket keys OpenSSL gives it."""
        context = _base_context(self._chain, self._key, self._client_cas)
        shared = self._shared_key_now()
        if shared is not None:
            _set_ticket_key(context, shared[1])
        self._key_started = None if shared is None else shared[0]
        context.set_options(SSL.OP_CIPHER_SERVER_PREFERENCE)
        context.set_session_id(_SESSION_ID_CONTEXT)
        if self.early_data:
            # Tickets that allow early data are single-use (RFC 8446 §8.1): OpenSSL then
            # issues stateful tickets, keeps their sessions in this context's cache and
            # accepts early data only for one it can remove from there, so a replay is
            # rejected -- and a ticket resumes only in the process that issued it.
            _OPENSSL.SSL_CTX_set_max_early_data(context._context, MAX_EARLY_DATA)
            context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        else:
            # Tickets carry the session state, so no server-side session cache is needed.
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        context.set_timeout(max(1, int(self._ticket_key_lifetime)))
        if self._client_cas:
            for ca in self._client_cas:
                context.add_client_ca(ca)
            mode = SSL.VERIFY_PEER
            if self._require_client_cert:
                mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            context.set_verify(mode)
        self._context = context
        self._context_started = self._clock()

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:  # noqa: N802 (Twisted API)
        if self._shared_keys:
            shared = self._shared_key_now()
            if shared is not None and shared[0] != self._key_started:
                self._rotate()
        elif self._clock() - self._context_started >= self._ticket_key_lifetime:
            self._rotate()
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        return connection


def _reference_identity(host: str) -> DNS_ID | IPAddress_ID:
    """The RFC 6125 reference identity for ``host`` (from ``--hac HOST:PORT``): IP-ID or DNS-ID."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return IPAddress_ID(bare)
    except ValueError:
        pass
    if "*" in bare:
        raise ConfigError(f"HAC name {host!r}: a reference identity cannot hold a wildcard")
    try:
        return DNS_ID(bare.removesuffix("."))
    except (ValueError, UnicodeError, ImportError):
        raise ConfigError(f"HAC name {host!r} is neither a DNS name nor an IP address") from None


def _acceptable_patterns(certificate: x509.Certificate) -> list[DNSPattern | IPAddressPattern]:
    """The subjectAltName DNS-IDs and IP-IDs RFC 6618 lets match: no wildcards, no CN."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    patterns: list[DNSPattern | IPAddressPattern] = []
    for dns_name in names.get_values_for_type(x509.DNSName):
        if "*" in dns_name:
            continue
        try:
            patterns.append(DNSPattern.from_bytes(dns_name.encode("utf-8")))
        except CertificateError:
            continue
    patterns.extend(IPAddressPattern(ip) for ip in names.get_values_for_type(x509.IPAddress))
    return patterns


def check_identity(certificate: x509.Certificate, host: str) -> None:
    """Raise :class:`CertificateRejected` unless ``certificate`` is for ``host`` (RFC 6125 as RFC 6618 restricts it)."""
    _check_reference(certificate, _reference_identity(host), host)


def _check_reference(certificate: x509.Certificate, reference: DNS_ID | IPAddress_ID,
                     host: str) -> None:
    """:func:`check_identity` against the reference identity already made from ``host``."""
    patterns = _acceptable_patterns(certificate)
    if not patterns:
        raise CertificateRejected(
            f"HAC certificate has no usable subjectAltName dNSName or iPAddress for {host!r} "
            "(wildcards and the CN are not accepted)")
    try:
        verify_service_identity(patterns, obligatory_ids=[reference], optional_ids=[])
    except VerificationError:
        raise CertificateRejected(f"HAC certificate does not match {host!r}") from None


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLS:
    """The MN's TLS to one HAC: verifies it against ``ca_file`` and ``host``; resumes sessions.

    ``host`` is the DNS name or IP address of ``--hac HOST:PORT``. ``cert_file`` and
    ``key_file`` give an optional client certificate. Use one instance per HAC: it keeps
    the newest session ticket and offers it on the next connection. ``keylog`` is a
    pyOpenSSL key-log callback (:func:`aaa_mip6.keylog.tls_keylog_writer`) for Wireshark.
    """

    def __init__(self, host: str, ca_file: Path, *, cert_file: Path | None = None,
                 key_file: Path | None = None, keylog=None):
        if (cert_file is None) != (key_file is None):
            raise ConfigError("a client certificate needs both a certificate file and a key file")
        self._reference = _reference_identity(host)
        self.host = host
        chain, key = _load_identity(cert_file, key_file) if cert_file else ([], None)
        self._context = _base_context(chain, key, load_certificates(ca_file, "CA file"))
        self._context.set_verify(SSL.VERIFY_PEER, self._verify)
        if keylog is not None:
            self._context.set_keylog_callback(keylog)
        self._session: SSL.Session | None = None
        self._ticket_offers: weakref.WeakSet[SSL.Connection] = weakref.WeakSet()
        self._early_data_accepted: weakref.WeakSet[SSL.Connection] = weakref.WeakSet()

    def _verify(self, connection, certificate, error_number, depth, preverify_ok) -> bool:
        if not preverify_ok:
            raise CertificateRejected(
                f"HAC certificate chain rejected at depth {depth}: "
                f"{_verify_error_name(error_number)}")
        if depth == 0:
            _check_reference(certificate.to_cryptography(), self._reference, self.host)
        return True

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:  # noqa: N802 (Twisted API)
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        if isinstance(self._reference, DNS_ID):
            connection.set_tlsext_host_name(self._reference.hostname)
        if self._session is not None:
            connection.set_session(self._session)
            _OPENSSL.SSL_set1_curves_list(connection._ssl, RESUMPTION_GROUPS)
            self._ticket_offers.add(connection)
        connection.set_info_callback(self._session_keeper())
        return connection

    def resumption_refused(self, tls) -> bool:
        """Whether the finished handshake of ``tls`` offered a ticket (so classical groups
        only) and the HAC made a full handshake instead. Then the session is forgotten: drop
        the connection and connect again, for a full handshake with the hybrid group."""
        connection = _connection(tls)
        if connection not in self._ticket_offers or session_reused(connection):
            return False
        self._session = None
        return True

    def early_data_accepted(self, tls) -> bool:
        """Whether the HAC accepted the early data ``tls`` sent (it then got EndOfEarlyData)."""
        return _connection(tls) in self._early_data_accepted

    def _session_keeper(self):
        """An info callback that keeps the session once the HAC's ticket has been processed.

        The ticket arrives inside the handshake in TLS 1.2 and after it in TLS 1.3;
        either way OpenSSL has stored it when it next leaves its state machine.
        """
        ticket_seen = False

        def keep(connection: SSL.Connection, where: int, _return_code: int) -> None:
            nonlocal ticket_seen
            state = connection.get_state_string() if where & SSL.SSL_CB_LOOP else None
            if state == _TICKET_READ_STATE:
                ticket_seen = True
            elif state == _END_OF_EARLY_DATA_STATE:
                self._early_data_accepted.add(connection)
            elif where & SSL.SSL_CB_EXIT and ticket_seen:
                ticket_seen = False
                self._session = connection.get_session()

        return keep


def _verify_error_name(error_number: int) -> str:
    """The X509_V_ERR_* name of an OpenSSL verification error number."""
    for name in dir(SSL.X509VerificationCodes):
        if getattr(SSL.X509VerificationCodes, name) == error_number:
            return f"X509_V_{name}"
    return f"X509 error {error_number}"
