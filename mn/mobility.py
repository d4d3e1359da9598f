"""The MN's registration with its home agent (RFC 6275 §11.7, RFC 6618 §6), sans-I/O.

A :class:`MobilityMachine` holds one SA and the binding it keeps at the HA. The
shell feeds it the clock (POSIX seconds, the same scale as the SA's validity
end), the care-of address the MN is at, and the datagrams that came from the HA;
it answers with actions (:mod:`mn.actions`): datagrams to send (:class:`Transmit`),
inner packets for the TUN device (:class:`Deliver`), and what happened to the binding
(:class:`Registered`, :class:`Deregistered`, :class:`RegistrationFailed`,
:class:`Rebootstrap`). It never opens a socket or reads a clock; the shell
calls :meth:`MobilityMachine.handle_timer` at :meth:`MobilityMachine.timer`.

Rules it follows:

- Every Binding Update travels protected as PType 8 (Home Address option, then
  the Mobility Header). Each transmission, retransmissions included, carries a
  new BU sequence number (RFC 6275 §11.8); a BA matching any transmission of
  the pending update answers it, and its lifetime counts from when that
  transmission was sent (RFC 6275 §11.7.3).
- No answer: retransmit after 1.5 s (first registration) or 1 s, doubling up to
  32 s (RFC 6275 §12-13), and give up after ``max_attempts`` transmissions, or at the
  ``give_up_at`` time :meth:`MobilityMachine.register` was given, whichever is first.
  Every retransmission comes with :class:`Retrying` (attempt k of n, next try in s),
  so that a user sees progress rather than silence. With ``rebootstrap_when_silent``
  (an MN that stays registered), running out of transmissions asks for
  :class:`Rebootstrap` ``home-agent-silent`` instead: the HA may be gone, and the HAC
  names a live one (RFC 6618 leaves HA failure open; docs/protocol.md).
- A care-of address of an IP version the HA has no address of ends the registration
  at once (:class:`RegistrationFailed` ``no-home-agent-address``): nothing could reach it.
- Refresh at ``refresh_fraction`` of the granted lifetime, or sooner when the BA
  carries a Binding Refresh Advice.
- Status 135 (sequence number out of window): take the HA's sequence number and
  send again at once. Status 176 (REINIT_SA_WITH_HAC), the SA nearing its
  validity end, or the outbound sequence space running out: :class:`Rebootstrap`
  — go back to the HAC, then hand the new SA to :meth:`MobilityMachine.rekey`.
  Any other rejection ends the registration with :class:`RegistrationFailed`.
- A Binding Error with status 1 (RFC 6275 §6.1.9, §11.3.6: the HA has no binding for
  the home address, e.g. after it restarted) for this MN's home address, while the MN
  holds a binding and no BU is outstanding, sends a fresh BU at once instead of waiting
  for the refresh. Each one is counted in :attr:`MobilityMachine.counters` (also when
  no BU follows: one already outstanding, or the machine stopped).
- Handover: :meth:`MobilityMachine.register` with the new care-of address sends a
  new BU under the same SA; the SA is not tied to the care-of address.
- Dual stack (RFC 5555): an IPv4 home address rides in the IPv4 Home Address
  option (an IPv4-only MN uses ``::ffff:<IPv4 HoA>`` as its home address); an
  IPv4 care-of address sends to the HA's IPv4 address and adds the IPv4 Care-of
  Address option. The pseudo-header names the HA by its IPv6 address, or
  ``::ffff:<IPv4>`` when it has none (docs/protocol.md).
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from aaa_mip6.mobility import messages as mh
from aaa_mip6.mobility import payloads
from aaa_mip6.actions import Action
from aaa_mip6.addresses import as_ipv6
from aaa_mip6.errors import ConfigError, InvalidInput, PacketError
from aaa_mip6.iana import NEXT_HEADER_IPV4, NEXT_HEADER_IPV6
from aaa_mip6.sa import SCOPE_ALL, HomeAgent, IPAddress, SecurityAssociation
from aaa_mip6.transform import PType, SaEndpoint, SequenceExhausted

from .actions import (
    Deliver,
    Deregistered,
    Rebootstrap,
    Registered,
    RegistrationFailed,
    Retrying,
    Transmit,
)
from .binding import Binding

INITIAL_BINDACK_TIMEOUT_FIRST_REG = 1.5  # RFC 6275 §13, seconds
INITIAL_BINDACK_TIMEOUT = 1.0  # RFC 6275 §12
MAX_BINDACK_TIMEOUT = 32.0  # RFC 6275 §12
DEFAULT_LIFETIME = 600  # seconds asked for in each Binding Update
DEFAULT_REFRESH_FRACTION = 0.75
DEFAULT_SA_MARGIN = 60.0  # go back to the HAC this long before the SA's validity end
DEFAULT_MAX_ATTEMPTS = 7  # 1.5 + 3 + 6 + 12 + 24 + 32 + 32 s of silence before giving up

# --------------------------------------------------------------------------- inner packets


def inner_addresses(packet) -> tuple[int, IPAddress, IPAddress]:
    """(tunnel Next Header, source, destination) of an inner IPv4 or IPv6 packet."""
    if not packet:
        raise PacketError("empty inner packet")
    version = packet[0] >> 4
    if version == 6 and len(packet) >= 40:
        source, destination = IPv6Address(bytes(packet[8:24])), IPv6Address(bytes(packet[24:40]))
        return NEXT_HEADER_IPV6, source, destination
    if version == 4 and len(packet) >= 20:
        source, destination = IPv4Address(bytes(packet[12:16])), IPv4Address(bytes(packet[16:20]))
        return NEXT_HEADER_IPV4, source, destination
    raise PacketError(f"inner packet of {len(packet)} octets is not an IPv4 or IPv6 packet")


# --------------------------------------------------------------------------- the machine


@dataclass(slots=True)
class _Pending:
    """A Binding Update waiting for its BA, over all its transmissions."""

    lifetime: int  # seconds asked for; 0 de-registers
    care_of: IPAddress
    timeout: float
    give_up_at: float = float("inf")
    attempts: int = 0
    retry_at: float = 0.0
    sent: dict[int, float] = field(default_factory=dict)  # BU sequence -> when sent


class MobilityMachine:
    """One MN's registration at its HA under one SA (see the module docstring)."""

    def __init__(
        self,
        sa: SecurityAssociation,
        home_agent: HomeAgent,
        *,
        lifetime: int = DEFAULT_LIFETIME,
        refresh_fraction: float = DEFAULT_REFRESH_FRACTION,
        sa_margin: float = DEFAULT_SA_MARGIN,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        request_ipv4_home: bool = False,
        first_sequence: int | None = None,
        rebootstrap_when_silent: bool = False,
    ):
        if not 0 < refresh_fraction < 1:
            raise ConfigError(f"refresh_fraction must be between 0 and 1, got {refresh_fraction}")
        if lifetime <= 0:
            raise ConfigError(f"lifetime must be positive, got {lifetime}")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {max_attempts}")
        self.lifetime = lifetime
        self.refresh_fraction = refresh_fraction
        self.sa_margin = sa_margin
        self.max_attempts = max_attempts
        self.request_ipv4_home = request_ipv4_home
        self.rebootstrap_when_silent = rebootstrap_when_silent
        self.drops: Counter[str] = Counter()
        # verified Binding Errors (status 1, this home address), whether or not a BU followed
        self.counters: Counter[str] = Counter()
        self._sequence = secrets.randbelow(1 << 16) if first_sequence is None else first_sequence
        self._binding: Binding | None = None
        self._pending: _Pending | None = None
        self._care_of: IPAddress | None = None
        self._stopped = False
        self._exhausted = False
        self._use(sa, home_agent)

    def __repr__(self) -> str:
        return (
            f"MobilityMachine(spi={self.sa.spi}, home_address={self.home_address}, "
            f"care_of={self._care_of}, registered={self._binding is not None})"
        )

    def _use(self, sa: SecurityAssociation, home_agent: HomeAgent) -> None:
        if sa.home_address6 is None and sa.home_address4 is None:
            raise ConfigError(f"SA {sa.spi} carries no home address")
        if home_agent.address6 is None and home_agent.address4 is None:
            raise ConfigError("the home agent has no address")
        self.sa = sa
        self.home_agent = home_agent
        self.endpoint = SaEndpoint(sa, "mn")
        self.home_address = as_ipv6(sa.home_address6 or sa.home_address4)
        self._home_agent_id = home_agent.address6 or home_agent.address4
        self._sa_deadline = sa.validity_end.timestamp() - self.sa_margin
        self._exhausted = False

    # ---------------------------------------------------------------- state

    @property
    def binding(self) -> Binding | None:
        """The binding the HA last acknowledged (None before, after de-registration or expiry)."""
        return self._binding

    @property
    def care_of(self) -> IPAddress | None:
        return self._care_of

    def timer(self) -> float | None:
        """When :meth:`handle_timer` next has work: a retransmission, refresh, expiry or SA end."""
        if self._stopped:
            return None
        if self._exhausted:
            return float("-inf")  # due at once: the next handle_timer asks for a new SA
        times = [self._sa_deadline]
        if self._pending is not None:
            times.append(self._pending.retry_at)
        if self._binding is not None:
            times.append(self._binding.expires_at)
            if self._pending is None:
                times.append(self._binding.refresh_at)
        return min(times)

    def home_addresses(self) -> frozenset[IPAddress]:
        """Addresses inner packets may carry as the MN's own: the HoA and any IPv4 HoA."""
        addresses: set[IPAddress] = {self.home_address}
        if self.sa.home_address6 is None:
            addresses.add(self.sa.home_address4)
        if self._binding is not None and self._binding.home_address4 is not None:
            addresses.add(self._binding.home_address4)
        return frozenset(addresses)

    # ---------------------------------------------------------------- inputs

    def register(self, care_of: IPAddress, now: float, *,
                 give_up_at: float | None = None) -> list[Action]:
        """Register from ``care_of``: the first registration, or a handover to a new address.

        Without a BA by ``give_up_at`` (if given) the registration fails ``no-answer``
        even with attempts left: the caller's own deadline, e.g. a command's timeout.
        """
        self._stopped = False
        self._care_of = ip_address(care_of)
        if self.home_agent_address(self._care_of) is None:
            return self._stop(RegistrationFailed("no-home-agent-address"))
        return self._start(self.lifetime, now, give_up_at=give_up_at)

    def home_agent_address(self, care_of: IPAddress) -> IPAddress | None:
        """The HA's address of ``care_of``'s IP version (BUs from it go there), or None."""
        if isinstance(care_of, IPv4Address):
            return self.home_agent.address4
        return self.home_agent.address6

    def deregister(self, now: float) -> list[Action]:
        """Ask the HA to drop the binding (a BU with lifetime 0)."""
        if self._care_of is None:
            raise ValueError("deregister() before register()")
        self._stopped = False
        return self._start(0, now)

    def rekey(self, sa: SecurityAssociation, home_agent: HomeAgent, now: float) -> list[Action]:
        """Carry on under the SA a new bootstrap gave: re-register from the same care-of address.

        The BU sequence number goes on from the old SA's, so the HA's binding cache,
        keyed by home address, sees the new BU as the newest.
        """
        if self._care_of is None:
            raise ValueError("rekey() before register()")
        self._use(sa, home_agent)
        self._binding = None
        return self.register(self._care_of, now)

    def handle_timer(self, now: float) -> list[Action]:
        """Do what is due at ``now``: SA end, binding expiry, retransmission, refresh."""
        if self._stopped:
            return []
        if self._exhausted:
            return self._stop(Rebootstrap("sequence-exhausted"))
        if now >= self._sa_deadline:
            return self._stop(Rebootstrap("sa-expiry"))
        if self._binding is not None and now >= self._binding.expires_at:
            self._binding = None
        pending = self._pending
        if pending is not None:
            if now >= pending.give_up_at:
                return self._stop(RegistrationFailed("no-answer", attempts=pending.attempts))
            if now >= pending.retry_at and pending.attempts >= self.max_attempts:
                if self.rebootstrap_when_silent and pending.lifetime:
                    return self._stop(Rebootstrap("home-agent-silent"))
                return self._stop(RegistrationFailed("no-answer", attempts=pending.attempts))
            if now < pending.retry_at:
                return []
            pending.timeout = min(pending.timeout * 2, MAX_BINDACK_TIMEOUT)
            actions = self._transmit_update(now)
            if self._pending is None:  # the sequence space ran out instead
                return actions
            last = pending.attempts >= self.max_attempts or pending.retry_at >= pending.give_up_at
            return [*actions, Retrying(pending.attempts, self.max_attempts,
                                       pending.retry_at - now, last)]
        if self._binding is not None and now >= self._binding.refresh_at:
            return self._start(self.lifetime, now)
        return []

    def receive(self, datagram: bytes, now: float) -> list[Action]:
        """A datagram from the HA: a Binding Acknowledgement, a Binding Error or tunneled data.

        Anything that fails a check is dropped and counted in :attr:`drops` by reason.
        """
        try:
            opened = self.endpoint.unprotect(datagram)
            if opened.ptype is PType.MOBILITY:
                return self._signaled(opened.next_header, opened.payload, now)
            return self._delivered(opened.payload)
        except InvalidInput as error:
            self.drops[error.reason] += 1
            return []

    def encapsulate(self, packet: bytes, now: float) -> Transmit | None:
        """The datagram carrying an inner packet to the HA, protected as the SA's scope says.

        Only while a binding stands, and only for packets from one of the MN's home
        addresses; otherwise None, counted in :attr:`drops`.
        """
        try:
            next_header, source, _ = inner_addresses(packet)
        except PacketError as error:
            self.drops[error.reason] += 1
            return None
        if self._stopped or self._binding is None or now >= self._binding.expires_at:
            self.drops["not-registered"] += 1
            return None
        if source not in self.home_addresses():
            self.drops["not-home-address"] += 1
            return None
        if self.sa.scope == SCOPE_ALL:
            sealed = self._protect(PType.ENCRYPTED_IP, packet, next_header)
        else:
            sealed = self.endpoint.protect(PType.PLAIN, packet)
        if sealed is None:
            self.drops["sequence-exhausted"] += 1
            return None
        return self._to_home_agent(sealed)

    # ---------------------------------------------------------------- internals

    def _stop(self, action: Action) -> list[Action]:
        self._stopped = True
        self._pending = None
        return [action]

    def _start(self, lifetime: int, now: float, *,
               give_up_at: float | None = None) -> list[Action]:
        if now >= self._sa_deadline:
            return self._stop(Rebootstrap("sa-expiry"))
        if lifetime:
            lifetime = max(mh.LIFETIME_UNIT_SECONDS, min(lifetime, int(self._sa_deadline - now)))
        first = self._binding is None
        timeout = INITIAL_BINDACK_TIMEOUT_FIRST_REG if first else INITIAL_BINDACK_TIMEOUT
        self._pending = _Pending(lifetime, self._care_of, timeout)
        if give_up_at is not None:
            self._pending.give_up_at = give_up_at
        return self._transmit_update(now)

    def _transmit_update(self, now: float) -> list[Action]:
        pending = self._pending
        sequence = self._sequence
        self._sequence = (sequence + 1) & 0xFFFF
        update = mh.BindingUpdate(sequence, mh.lifetime_units(pending.lifetime),
                                  options=self._update_options(pending.care_of))
        next_header, payload = payloads.encode_binding_update_payload(
            self.home_address, self._home_agent_id, update
        )
        sealed = self._protect(PType.MOBILITY, payload, next_header)
        if sealed is None:
            return self._stop(Rebootstrap("sequence-exhausted"))
        pending.attempts += 1
        pending.sent[sequence] = now
        pending.retry_at = min(now + pending.timeout, pending.give_up_at)
        return [self._to_home_agent(sealed, pending.care_of)]

    def _update_options(self, care_of: IPAddress) -> tuple[mh.MobilityOption, ...]:
        options: list[mh.MobilityOption] = []
        if self.sa.home_address4 is not None:
            options.append(mh.IPv4HomeAddress(self.sa.home_address4))
        elif self.request_ipv4_home:
            options.append(mh.IPv4HomeAddress(IPv4Address(0)))
        if isinstance(care_of, IPv4Address):
            options.append(mh.IPv4CareOfAddress(care_of))
        return tuple(options)

    def _protect(self, ptype: PType, payload: bytes, next_header: int) -> bytes | None:
        try:
            return self.endpoint.protect(ptype, payload, next_header)
        except SequenceExhausted:
            self._exhausted = True
            return None

    def _to_home_agent(self, packet: bytes, care_of: IPAddress | None = None) -> Transmit:
        """Address a datagram to the HA over the care-of address's IP version (one the HA
        has: :meth:`register` checked)."""
        return Transmit(packet, self.home_agent_address(care_of or self._care_of),
                        self.home_agent.port)

    def _signaled(self, next_header: int, payload: bytes, now: float) -> list[Action]:
        home_address, message = payloads.decode_home_agent_payload(
            next_header, payload, self._home_agent_id)
        if home_address != self.home_address:
            raise PacketError(f"message for home address {home_address}", reason="wrong-hoa")
        if isinstance(message, mh.BindingError):
            return self._binding_error(message, now)
        return self._acknowledged(message, now)

    def _binding_error(self, error: mh.BindingError, now: float) -> list[Action]:
        """Status 1: the HA lost the binding; re-register now rather than at the refresh."""
        if error.status != mh.BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS:
            raise PacketError(f"Binding Error status {error.status}",
                              reason="unhandled-binding-error")
        if error.home_address != self.home_address:
            raise PacketError(f"Binding Error for {error.home_address}", reason="wrong-hoa")
        self.counters["binding-error"] += 1
        if self._stopped or self._binding is None or self._pending is not None:
            return []
        return self._start(self.lifetime, now)

    def _acknowledged(self, ack: mh.BindingAck, now: float) -> list[Action]:
        pending = self._pending
        if pending is None:
            raise PacketError("BA with no Binding Update pending", reason="unexpected-ba")
        if ack.status == mh.BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            if pending.attempts >= self.max_attempts:
                return self._stop(RegistrationFailed("rejected", ack.status))
            self._sequence = (ack.sequence + 1) & 0xFFFF
            return self._transmit_update(now)
        sent_at = pending.sent.get(ack.sequence)
        if sent_at is None:
            raise PacketError(f"BA for sequence {ack.sequence}, not sent", reason="stale-ba")
        if ack.status == mh.BindingAckStatus.REINIT_SA_WITH_HAC:
            return self._stop(Rebootstrap("reinit-sa-with-hac"))
        if not ack.accepted:
            self._binding = None
            return self._stop(RegistrationFailed("rejected", ack.status))
        self._pending = None
        if pending.lifetime == 0:
            self._binding = None
            return [Deregistered()]
        return self._bound(ack, pending, sent_at)

    def _bound(self, ack: mh.BindingAck, pending: _Pending, sent_at: float) -> list[Action]:
        if ack.lifetime_seconds == 0:
            self._binding = None
            return self._stop(RegistrationFailed("zero-lifetime", ack.status))
        ipv4_ack = next(
            (opt for opt in ack.options if isinstance(opt, mh.IPv4AddressAcknowledgement)), None
        )
        home_address4 = ipv4_ack.address if ipv4_ack is not None and ipv4_ack.accepted else None
        if self.sa.home_address6 is None and ipv4_ack is not None and not ipv4_ack.accepted:
            self._binding = None
            return self._stop(RegistrationFailed("ipv4-home-address-refused", ipv4_ack.status))
        refresh_after = ack.lifetime_seconds * self.refresh_fraction
        for option in ack.options:
            if isinstance(option, mh.BindingRefreshAdvice):
                refresh_after = min(refresh_after, option.interval_seconds)
        self._binding = Binding(
            spi=self.sa.spi,
            suite=self.sa.suite,
            home_address=self.home_address,
            home_address4=home_address4,
            care_of=pending.care_of,
            sequence=ack.sequence,
            status=int(ack.status),
            lifetime=ack.lifetime_seconds,
            registered_at=sent_at,
            refresh_at=sent_at + refresh_after,
            expires_at=sent_at + ack.lifetime_seconds,
            ipv4_status=None if ipv4_ack is None else int(ipv4_ack.status),
        )
        return [Registered(self._binding)]

    def _delivered(self, packet: bytes) -> list[Action]:
        _, _, destination = inner_addresses(packet)
        if destination not in self.home_addresses():
            raise PacketError(f"tunneled packet for {destination}", reason="not-home-address")
        return [Deliver(packet)]
