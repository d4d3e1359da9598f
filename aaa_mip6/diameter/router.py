"""Request routing and the pending-request table of a Diameter node, sans-I/O.

The :class:`Router` picks an Open peer for each request (RFC 6733 §6.1):
Destination-Host if that peer is connected, else a peer of the Destination-Realm,
else the peers configured for that realm (typically a relay or proxy agent), else
the default route (``"*"``) or any connected relay. It keeps every request until its
answer, its timeout, or failover: when a connection is suspect or closed, its
unanswered requests go to another candidate with the T flag set and the same
End-to-End Identifier (RFC 6733 §5.5.4). A request with no candidate waits for a
peer to open, within its timeout.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from diameter.message import Message, constants

from . import codec
from .peer import PeerConnection, PeerNotOpen

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_ROUTE = "*"


class RequestFailed(Exception):
    """A request that got no answer; the message says why (never a key or password)."""


class RequestTimedOut(RequestFailed):
    """No answer within the request timeout (the peer or the path to it is down)."""


@dataclass
class PendingRequest:
    """A request the router still owes an answer for."""

    token: int
    request: Message
    deadline: float
    connection: PeerConnection | None = None
    hop_by_hop: int | None = None  # on ``connection``
    tried: set[str] = field(default_factory=set)

    @property
    def destination(self) -> str:
        realm = codec.avp_value(self.request, constants.AVP_DESTINATION_REALM, default=b"?")
        return codec.as_text(realm)


class Router:
    """Routes requests to Open peer connections and tracks them until answered.

    ``routes`` maps a Destination-Realm (or ``"*"``) to Origin-Hosts of peers to use
    for it, in order of preference.
    """

    def __init__(self, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 routes: dict[str, list[str]] | None = None):
        if not request_timeout > 0:
            raise ValueError("the request timeout must be a positive number of seconds")
        self.request_timeout = request_timeout
        self._routes = {realm: list(hosts) for realm, hosts in (routes or {}).items()}
        self._open: dict[str, PeerConnection] = {}
        self._pending: dict[int, PendingRequest] = {}
        self._tokens = itertools.count(1)

    @property
    def open_peers(self) -> dict[str, PeerConnection]:
        return dict(self._open)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def timer(self) -> float | None:
        """The earliest request deadline."""
        return min((p.deadline for p in self._pending.values()), default=None)

    def submit(self, request: Message, now: float) -> int:
        """Take a request; returns the token its outcome will be reported under.

        Raises DiameterError (``too-long``) for a request that cannot be encoded.
        """
        token = next(self._tokens)
        pending = PendingRequest(token, request, now + self.request_timeout)
        self._pending[token] = pending
        try:
            self._dispatch(pending)
        except codec.DiameterError:
            del self._pending[token]
            raise
        return token

    def answered(self, token) -> PendingRequest | None:
        """The request ``token`` got its answer: forget it (None if it already timed out)."""
        return self._pending.pop(token, None)

    def handle_timer(self, now: float) -> list[PendingRequest]:
        """Remove and return every request whose deadline has passed (due at :meth:`timer`)."""
        expired = [p for p in self._pending.values() if p.deadline <= now]
        for pending in expired:
            del self._pending[pending.token]
            if pending.connection is not None:
                pending.connection.forget(pending.hop_by_hop)
        return expired

    def peer_opened(self, connection: PeerConnection) -> None:
        """A connection reached Open: route to it, and send requests that were waiting."""
        self._open[connection.remote.origin_host] = connection
        for pending in list(self._pending.values()):
            if pending.connection is None:
                self._dispatch(pending)

    def peer_closed(self, connection: PeerConnection, tokens) -> None:
        """A connection is gone; ``tokens`` (its unanswered requests) fail over."""
        if connection.remote and self._open.get(connection.remote.origin_host) is connection:
            del self._open[connection.remote.origin_host]
        self.failover(connection, tokens)

    def failover(self, connection: PeerConnection, tokens) -> None:
        """Resend ``tokens`` withdrawn from ``connection`` to another candidate, T flag set."""
        for token in tokens:
            pending = self._pending.get(token)
            if pending is None or pending.connection is not connection:
                continue
            pending.connection = None
            pending.request.header.is_retransmit = True
            self._dispatch(pending)

    def candidates(self, request: Message, exclude: set[str] = frozenset()) -> list[PeerConnection]:
        """Open peers that may take ``request``, best first."""
        return self.candidates_to(
            request.header.application_id,
            codec.as_text(codec.avp_value(request, constants.AVP_DESTINATION_HOST, default=b"")),
            codec.as_text(codec.avp_value(request, constants.AVP_DESTINATION_REALM, default=b"")),
            exclude)

    def candidates_to(self, application: int, host: str, realm: str,
                      exclude: set[str] = frozenset()) -> list[PeerConnection]:
        """Open peers that may take a request of ``application`` for Destination-Host
        ``host`` (empty: none) in Destination-Realm ``realm``, best first."""
        usable = {name: connection for name, connection in self._open.items()
                  if name not in exclude and not connection.suspect
                  and connection.remote.supports(application)}
        chosen = [usable[host]] if host in usable else []
        chosen += [c for c in usable.values() if c.remote.origin_realm == realm]
        for route in (realm, DEFAULT_ROUTE):
            chosen += [usable[h] for h in self._routes.get(route, ()) if h in usable]
        chosen += [c for c in usable.values() if c.remote.is_relay]
        return list(dict.fromkeys(chosen))

    def _dispatch(self, pending: PendingRequest) -> None:
        for connection in self.candidates(pending.request, pending.tried):
            try:
                pending.hop_by_hop = connection.send_request(pending.request, pending.token)
            except PeerNotOpen:
                continue
            pending.connection = connection
            pending.tried.add(connection.remote.origin_host)
            return
        # No candidate now: wait for peer_opened. A peer tried before may be used again
        # once it comes back (the retransmission carries the T flag).
        pending.tried.clear()
