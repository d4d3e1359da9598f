"""Diameter messages (RFC 6733 §3, §4) from a byte stream and back, sans-I/O.

python-diameter supplies the message classes, AVP types and packer; this module adds
what a peer reading from a socket needs on top: framing of a TCP/TLS byte stream
(partial reads, several messages per read), header and AVP structure checks, and
typed errors. Whatever the bytes, :func:`decode_message` and
:meth:`MessageFramer.feed` raise only :class:`DiameterError`.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import struct
import time

from diameter.message import Avp, Message, MessageHeader, constants
from diameter.message.avp import AvpDecodeError, AvpEncodeError
from diameter.message.packer import ConversionError

from ..errors import InvalidInput

VERSION = 1
HEADER_LENGTH = 20
AVP_HEADER_LENGTH = 8
MAX_MESSAGE_LENGTH = 0xFFFFFF  # the 24-bit Message Length field
DEFAULT_MAX_MESSAGE_LENGTH = 1 << 20
"""What a peer accepts by default: EAP-TLS certificate chains fit many times over."""

COMMON_APPLICATION_ID = constants.APP_DIAMETER_COMMON_MESSAGES
RELAY_APPLICATION_ID = constants.APP_RELAY  # 0xffffffff: "every application" (§2.4)
TEST_APPLICATION_ID = 16777255
"""The application id the tests and the relay fixture use for a made-up application."""

SUCCESS = constants.E_RESULT_CODE_DIAMETER_SUCCESS
COMMAND_UNSUPPORTED = constants.E_RESULT_CODE_DIAMETER_COMMAND_UNSUPPORTED
UNABLE_TO_DELIVER = constants.E_RESULT_CODE_DIAMETER_UNABLE_TO_DELIVER
APPLICATION_UNSUPPORTED = constants.E_RESULT_CODE_DIAMETER_APPLICATION_UNSUPPORTED
INVALID_HDR_BITS = constants.E_RESULT_CODE_DIAMETER_INVALID_HDR_BITS
UNKNOWN_PEER = constants.E_RESULT_CODE_DIAMETER_UNKNOWN_PEER
ELECTION_LOST = constants.E_RESULT_CODE_DIAMETER_ELECTION_LOST
NO_COMMON_APPLICATION = constants.E_RESULT_CODE_DIAMETER_NO_COMMON_APPLICATION
UNABLE_TO_COMPLY = constants.E_RESULT_CODE_DIAMETER_UNABLE_TO_COMPLY
INVALID_AVP_VALUE = constants.E_RESULT_CODE_DIAMETER_INVALID_AVP_VALUE
INVALID_AVP_LENGTH = constants.E_RESULT_CODE_DIAMETER_INVALID_AVP_LENGTH
MISSING_AVP = constants.E_RESULT_CODE_DIAMETER_MISSING_AVP

_FLAG_REQUEST = MessageHeader.command_flag_request_bit
_FLAG_ERROR = MessageHeader.command_flag_error_bit

# Everything python-diameter (and the stdlib under it) raises on undecodable input.
_LIBRARY_ERRORS = (AvpDecodeError, AvpEncodeError, ConversionError, struct.error, ValueError,
                   TypeError, IndexError, UnicodeError, OverflowError, OSError, AttributeError)


class DiameterError(InvalidInput):
    """A Diameter message or byte stream that breaks RFC 6733 framing or AVP encoding.

    ``reason`` is one of ``bad-avp-length``, ``bad-avp-value``, ``malformed`` (message
    level: it was framed correctly, the connection can go on), ``bad-version``,
    ``bad-length`` (stream level: the connection must be closed) or ``too-long`` (an
    outgoing message over the limit).
    """


class SessionIds:
    """Session-Ids ``<origin-host>;<start time>;<counter>[;<suffix>]`` (RFC 6733 §8.8:
    globally and eternally unique, the first part the sender's identity)."""

    def __init__(self, origin_host: str, now: float | None = None):
        self._prefix = f"{origin_host};{int(time.time() if now is None else now) & 0xFFFFFFFF}"
        self._counter = itertools.count(1)

    def new(self, suffix: str | None = None) -> str:
        session_id = f"{self._prefix};{next(self._counter)}"
        return session_id if suffix is None else f"{session_id};{suffix}"


def error_result(error: DiameterError) -> int:
    """The Result-Code answering a request that failed with ``error``."""
    if error.reason == "missing-avp":
        return MISSING_AVP
    return INVALID_AVP_LENGTH if error.reason == "bad-avp-length" else INVALID_AVP_VALUE


class _HidePayloads(logging.Filter):
    """python-diameter logs undecodable AVP payloads verbatim; payloads may hold keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = "undecodable AVP value ignored (payload withheld)", ()
        return True


logging.getLogger("diameter.message.avp").addFilter(_HidePayloads())


def decode_header(data: bytes, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> MessageHeader:
    """The 20-octet header at the start of ``data``, checked: Version 1, a sane Length."""
    if len(data) < HEADER_LENGTH:
        raise DiameterError(f"Diameter header needs {HEADER_LENGTH} octets, got {len(data)}",
                            reason="bad-length")
    header = MessageHeader.from_bytes(data[:HEADER_LENGTH])
    if header.version != VERSION:
        raise DiameterError(f"Diameter version must be 1, not {header.version}",
                            reason="bad-version")
    if header.length < HEADER_LENGTH or header.length % 4:
        raise DiameterError(f"Diameter message length {header.length} is not a multiple of 4 "
                            f"of at least {HEADER_LENGTH}", reason="bad-length")
    if header.length > max_length:
        raise DiameterError(f"Diameter message length {header.length} exceeds {max_length}",
                            reason="bad-length")
    return header


def _check_avps(data: bytes, where: str) -> None:
    """Walk one level of AVPs: each header complete, each length inside ``data`` (§4.1)."""
    position = 0
    while position < len(data):
        if len(data) - position < AVP_HEADER_LENGTH:
            raise DiameterError(f"{where}: truncated AVP header at offset {position}",
                                reason="bad-avp-length")
        code, flags_length = struct.unpack_from("!II", data, position)
        flags, length = flags_length >> 24, flags_length & 0xFFFFFF
        minimum = AVP_HEADER_LENGTH + (4 if flags & Avp.avp_flag_vendor else 0)
        padded = (length + 3) & ~3
        if length < minimum or position + padded > len(data):
            raise DiameterError(f"{where}: AVP {code} has a bad length {length}",
                                reason="bad-avp-length")
        position += padded


def decode_message(data: bytes) -> Message:
    """One whole message (as :class:`MessageFramer` yields it) as a python-diameter Message.

    Known commands come back as their typed classes (e.g. ``DeviceWatchdogRequest``),
    others as ``UndefinedMessage``; unknown AVPs stay in ``message.avps``.
    """
    header = decode_header(data, MAX_MESSAGE_LENGTH)
    if header.length != len(data):
        raise DiameterError(f"Diameter length field {header.length} does not match "
                            f"{len(data)} octets", reason="bad-length")
    if header.command_flags & _FLAG_REQUEST and header.command_flags & _FLAG_ERROR:
        raise DiameterError("a request must not have the E bit set (RFC 6733 §3)")
    _check_avps(data[HEADER_LENGTH:], f"command {header.command_code}")
    try:
        return Message.from_bytes(data)
    except _LIBRARY_ERRORS:
        raise DiameterError(f"command {header.command_code}: an AVP value does not decode",
                            reason="bad-avp-value") from None


def encode_message(message: Message, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH) -> bytes:
    """The wire form of ``message``; refuses one that a conforming peer could not frame."""
    data = message.as_bytes()
    if len(data) > max_length:
        raise DiameterError(f"Diameter message of {len(data)} octets exceeds {max_length}",
                            reason="too-long")
    return data


class MessageFramer:
    """Cuts a Diameter byte stream into whole messages, whatever the read boundaries.

    After a :class:`DiameterError` the stream has lost its framing: close the connection.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_MESSAGE_LENGTH):
        self.max_length = max_length
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received octets; return every message now complete, in order."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER_LENGTH:
            length = decode_header(bytes(self._buffer[:HEADER_LENGTH]), self.max_length).length
            if len(self._buffer) < length:
                break
            messages.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        return messages

    @property
    def buffered(self) -> int:
        """Octets held for a message not yet complete."""
        return len(self._buffer)


