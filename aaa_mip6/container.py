"""The MN-HAC message container of RFC 6618 §5.1 (Figure 3), sans-I/O.

Every request and response travels inside TLS as a 4-octet header
(Ver 3 bits = 0, Rsrvd 5 bits = 0, Identifier 1..255, Length of the Content
1..65535, network order) followed by the Content. There is no fragmentation,
so a stream reader must reassemble frames from arbitrary TLS record reads:
:class:`Deframer` does that. :class:`LockStep` keeps the identifier rule of
§5.3 (first request 1, each later request +1, a response copies its request's
identifier, at most 255 exchanges).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .errors import FramingError

HEADER_SIZE = 4
MAX_CONTENT = 65_535
MAX_IDENTIFIER = 255  # also the most exchanges one session may hold (§5.3)

_HEADER = struct.Struct("!BBH")


class Frame(NamedTuple):
    """One container: the request/response Identifier and its Content octets."""

    identifier: int
    content: bytes


def encode(identifier: int, content: bytes) -> bytes:
    """Frame ``content`` under ``identifier``; ValueError for values the format cannot carry."""
    if not 1 <= identifier <= MAX_IDENTIFIER:
        raise ValueError(f"Identifier must be 1..{MAX_IDENTIFIER}, not {identifier}")
    if not 1 <= len(content) <= MAX_CONTENT:
        raise ValueError(f"Content must be 1..{MAX_CONTENT} octets, not {len(content)}")
    return _HEADER.pack(0, identifier, len(content)) + content


class Deframer:
    """Turns a TLS byte stream into :class:`Frame` objects.

    Handles frames split across reads and several frames in one read. The
    first framing error is final: the peer is not speaking this protocol (or
    is hostile), so the connection must be closed; every later :meth:`feed`
    raises the same error again.
    """

    __slots__ = ("_buffer", "_failure", "_max_content")

    def __init__(self, max_content: int = MAX_CONTENT):
        if not 1 <= max_content <= MAX_CONTENT:
            raise ValueError(f"max_content must be 1..{MAX_CONTENT}, not {max_content}")
        self._max_content = max_content
        self._buffer = bytearray()
        self._failure: FramingError | None = None

    @property
    def failed(self) -> bool:
        return self._failure is not None

    @property
    def buffered(self) -> int:
        """Octets received that do not yet form a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received octets; return the frames they complete, in order."""
        if self._failure is not None:
            raise self._failure
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        start = 0
        try:
            while len(buffer) - start >= HEADER_SIZE:
                first, identifier, length = _HEADER.unpack_from(buffer, start)
                self._check_header(first, identifier, length)
                end = start + HEADER_SIZE + length
                if end > len(buffer):
                    break
                frames.append(Frame(identifier, bytes(buffer[start + HEADER_SIZE:end])))
                start = end
        except FramingError as error:
            self._failure = error
            buffer.clear()
            raise
        del buffer[:start]
        return frames

    def _check_header(self, first: int, identifier: int, length: int) -> None:
        if first >> 5:
            raise FramingError(f"container version {first >> 5} is not 0", reason="version")
        if first:
            raise FramingError("container Rsrvd bits are not 0")
        if identifier == 0:
            raise FramingError("container Identifier 0 is invalid")
        if length == 0:
            raise FramingError("container Length 0: the Content must be at least one octet")
        if length > self._max_content:
            raise FramingError(
                f"container Length {length} exceeds the limit of {self._max_content}",
                reason="oversize",
            )


class LockStep:
    """The identifier rule of RFC 6618 §5.3 for one session, for either side.

    The MN calls :meth:`next_request` before each request and
    :meth:`accept_response` on each response; the HAC calls
    :meth:`accept_request` on each request and answers with the identifier it
    returns. A peer that breaks the rule raises :class:`FramingError`; calling
    out of order on the local side raises RuntimeError (a bug, not input).
    """

    __slots__ = ("_last", "_outstanding")

    def __init__(self) -> None:
        self._last = 0
        self._outstanding = False

    @property
    def exchanges(self) -> int:
        """Requests sent or accepted so far in this session."""
        return self._last

    def next_request(self) -> int:
        """MN side: the identifier for the next request."""
        if self._outstanding:
            raise RuntimeError("a request is still waiting for its response")
        self._advance()
        return self._last

    def accept_response(self, identifier: int) -> None:
        """MN side: check a response's identifier against the outstanding request."""
        if not self._outstanding:
            raise FramingError("response without an outstanding request", reason="sequence")
        if identifier != self._last:
            raise FramingError(
                f"response Identifier {identifier} does not match request {self._last}",
                reason="sequence",
            )
        self._outstanding = False

    def accept_request(self, identifier: int) -> int:
        """HAC side: check a request's identifier; return the one its response copies."""
        if self._outstanding:
            raise RuntimeError("the previous request has not been answered")
        self._check_room()
        if identifier != self._last + 1:
            raise FramingError(
                f"request Identifier {identifier}, expected {self._last + 1}", reason="sequence"
            )
        self._advance()
        return identifier

    def answered(self) -> None:
        """HAC side: the response to the outstanding request has been sent."""
        if not self._outstanding:
            raise RuntimeError("no request is waiting for a response")
        self._outstanding = False

    def _check_room(self) -> None:
        if self._last == MAX_IDENTIFIER:
            raise FramingError(
                f"a session may hold at most {MAX_IDENTIFIER} exchanges", reason="sequence"
            )

    def _advance(self) -> None:
        self._check_room()
        self._last += 1
        self._outstanding = True
