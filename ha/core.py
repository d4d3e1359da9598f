"""The home agent's data plane (RFC 6618 §6, RFC 6275 §9.5.1, §10.3), sans-I/O.

Events go in — a UDP datagram from an MN (:meth:`HomeAgentCore.datagram_received`), a
packet read from the home network's TUN device (:meth:`HomeAgentCore.tun_packet`), the
answer to an SA lookup (:meth:`HomeAgentCore.sa_found`), a changed SA
(:meth:`HomeAgentCore.sa_changed`), the clock (:meth:`HomeAgentCore.handle_timer`, every
second) — and each returns the actions (:mod:`ha.actions`) the shell carries out in
order: :class:`SendDatagram`, :class:`WriteTun`, :class:`FetchSA`,
:class:`PersistSequences` (must be durable before the actions after it), :class:`Drop`,
:class:`Registered`, :class:`Deregistered`.

Rules the code follows (docs/configuration.md, section HA, says the same for operators):

- A drop changes nothing but its counter. A packet that is dropped after its ICV
  verified (wrong home address, spoofed inner source, bad BU) does not even move the
  replay window. The one exception: a verified PType 1 packet under an SA whose home
  address has no binding (``no-binding``, e.g. after an HA restart) is answered with a
  protected Binding Error, status 1 (RFC 6275 §9.3.3), at most once per SA per
  ``BINDING_ERROR_INTERVAL``; that uses an outbound sequence number.
- A BU whose Home Address option is not the home address the SA authorizes is dropped
  silently as ``unauthorized-hoa``, as an IPsec HA drops a packet its SA's selectors do
  not cover (RFC 4877 §4.4): the MN holds a valid SA, and a BA would tell a misbehaving
  MN nothing it needs.
- Binding Updates are answered per RFC 6275 §9.5.1/§10.3.1 with status 0, 129 (H flag
  not set: this HA only does home registrations), 135 (sequence number not newer than
  the binding's, modulo 2^16; the BA carries the last accepted number) or 176
  (REINIT_SA_WITH_HAC: SA revoked, within its reinit margin of its validity end, or
  fewer than ``sequence_margin`` sequence numbers left in either direction). The reinit
  margin is ``reinit_margin``, but at most half the lifetime the HA saw the SA with
  (validity end minus when it loaded the SA), so a short SA is not refused at once. Rejections
  are always answered; acceptances when the A flag asks.
- The granted lifetime is the asked one capped by ``max_lifetime`` and by the SA's
  validity end. Lifetime 0, or a care-of address equal to the home address, removes
  the binding (de-registration).
- The care-of address of a binding is the outer source address and port of the BU's
  datagram (NAT-friendly); the Alternate Care-of Address option is not used.
- PType 0 packets carry SPI 0, so they are matched to the binding whose care-of
  (address, port) sent them, and accepted only when that binding's SA has scope 0.
- Decapsulated packets go to the home network only if their source is a home address
  of the binding of the SA (or, for PType 0, of the care-of) they came under.
- A datagram under an SPI the core does not hold is parked behind a lookup (FetchSA),
  if :mod:`ha.admission` lets one start: not for an SPI the source lacked a moment ago
  (``negative-cached``), nor beyond the backlog (``lookup-backlog``; half of it is kept
  for BUs) or the source's lookup rate (``lookup-rate-limited``). A lookup that fails
  (``lookup-failed``) or runs longer than ``lookup_timeout`` (``lookup-timeout``) drops
  what was parked behind it.
- After a restart (:class:`~ha.sasource.SequenceLedger`) a reloaded SA refuses every
  inbound number up to the saved floor. Until one newer packet arrives, a BU in that
  range whose ICV verifies is answered with 176 and nothing else: after a crash the MN
  cannot know the floor, and a fresh SA from the HAC is the clean way out.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import math
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from aaa_mip6.actions import Action
from aaa_mip6.addresses import as_ipv6
from aaa_mip6.errors import InvalidInput, ReplayError
from aaa_mip6.iana import NEXT_HEADER_IPV4, NEXT_HEADER_IPV6
from aaa_mip6.mobility.messages import (
    BindingAck,
    BindingAckStatus,
    BindingError,
    BindingErrorStatus,
    BindingUpdate,
    BindingUpdateFlag,
    IPv4AckStatus,
    IPv4AddressAcknowledgement,
    IPv4HomeAddress,
    LIFETIME_UNIT_SECONDS,
    lifetime_units,
)
from aaa_mip6.mobility.payloads import (
    decode_binding_update_payload,
    encode_binding_ack_payload,
    encode_binding_error_payload,
)
from aaa_mip6.replay import DEFAULT_WINDOW, SEQ_LIMIT
from aaa_mip6.sa import SCOPE_ALL, SecurityAssociation
from aaa_mip6.suites import SUITES
from aaa_mip6.transform import (
    DEFAULT_REKEY_MARGIN,
    PacketHeader,
    PType,
    SaEndpoint,
    Sealer,
    SequenceExhausted,
    encode_plain,
    peek,
)

from .actions import (
    Deregistered,
    Drop,
    FetchSA,
    PersistSequences,
    Registered,
    SendDatagram,
    WriteTun,
)
from . import admission
from .admission import AdmissionPolicy, LookupAdmission
from .bindings import Binding, BindingCache, address_key

_SEQUENCE_MODULUS = 1 << 16
_UNSPECIFIED_IPV4 = IPv4Address(0)
# RFC 6275 §9.3.3 asks for Binding Errors to be rate-limited: at most one per SA per this.
BINDING_ERROR_INTERVAL = 1.0
STALE_ENDS_KEPT = 64  # beyond twice the SAs held, before the validity-end queue is rebuilt

_PLAIN, _MOBILITY = PType.PLAIN, PType.MOBILITY  # module globals: cheaper per packet

# Drop reasons of the packet and mobility codecs, as the HA counts them.
_REASONS = {"wrong-ptype": "scope-mismatch", "bad-padding": "malformed", "wrong-spi": "unknown-spi"}

# WriteTun((packet,)) without NamedTuple's Python-level __new__: one per tunneled packet.
_write_tun = functools.partial(tuple.__new__, WriteTun)


@dataclass(frozen=True, slots=True)
class HaPolicy:
    """The HA's settings; docs/configuration.md (section HA) names their config keys."""

    home_agent: IPv4Address | IPv6Address
    """The address the MNs know this HA by; the Mobility Header checksum covers it."""
    max_lifetime: int = 3600
    reinit_margin: float = 300.0
    sequence_margin: int = DEFAULT_REKEY_MARGIN
    replay_window: int = DEFAULT_WINDOW
    sequence_block: int = 4096
    forwarding: bool = True
    expired_sa_grace: float = 60.0
    max_pending_lookups: int = admission.MAX_PENDING
    max_parked_per_spi: int = 8
    lookup_timeout: float = 30.0
    negative_cache_ttl: float = admission.NEGATIVE_TTL
    negative_cache_size: int = admission.NEGATIVE_SIZE
    lookup_rate: float = admission.SOURCE_RATE
    lookup_burst: int = admission.SOURCE_BURST
    lookup_sources: int = admission.MAX_SOURCES

    def __post_init__(self):
        for name in ("max_lifetime", "sequence_block", "max_pending_lookups", "max_parked_per_spi"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.reinit_margin < 0 or self.expired_sa_grace < 0:
            raise ValueError("reinit_margin and expired_sa_grace cannot be negative")
        if self.lookup_timeout <= 0:
            raise ValueError("lookup_timeout must be positive")
        if not 0 <= self.sequence_margin < SEQ_LIMIT:
            raise ValueError("sequence_margin must be 0..2**32-1")
        self.admission()  # its own checks

    def admission(self) -> AdmissionPolicy:
        """The rules for looking up unknown SPIs (:mod:`ha.admission`)."""
        return AdmissionPolicy(
            max_pending=self.max_pending_lookups, negative_ttl=self.negative_cache_ttl,
            negative_size=self.negative_cache_size, source_rate=self.lookup_rate,
            source_burst=self.lookup_burst, max_sources=self.lookup_sources)


class _SaState:
    """What the HA holds for one SA: the SA, its endpoint and its sequence marks.

    ``loaded_at`` is when this HA first loaded the SA (after a restart: when it reloaded
    it); ``validity_end - loaded_at`` is the lifetime the reinit margin is scaled to.
    """

    __slots__ = (
        "sa", "endpoint", "validity_end", "usable_until", "home_key", "home_address",
        "inbound_floor", "outbound_ceiling", "restored_floor", "loaded_at", "binding_error_at",
    )

    def __init__(self, sa: SecurityAssociation, endpoint: SaEndpoint,
                 marks: tuple[int, int] | None, loaded_at: float):
        self.endpoint = endpoint
        self.loaded_at = loaded_at
        self.binding_error_at = -math.inf  # when the last Binding Error went out
        self.set_sa(sa)
        self.inbound_floor, self.outbound_ceiling = marks if marks else (-1, 0)
        self.restored_floor = self.inbound_floor if marks and self.inbound_floor >= 0 else None

    def set_sa(self, sa: SecurityAssociation) -> None:
        self.sa = sa
        self.validity_end = sa.validity_end.timestamp()
        self.usable_until = -math.inf if sa.revoked else self.validity_end
        if sa.home_address6 is not None:
            self.home_address = sa.home_address6
        elif sa.home_address4 is not None:
            self.home_address = as_ipv6(sa.home_address4)
        else:
            self.home_address = None
        self.home_key = None if self.home_address is None else address_key(self.home_address)

    def marks(self) -> PersistSequences:
        return PersistSequences(
            self.sa.spi, self.validity_end, self.inbound_floor, self.outbound_ceiling
        )


class _IpLayout(NamedTuple):
    """Where an IP version keeps its addresses, and the Next Header naming it in the tunnel."""

    next_header: int
    min_length: int
    source: slice
    destination: slice


_IP_LAYOUTS = {
    6: _IpLayout(NEXT_HEADER_IPV6, 40, slice(8, 24), slice(24, 40)),
    4: _IpLayout(NEXT_HEADER_IPV4, 20, slice(12, 16), slice(16, 20)),
}


def _ip_layout(packet: bytes) -> _IpLayout | None:
    """The layout of an IPv4 or IPv6 packet, None if it is neither or too short for one."""
    layout = _IP_LAYOUTS.get(packet[0] >> 4) if packet else None
    return layout if layout is not None and len(packet) >= layout.min_length else None


def _is_newer(sequence: int, last: int) -> bool:
    """RFC 6275 §9.5.1: ``sequence`` is greater than ``last`` modulo 2^16."""
    return 0 < (sequence - last) % _SEQUENCE_MODULUS < _SEQUENCE_MODULUS // 2


def _is_home(address: IPv4Address | IPv6Address | None, home_address: IPv6Address) -> bool:
    """Whether a care-of address is the home address itself (RFC 6275 §10.3.2 deregistration)."""
    return address is not None and address in (home_address, home_address.ipv4_mapped)


def _host_address(host: str) -> IPv4Address | IPv6Address | None:
    """The outer source as an address, IPv4-mapped IPv6 read as IPv4."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class HomeAgentCore:
    """SAs, bindings, counters and every forwarding decision of one HA."""

    def __init__(self, policy: HaPolicy):
        self.policy = policy
        self.home_agent = as_ipv6(policy.home_agent)
        self.bindings = BindingCache()
        self.counters: Counter[str] = Counter()
        self._sas: dict[int, _SaState] = {}
        # (validity end, SPI) of every SA held, earliest first: the timer forgets expired
        # SAs without walking them all. An entry whose SA is gone or has another validity
        # end now is stale and skipped; SAs past their grace but still bound wait in
        # _expired_bound until their binding goes.
        self._ends: list[tuple[float, int]] = []
        self._expired_bound: set[int] = set()
        # SPI being looked up -> (when the lookup started, datagrams parked behind it);
        # started in insertion order, so the oldest lookups are first
        self._pending: dict[int, tuple[float, list[tuple[str, int, bytes]]]] = {}
        self.admission = LookupAdmission(policy.admission())

    def __repr__(self) -> str:
        return f"HomeAgentCore({self.home_agent}, sas={len(self._sas)}, bindings={len(self.bindings)})"

    # ------------------------------------------------------------------ SA table

    @property
    def spis(self) -> list[int]:
        """The SPIs of the SAs the core holds (for the shell's periodic refresh)."""
        return list(self._sas)

    @property
    def sas(self) -> list[SecurityAssociation]:
        """The SAs the core holds (for ``mip6-ha sas``)."""
        return [state.sa for state in self._sas.values()]

    def is_pending(self, spi: int) -> bool:
        """Whether a lookup of ``spi`` is running (the shell's per-lookup state follows it)."""
        return spi in self._pending

    def sa_found(
        self, spi: int, sa: SecurityAssociation | None, marks: tuple[int, int] | None, now: float
    ) -> list[Action]:
        """The answer to FetchSA(spi): the SA (or None) and the ledger's (floor, next) marks.

        The datagrams parked while the lookup ran are processed now. An SPI the source
        does not have is not looked up again for a while (:mod:`ha.admission`).
        """
        _, parked = self._pending.pop(spi, (now, []))
        found = sa is not None and sa.spi == spi
        if found:
            self.admission.present(spi)
        elif spi not in self._sas:  # (not a late answer for an SA found meanwhile)
            self.admission.missing(spi, now)
        if found and spi not in self._sas:
            try:
                endpoint = SaEndpoint(
                    sa, "ha",
                    window_size=self.policy.replay_window,
                    rekey_margin=self.policy.sequence_margin,
                    next_sequence=marks[1] if marks else 0,
                )
            except InvalidInput:
                self.counters["unusable-sa"] += 1
                endpoint = None
            if endpoint is not None:
                state = _SaState(sa, endpoint, marks, now)
                if state.restored_floor is not None:
                    endpoint.replay.start_after(state.restored_floor)
                self._sas[spi] = state
                self._track_end(state)
        actions = []
        for host, port, data in parked:
            if spi in self._sas:
                actions += self.datagram_received(host, port, data, now)
            else:
                actions.append(self._drop("unknown-spi"))
        return actions

    def lookup_failed(self, spi: int) -> list[Action]:
        """FetchSA(spi) failed (source unreachable, timed out): drop what was parked,
        and remember nothing about the SPI, as the source may have it."""
        _, parked = self._pending.pop(spi, (0.0, []))
        return [self._drop("lookup-failed") for _ in parked]

    def sa_changed(self, sa: SecurityAssociation) -> list[Action]:
        """A newer copy of an SA the core may hold (revoked, new validity end), or a new
        SA (pushed): its SPI is no longer negative-cached."""
        self.admission.present(sa.spi)
        state = self._sas.get(sa.spi)
        if state is None:
            return []
        end = state.validity_end
        state.set_sa(sa)
        if state.validity_end != end:
            self._track_end(state)
        if sa.revoked:
            binding = self._binding_of(state)
            if binding is not None:
                self.bindings.remove(binding)
                return [Deregistered(binding, "revoked")]
        return []

    def flush(self, spi: int) -> list[Action]:
        """Forget SA ``spi`` and its binding (the operator's ``mip6-ha flush``): the MN's
        next datagram makes the HA look the SA up again. Its sequence marks are saved
        first, so the SA found again takes no old sequence number as new."""
        state = self._sas.pop(spi, None)
        if state is None:
            return []
        highest = state.endpoint.replay.highest
        state.inbound_floor = -1 if highest is None else highest
        state.outbound_ceiling = state.endpoint.next_sequence
        actions: list[Action] = [state.marks()]
        binding = self._binding_of(state)
        if binding is not None:
            self.bindings.remove(binding)
            actions.append(Deregistered(binding, "flushed"))
        return actions

    def handle_timer(self, now: float) -> list[Action]:
        """Expire bindings; forget SAs long past their validity end and unbound, and
        lookups that ran longer than ``lookup_timeout`` (their datagrams are dropped)."""
        actions = [Deregistered(binding, "expired") for binding in self.bindings.expire(now)]
        started = now - self.policy.lookup_timeout
        overdue = []
        for spi, (since, _) in self._pending.items():  # oldest first
            if since > started:
                break
            overdue.append(spi)
        for spi in overdue:
            actions += [self._drop("lookup-timeout") for _ in self._pending.pop(spi)[1]]
        horizon = now - self.policy.expired_sa_grace
        while self._ends and self._ends[0][0] < horizon:
            end, spi = heapq.heappop(self._ends)
            state = self._sas.get(spi)
            if state is not None and state.validity_end == end:
                self._expired_bound.add(spi)
        for spi in list(self._expired_bound):
            state = self._sas.get(spi)
            if state is None or state.validity_end >= horizon:  # gone, or renewed
                self._expired_bound.discard(spi)
            elif self._binding_of(state) is None:
                del self._sas[spi]
                self._expired_bound.discard(spi)
        return actions

    def _track_end(self, state: _SaState) -> None:
        """Queue the SA's validity end for the timer; rebuild the queue from the SAs held
        once stale entries outnumber them (SAs flushed or given new validity ends)."""
        if len(self._ends) >= 2 * len(self._sas) + STALE_ENDS_KEPT:
            self._ends = [(held.validity_end, spi) for spi, held in self._sas.items()]
            heapq.heapify(self._ends)
        else:
            heapq.heappush(self._ends, (state.validity_end, state.sa.spi))

    def shutdown(self) -> list[PersistSequences]:
        """The exact marks of every SA used, to save on a clean stop."""
        actions = []
        for state in self._sas.values():
            highest = state.endpoint.replay.highest
            state.inbound_floor = -1 if highest is None else highest
            state.outbound_ceiling = state.endpoint.next_sequence
            if highest is not None or state.outbound_ceiling:
                actions.append(state.marks())
        return actions

    # ------------------------------------------------------------------ MN side

    def datagram_received(self, host: str, port: int, data: bytes, now: float) -> list[Action]:
        """One UDP datagram from an MN (or anyone) at ``host``:``port``."""
        try:
            header = peek(data)
        except InvalidInput as exc:
            return [self._drop(exc.reason)]
        ptype, spi, _ = header
        if ptype is _PLAIN:
            return self._plain_received(host, port, data, now)
        state = self._sas.get(spi)
        if state is None:
            return self._park(spi, ptype is _MOBILITY, host, port, data, now)
        if ptype is _MOBILITY:
            return self._mobility_received(state, header, host, port, data, now)
        return self._tunneled_received(state, header, host, port, data, now)

    def _tunneled_received(self, state: _SaState, header: PacketHeader, host: str, port: int,
                           data: bytes, now: float) -> list[Action]:
        """PType 1, the per-packet path: a protected tunneled packet from a bound MN."""
        binding = None if state.home_key is None else self.bindings.get_by_key(state.home_key)
        if binding is None or binding.spi != header.spi or now >= state.usable_until:
            return self._unbound_data(state, binding, header, host, port, data, now)
        try:
            packet, next_header = state.endpoint.verify(data, header)
        except InvalidInput as exc:
            return [self._drop(exc.reason)]
        forward = self._decapsulated(binding, packet, next_header)
        if type(forward) is Drop:
            return [forward]
        seq = header.seq
        state.endpoint.replay.accept(seq)
        if seq > state.inbound_floor:
            return [self._raise_floor(state, seq), forward]
        return [forward]

    def _unbound_data(self, state: _SaState, binding: Binding | None, header: PacketHeader,
                      host: str, port: int, data: bytes, now: float) -> list[Action]:
        """PType 1 refused before the window moves: SA unusable, or no binding under it.

        With no binding at all for the SA's home address (after an HA restart, say) a
        packet that verifies is answered with a Binding Error, status 1 (RFC 6275 §9.3.3),
        at most once per SA per BINDING_ERROR_INTERVAL, so the MN re-registers now
        instead of at its next refresh. The rate limit is checked before any crypto.
        After a crash the MN's numbers lie below the restored floor: a packet there whose
        ICV verifies is answered too, and the BU it brings gets 176 (a new SA at once).
        """
        unusable = self._usable_for_data(state, now)
        if unusable is not None:
            return [self._drop(unusable)]
        drop = self._drop("no-binding")
        if (binding is not None or state.home_address is None
                or now < state.binding_error_at + BINDING_ERROR_INTERVAL):
            return [drop]
        try:
            state.endpoint.verify(data, header)
        except ReplayError:
            if not (self._in_restart_zone(state, header.seq)
                    and self._opened_without_window(state, data) is not None):
                return [drop]
        except InvalidInput:
            return [drop]
        state.binding_error_at = now
        error = BindingError(BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS,
                             state.home_address)
        next_header, payload = encode_binding_error_payload(
            state.home_address, self.home_agent, error)
        return [drop, *self._send_mobility(state, next_header, payload, host, port,
                                           "binding-error-sent")]

    def _mobility_received(self, state: _SaState, header: PacketHeader, host: str, port: int,
                           data: bytes, now: float) -> list[Action]:
        """PType 8: a protected Binding Update."""
        seq = header.seq
        try:
            payload, next_header = state.endpoint.verify(data, header)
        except ReplayError:
            if self._in_restart_zone(state, seq):
                return self._reinit_after_restart(state, host, port, data)
            return [self._drop("replay")]
        except InvalidInput as exc:
            return [self._drop(exc.reason)]
        actions = self._binding_update(state, seq, next_header, payload, host, port, now)
        if type(actions) is Drop:
            return [actions]
        state.endpoint.replay.accept(seq)
        if seq > state.inbound_floor:
            others = [action for action in actions if not isinstance(action, PersistSequences)]
            return [self._raise_floor(state, seq), *others]
        return actions

    def _raise_floor(self, state: _SaState, seq: int) -> PersistSequences:
        """Reserve the next block of inbound numbers: the marks to save before going on."""
        state.inbound_floor = min(seq + self.policy.sequence_block, SEQ_LIMIT - 1)
        return state.marks()

    def _park(self, spi: int, is_bu: bool, host: str, port: int, data: bytes,
              now: float) -> list[Action]:
        """Hold a datagram for an SPI being looked up; ask for it on the first one, if
        the admission rules let a lookup start (:mod:`ha.admission`)."""
        pending = self._pending.get(spi)
        if pending is None:
            refused = self.admission.refusal(spi, host, is_bu, len(self._pending), now)
            if refused is not None:
                return [self._drop(refused)]
            self._pending[spi] = (now, [(host, port, data)])
            return [FetchSA(spi)]
        parked = pending[1]
        if len(parked) >= self.policy.max_parked_per_spi:
            return [self._drop("lookup-backlog")]
        parked.append((host, port, data))
        return []

    def _usable_for_data(self, state: _SaState, now: float) -> str | None:
        """Why data under this SA is refused before any crypto, or None.

        ``now < state.usable_until`` says None at the cost of one comparison.
        """
        if state.sa.revoked:
            return "revoked"
        if now >= state.validity_end:
            return "sa-expired"
        return None

    def _plain_received(self, host: str, port: int, data: bytes, now: float) -> list[Action]:
        binding = self.bindings.get_by_care_of((host, port))
        state = None if binding is None else self._sas.get(binding.spi)
        if state is None:
            return [self._drop("no-binding")]
        usable = self._usable_for_data(state, now)
        if usable is not None:
            return [self._drop(usable)]
        try:
            opened = state.endpoint.unprotect(data)
        except InvalidInput as exc:
            return [self._drop(exc.reason)]
        return [self._decapsulated(binding, opened.payload, None)]

    def _decapsulated(self, binding: Binding, packet: bytes,
                      next_header: int | None) -> WriteTun | Drop:
        """A tunneled packet from a bound MN, under the binding's SA: to the TUN device if
        its source is the MN's."""
        layout = _ip_layout(packet)
        if layout is None or (next_header is not None and next_header != layout.next_header):
            return self._drop("malformed")
        if self.bindings.get_by_key(packet[layout.source]) is not binding:
            return self._drop("spoofed-source")
        if not self.policy.forwarding:
            return self._drop("not-forwarding")
        self.counters["tunneled-in"] += 1
        return _write_tun((packet,))

    # ------------------------------------------------------------------ Binding Updates

    def _binding_update(self, state: _SaState, seq: int, next_header: int, payload: bytes,
                        host: str, port: int, now: float) -> list[Action] | Drop:
        parsed = self._parse_update(state, next_header, payload)
        if isinstance(parsed, Drop):
            return parsed
        home_address, update = parsed
        sa = state.sa
        binding = self.bindings.get(home_address)
        if binding is not None and binding.spi != sa.spi:
            binding = None  # an older SA's binding: the new SA starts a new sequence
        actions: list = []
        ipv4_ack = None
        if self._needs_reinit(state, seq, now):
            status, sequence, lifetime = BindingAckStatus.REINIT_SA_WITH_HAC, update.sequence, 0
        elif not update.flags & BindingUpdateFlag.HOME_REGISTRATION:
            status, sequence, lifetime = BindingAckStatus.ADMINISTRATIVELY_PROHIBITED, update.sequence, 0
        elif binding is not None and not _is_newer(update.sequence, binding.sequence):
            status, sequence, lifetime = (
                BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, binding.sequence, 0)
        else:
            status, sequence = BindingAckStatus.ACCEPTED, update.sequence
            lifetime = self._granted_lifetime(state, update, now)
            if lifetime == 0 or _is_home(_host_address(host), home_address):
                lifetime = 0
                if binding is not None:
                    self.bindings.remove(binding)
                    actions.append(Deregistered(binding, "deregistered"))
                self.counters["deregistered"] += 1
            else:
                ipv4_ack, home_address4 = self._ipv4_home_address(sa, update)
                binding = Binding(home_address, (host, port), update.sequence,
                                  now + lifetime * LIFETIME_UNIT_SECONDS, sa.spi, home_address4)
                self.bindings.put(binding)
                actions.append(Registered(binding))
                self.counters["registered"] += 1
        self.counters[f"bu-status-{int(status)}"] += 1
        if status < 128 and not update.flags & BindingUpdateFlag.ACKNOWLEDGE:
            return actions
        self.counters[f"ba-status-{int(status)}"] += 1
        options = () if ipv4_ack is None else (ipv4_ack,)
        ack = BindingAck(status, sequence, lifetime, options=options)
        return actions + self._send_ack(state, home_address, ack, host, port)

    def _parse_update(self, state: _SaState, next_header: int, payload: bytes):
        """(home address, BU), or a Drop if malformed or not the SA's home address."""
        try:
            home_address, update = decode_binding_update_payload(
                next_header, payload, self.home_agent)
        except InvalidInput:
            return self._drop("malformed")
        if state.home_address is None or home_address != state.home_address:
            return self._drop("unauthorized-hoa")
        return home_address, update

    def _needs_reinit(self, state: _SaState, seq: int, now: float) -> bool:
        """REINIT_SA_WITH_HAC: revoked, near validity end, or near sequence wrap either way
        (``seq``, the BU's own number, is not in the window yet).

        "Near validity end" is within min(``reinit_margin``, half the lifetime the HA saw
        the SA with) — at least one lifetime unit: an SA shorter than the margin would
        otherwise get 176 on its first BU, and the MN would loop through the HAC.
        """
        seen_lifetime = state.validity_end - state.loaded_at
        margin = max(min(self.policy.reinit_margin, seen_lifetime / 2), LIFETIME_UNIT_SECONDS)
        inbound_highest = max(state.endpoint.replay.highest or 0, seq)
        return (
            state.sa.revoked
            or now >= state.validity_end - margin
            or state.endpoint.near_wrap
            or SEQ_LIMIT - inbound_highest < self.policy.sequence_margin
        )

    def _granted_lifetime(self, state: _SaState, update: BindingUpdate, now: float) -> int:
        """Lifetime in 4-second units: asked, capped by policy and by the SA's validity end."""
        seconds = min(update.lifetime_seconds, self.policy.max_lifetime,
                      int(state.validity_end - now))
        return lifetime_units(max(seconds, 0))

    @staticmethod
    def _ipv4_home_address(sa: SecurityAssociation, update: BindingUpdate):
        """RFC 5555: (IPv4 Address Acknowledgement or None, IPv4 home address to bind)."""
        request = next((o for o in update.options if isinstance(o, IPv4HomeAddress)), None)
        if request is None:
            return None, None
        if sa.home_address4 is None:
            status = IPv4AckStatus.DYNAMIC_IPV4_HOME_ADDRESS_ASSIGNMENT_NOT_AVAILABLE
            return IPv4AddressAcknowledgement(status, _UNSPECIFIED_IPV4), None
        if request.address not in (_UNSPECIFIED_IPV4, sa.home_address4):
            status = IPv4AckStatus.INCORRECT_IPV4_HOME_ADDRESS
            return IPv4AddressAcknowledgement(status, sa.home_address4), None
        ack = IPv4AddressAcknowledgement(IPv4AckStatus.SUCCESS, sa.home_address4)
        return ack, sa.home_address4

    def _send_ack(self, state: _SaState, home_address: IPv6Address, ack: BindingAck,
                  host: str, port: int) -> list[Action]:
        next_header, payload = encode_binding_ack_payload(home_address, self.home_agent, ack)
        return self._send_mobility(state, next_header, payload, host, port, "ba-sent")

    def _send_mobility(self, state: _SaState, next_header: int, payload: bytes,
                       host: str, port: int, counter: str) -> list[Action]:
        """A PType 8 message to ``host``:``port`` (counted as ``counter``), after any marks
        to save; or a Drop."""
        sent = self._protect(state, PType.MOBILITY, payload, next_header)
        if isinstance(sent, Drop):
            return [sent]
        self.counters[counter] += 1
        return [*sent[:-1], SendDatagram(host, port, sent[-1])]

    def _in_restart_zone(self, state: _SaState, seq: int) -> bool:
        """A number the saved floor refuses, before anything newer came in."""
        floor = state.restored_floor
        return floor is not None and state.endpoint.replay.highest == floor and seq <= floor

    @staticmethod
    def _opened_without_window(state: _SaState, data: bytes):
        """``data`` unprotected under the SA with no replay check (None if it does not
        verify): only for numbers below the restored floor, which the window refuses."""
        sa = state.sa
        inbound = Sealer(SUITES[sa.suite], sa.spi, sa.mn_to_ha_ikey, sa.mn_to_ha_ekey)
        try:
            return inbound.unprotect(data)
        except InvalidInput:
            return None

    def _reinit_after_restart(self, state: _SaState, host: str, port: int,
                              data: bytes) -> list[Action]:
        """Answer a verified BU below the restored floor with 176; change nothing else."""
        opened = self._opened_without_window(state, data)
        if opened is None:
            return [self._drop("replay")]
        parsed = self._parse_update(state, opened.next_header, opened.payload)
        if isinstance(parsed, Drop):
            return [parsed]
        home_address, update = parsed
        self.counters["bu-status-176"] += 1
        self.counters["ba-status-176"] += 1
        ack = BindingAck(BindingAckStatus.REINIT_SA_WITH_HAC, update.sequence, 0)
        return self._send_ack(state, home_address, ack, host, port)

    # ------------------------------------------------------------------ home network side

    def tun_packet(self, packet: bytes, now: float) -> list[Action]:
        """A packet from the home network: to the MN whose home address it is sent to."""
        layout = _ip_layout(packet)
        if layout is None:
            return [self._drop("malformed")]
        binding = self.bindings.get_by_key(packet[layout.destination])
        state = None if binding is None else self._sas.get(binding.spi)
        if state is None:
            return [self._drop("no-binding")]
        usable = self._usable_for_data(state, now)
        if usable is not None:
            return [self._drop(usable)]
        if state.sa.scope == SCOPE_ALL:
            sent = self._protect(state, PType.ENCRYPTED_IP, packet, layout.next_header)
            if isinstance(sent, Drop):
                return [sent]
        else:
            sent = [encode_plain(packet)]
        self.counters["tunneled-out"] += 1
        host, port = binding.care_of
        return [*sent[:-1], SendDatagram(host, port, sent[-1])]

    def _protect(self, state: _SaState, ptype: PType, payload: bytes, next_header: int):
        """[PersistSequences if a new block is reserved, packet], or a Drop at exhaustion."""
        endpoint = state.endpoint
        actions = []
        if endpoint.next_sequence >= state.outbound_ceiling:
            state.outbound_ceiling = min(endpoint.next_sequence + self.policy.sequence_block,
                                         SEQ_LIMIT)
            actions.append(state.marks())
        try:
            actions.append(endpoint.protect(ptype, payload, next_header))
        except SequenceExhausted:
            return self._drop("sequence-exhausted")
        return actions

    # ------------------------------------------------------------------ helpers

    def _binding_of(self, state: _SaState) -> Binding | None:
        binding = None if state.home_key is None else self.bindings.get_by_key(state.home_key)
        return binding if binding is not None and binding.spi == state.sa.spi else None

    def _drop(self, reason: str) -> Drop:
        reason = _REASONS.get(reason, reason)
        self.counters[reason] += 1
        return Drop(reason)