# --- helpers to build and read messages -------------------------------------------------


def avp_values(message: Message, code: int, vendor_id: int = 0) -> list:
    """Decoded values of every top-level AVP ``code`` (of ``vendor_id``) in ``message``.

    Raises :class:`DiameterError` when one of them does not decode as its type.
    """
    try:
        return [avp.value for avp in message.avps
                if avp.code == code and avp.vendor_id == vendor_id]
    except _LIBRARY_ERRORS:
        raise DiameterError(f"AVP {code} does not decode as its type",
                            reason="bad-avp-value") from None


def group_values(avps: list[Avp], *codes: int, vendor_id: int = 0) -> list:
    """Decoded values of the AVPs in a Grouped AVP's value whose code is one of ``codes``."""
    try:
        return [avp.value for avp in avps if avp.code in codes and avp.vendor_id == vendor_id]
    except _LIBRARY_ERRORS:
        raise DiameterError(f"AVP {codes} in a group does not decode as its type",
                            reason="bad-avp-value") from None


def avp_value(message: Message, code: int, vendor_id: int = 0, default=None):
    """The value of the first top-level AVP ``code``, or ``default``."""
    values = avp_values(message, code, vendor_id)
    return values[0] if values else default


def result_code(message: Message) -> int | None:
    """Result-Code (or Experimental-Result-Code) of an answer, None if it has neither."""
    code = avp_value(message, constants.AVP_RESULT_CODE)
    if code is not None:
        return code
    for group in avp_values(message, constants.AVP_EXPERIMENTAL_RESULT):
        for code in group_values(group, constants.AVP_EXPERIMENTAL_RESULT_CODE):
            return code
    return None


