"""What the MN's cores ask their shell (:mod:`mn.session`) to do and to know: the
mobility core's (:mod:`mn.mobility`) datagrams, inner packets and binding events, and
the rebootstrap policy's (:mod:`mn.rebootstrap`) decisions."""

from __future__ import annotations

from dataclasses import dataclass, field

from aaa_mip6.actions import Action
from aaa_mip6.sa import IPAddress

from .binding import Binding

# --------------------------------------------------------------------------- mobility


@dataclass(frozen=True, slots=True)
class Transmit(Action):
    """Send ``packet`` as one UDP datagram to the HA at ``address``/``port``."""

    packet: bytes = field(repr=False)
    address: IPAddress
    port: int


@dataclass(frozen=True, slots=True)
class Deliver(Action):
    """An inner IP packet that arrived through the tunnel, for the TUN device."""

    packet: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Registered(Action):
    """The HA accepted a Binding Update (first registration, refresh or handover)."""

    binding: Binding


@dataclass(frozen=True, slots=True)
class Deregistered(Action):
    """The HA accepted the de-registration (lifetime 0): no binding is left."""


@dataclass(frozen=True, slots=True)
class RegistrationFailed(Action):
    """The HA refused the Binding Update or never answered; the machine stops sending.

    ``status`` is the BA status (None when no BA came); ``reason`` a short word:
    ``rejected``, ``no-answer``, ``ipv4-home-address-refused``, ``zero-lifetime``,
    ``no-home-agent-address``. ``attempts`` counts the Binding Updates sent for a
    ``no-answer`` (None otherwise).
    """

    reason: str
    status: int | None = None
    attempts: int | None = None


@dataclass(frozen=True, slots=True)
class Retrying(Action):
    """No BA yet: the Binding Update goes out again, as transmission ``attempt`` of at
    most ``max_attempts``. ``next_in`` seconds until the next one or, when ``last``,
    until the machine gives up (for the user's progress line; nothing to perform)."""

    attempt: int
    max_attempts: int
    next_in: float
    last: bool


@dataclass(frozen=True, slots=True)
class Rebootstrap(Action):
    """Go back to the HAC for a new SA, then call :meth:`mn.mobility.MobilityMachine.rekey`.

    ``reason``: ``reinit-sa-with-hac`` (BA status 176), ``sa-expiry``,
    ``sequence-exhausted`` or ``home-agent-silent`` (no BA to any transmission).
    """

    reason: str


# --------------------------------------------------------------------------- rebootstrap


@dataclass(frozen=True)
class Wait(Action):
    """Start the next rebootstrap in ``seconds``; ``in_a_row`` went before it unregistered."""

    seconds: float
    in_a_row: int


@dataclass(frozen=True)
class GiveUp(Action):
    """End the session with ``reason`` (a RegistrationFailed reason); ``cause`` for the log."""

    reason: str
    cause: str
