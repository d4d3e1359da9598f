"""RADIUS server list, retransmission policy, dead-server state and Identifier space, sans-I/O.

Time is always passed in (seconds, any monotonic origin), so the Twisted client
and the unit tests drive the same logic.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from ..addresses import parse_host_port
from ..backoff import Backoff
from ..errors import ConfigError
from ..iana import RADIUS_PORT

IDENTIFIERS = 256  # the 8-bit Identifier, per source and destination port pair


@dataclass(frozen=True, slots=True)
class RadiusServer:
    """One RADIUS server: an IP literal (its shared secret is tied to addresses) and port."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    secret: bytes = field(repr=False)

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ConfigError(f"RADIUS server port {self.port} is out of range")
        if not self.secret:
            raise ConfigError(f"RADIUS server {self.address} has an empty shared secret")

    @classmethod
    def parse(cls, text: str, secret: bytes, default_port: int = RADIUS_PORT) -> RadiusServer:
        """``ADDR``, ``ADDR:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address (``default_port``,
        1812 unless given)."""
        try:
            host, port = parse_host_port(text, lowest=1)
            address = ipaddress.ip_address(host)
        except ValueError as error:
            raise ConfigError(f"RADIUS server {text!r}: expected an IP address and port "
                              f"({error})") from None
        port_number = default_port if port is None else port
        return cls(address, port_number, secret)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retransmission and dead-server settings (RFC 5080 §2.2.1 style backoff)."""

    initial_timeout: float = 2.0  # wait for the first transmission's reply
    max_timeout: float = 16.0  # the doubling stops here
    transmissions: int = 3  # per server and request, the first one included
    jitter: float = 0.1  # each wait is scaled by a random factor in [1-jitter, 1+jitter]
    dead_after: int = 3  # consecutive requests left unanswered mark a server dead
    hold_down: float = 30.0  # a dead server is probed (or revived) this long after
    probe: bool = True  # probe a dead server with Status-Server (RFC 5997) before reuse

    def __post_init__(self):
        if self.initial_timeout <= 0 or self.max_timeout < self.initial_timeout:
            raise ConfigError("RADIUS timeouts must satisfy 0 < initial <= max")
        if self.transmissions < 1 or self.dead_after < 1 or self.hold_down <= 0:
            raise ConfigError("RADIUS transmissions, dead_after and hold_down must be positive")
        if not 0 <= self.jitter < 1:
            raise ConfigError("RADIUS jitter must be in [0, 1)")

    def timeout(self, transmission: int, random: float) -> float:
        """The wait after transmission number ``transmission`` (0 = first); ``random`` in [0, 1)."""
        backoff = Backoff(self.initial_timeout, self.max_timeout,
                          jitter=(1 - self.jitter, 1 + self.jitter))
        return backoff.delay(transmission, random)


class ServerHealth:
    """Whether one server is used: alive, or dead until ``dead_until``."""

    def __init__(self, policy: RetryPolicy):
        self._policy = policy
        self.alive = True
        self.dead_until = 0.0
        self._unanswered = 0

    def usable(self, now: float) -> bool:
        """Alive, or (when not probing) dead for longer than the hold-down."""
        if not self.alive and not self._policy.probe and now >= self.dead_until:
            self.record_answer()
        return self.alive

    def record_answer(self) -> None:
        """A genuine reply arrived: the server is alive."""
        self.alive = True
        self._unanswered = 0

    def record_timeout(self, now: float) -> bool:
        """A request went unanswered; True if that just marked the server dead."""
        self._unanswered += 1
        if self.alive and self._unanswered >= self._policy.dead_after:
            self.alive = False
            self.dead_until = now + self._policy.hold_down
            return True
        return False

    def record_probe_failed(self, now: float) -> None:
        """A Status-Server probe went unanswered: stay dead for another hold-down."""
        self.dead_until = now + self._policy.hold_down


def retry_after(healths: list[ServerHealth], now: float) -> int:
    """Whole seconds (>= 1) until the first dead server may be back."""
    return max(1, math.ceil(min(health.dead_until for health in healths) - now))


class IdentifierSpace:
    """Free Identifiers per (source port index, server) pair.

    Each pair has its own 256 Identifiers, so more source ports mean more
    outstanding requests. Identifiers are handed out round-robin so one is not
    reused right after it was released (RFC 5080 §2.2.2).
    """

    def __init__(self):
        self._used: dict[tuple[int, object], set[int]] = {}
        self._next: dict[tuple[int, object], int] = {}

    def allocate(self, ports: int, server: object) -> tuple[int, int] | None:
        """(port index, Identifier) for a new request to ``server``; None if all ``ports`` are full."""
        for port in range(ports):
            used = self._used.setdefault((port, server), set())
            if len(used) == IDENTIFIERS:
                continue
            identifier = self._next.get((port, server), 0)
            while identifier in used:
                identifier = (identifier + 1) % IDENTIFIERS
            used.add(identifier)
            self._next[(port, server)] = (identifier + 1) % IDENTIFIERS
            return port, identifier
        return None

    def release(self, port: int, server: object, identifier: int) -> None:
        self._used[(port, server)].discard(identifier)

    def outstanding(self) -> int:
        return sum(len(used) for used in self._used.values())