def as_text(value) -> str:
    """An identity AVP value (DiameterIdentity is bytes in python-diameter) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def as_address(value) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An Address AVP value as python-diameter decodes it, (family, text), as an address."""
    try:
        return ipaddress.ip_address(value[1])
    except (ValueError, TypeError, IndexError):
        raise DiameterError("an Address AVP holds no IPv4 or IPv6 address",
                            reason="bad-avp-value") from None


def new_avp(code: int, value, vendor_id: int = 0, *, mandatory: bool | None = None) -> Avp:
    """An AVP from python-diameter's dictionary with ``value`` set."""
    return Avp.new(code, vendor_id, value=value, is_mandatory=mandatory)


def new_request(command_code: int, application_id: int, avps: list[Avp], *,
                proxiable: bool = True) -> Message:
    """A request of any command, e.g. one python-diameter has no class for."""
    header = MessageHeader(command_code=command_code, application_id=application_id)
    header.is_request = True
    header.is_proxyable = proxiable
    return Message(header, list(avps))


def new_answer(request: Message, result: int, origin_host: str, origin_realm: str,
               avps: list[Avp] = (), *, error_message: str | None = None) -> Message:
    """An answer to ``request``: its identifiers and P bit, Session-Id first, Result-Code.

    Protocol errors (3xxx) get the E bit (RFC 6733 §7.1.3).
    """
    header = MessageHeader(command_code=request.header.command_code,
                           application_id=request.header.application_id,
                           hop_by_hop_identifier=request.header.hop_by_hop_identifier,
                           end_to_end_identifier=request.header.end_to_end_identifier)
    header.is_proxyable = request.header.is_proxyable
    header.is_error = 3000 <= result < 4000
    first = []
    session_id = next((avp for avp in request.avps if avp.code == constants.AVP_SESSION_ID), None)
    if session_id is not None:
        first.append(session_id)
    first += [new_avp(constants.AVP_RESULT_CODE, result),
              new_avp(constants.AVP_ORIGIN_HOST, origin_host.encode()),
              new_avp(constants.AVP_ORIGIN_REALM, origin_realm.encode())]
    if error_message:
        first.append(new_avp(constants.AVP_ERROR_MESSAGE, error_message))
    return Message(header, first + list(avps))
