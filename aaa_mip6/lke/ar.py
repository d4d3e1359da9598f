"""The access router's side of the Local Key Exchange (draft-liu-mobileip-lke-01 §2.1,
§4, §6; docs/lke.md), sans-I/O: one :class:`ArCore` per link.

Events go in -- an ICMPv6 message (:meth:`ArCore.icmp_received`: RS, NS, NA), a Mobility
Header (:meth:`ArCore.mobility_received`: KE Request, BU, Finished), the clock
(:meth:`ArCore.handle_timer`) -- and each returns the actions (:mod:`aaa_mip6.lke.actions`)
the shell carries out in order. The clock is POSIX seconds.

Rules (docs/lke.md, "The AR", says the same for operators):

- A drop changes nothing but its counter (``reason``). The one exception: a KE Request
  admitted to decryption uses up its source's slot and a token whether or not it
  decrypts, or garbage would be free to send.
- LKE messages on the link must come with hop limit 255 from a link-local source to this
  AR's link-local address (§6): else ``not-link-local``.
- KE Request (§2.1 a, §4.2, §6.2, §6.5), cheapest check first: malformed or requested
  lifetime 0 (``malformed``); a care-of address that holds a valid or pending LBSA of
  another link-local source (``ke-coa-bound``: a forged request from another host); a sequence
  number not newer than the last one of that source for that address (``ke-replay``);
  the source's backoff (first 3 s, doubling while it keeps asking, up to 60 s) or the
  AR's overall decryption budget (``ke-rate-limited``); Key Exchange Data that does not
  decrypt under the AR's key with the care-of address as OAEP label
  (``bad-key-exchange``). Then, signed under the new Kbm: a care-of address outside the
  link's prefixes gets status 131, a full LBSA table 130; otherwise status 0, the
  granted lifetime min(requested, advertised maximum), and the new LBSA is *pending*.
- Authenticated DAD (§2.1, §4.3, §6.4): right after the Ack the AR probes the care-of
  address (NS from ``::`` with a DAD Authentication Request under the pending Kbm,
  ``dad_transmits`` times ``dad_wait`` apart). The LBSA becomes valid ``dad_wait`` after
  the last probe only if at least one NA carried a DAD Authentication Reply that
  verifies (this AR's address, a nonce of this run) and every NA without one carried
  the Target Link-Layer Address of a verified one (the MN's own kernel answers too).
  A reply that does not verify, or an NA with another or no link-layer address, ends the
  DAD at once (``dad-impostor``); no verified reply at all is ``dad-timeout``. A pending
  LBSA never disturbs a valid one: the old LBSA of the address is replaced only when the
  new one's DAD succeeds (the draft's "remove any existing LBSA" happens then).
- Once valid, the AR caches one verified NA and multicasts it whenever another node
  probes the address (§4.3, ``dad-defended``), until a BU comes or the LBSA goes.
- BU (§2.1, §4.2, §4.4, §6.5) to the AR's global address: for a previous care-of address
  without a valid LBSA ``no-lbsa``, an authenticator that does not verify ``bad-hmac``
  (no answer: the sender proved nothing); a sequence number not newer than the last
  accepted one (modulo 2^16) gets a signed BA 135 carrying the last one (``bu-replay``);
  no H flag a signed BA 129. Otherwise the binding (the AR a temporary home agent) lives
  min(asked, ``max_binding_lifetime``, the LBSA's remaining life); lifetime 0 or a
  care-of address equal to the previous one removes it. The accepted sequence number is
  stored with the LBSA before the BA goes out, the cached NA is dropped, no DAD is done.
- Finished (§2.1 c, §3.2.4): asked for with ``finished_request``; the binding is removed
  (``finished-timeout``) unless a Finished echoing the BA's status, sequence number,
  lifetime and nonce verifies within ``finished_wait``.
- Expiry: an LBSA ends at its lifetime (``ForgetLbsa``), its binding and cached NA with it.
"""

from __future__ import annotations

import math
import os
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from cryptography.hazmat.primitives.asymmetric import rsa

from ..actions import Action
from ..errors import LkeError
from ..mobility.messages import LIFETIME_UNIT_SECONDS, BindingAckStatus, BindingUpdateFlag, lifetime_units
from .actions import (
    BindPrevious,
    Drop,
    ForgetLbsa,
    SendIcmp,
    SendMobility,
    StoreLbsa,
    UnbindPrevious,
)
from .codepoints import EXPERIMENTAL, CodePoints
from .crypto import encode_public_key, unwrap_kbm
from .lbsa import Lbsa
from .messages import (
    MH_BINDING_UPDATE,
    Finished,
    KeAckStatus,
    KeyExchangeAck,
    KeyExchangeRequest,
    LkeBindingAck,
    LkeBindingUpdate,
    mh_type,
)
from .nd import (
    ALL_NODES,
    NEIGHBOR_ADVERTISEMENT,
    NEIGHBOR_SOLICITATION,
    ROUTER_SOLICITATION,
    TARGET_LINK_LAYER_ADDRESS,
    UNSPECIFIED,
    DadAuthentication,
    LinkLayerAddress,
    LkeCapability,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    decode_nd,
    solicited_node,
    verify_dad,
)

LINK_HOP_LIMIT = 255
SEQUENCE_MODULUS = 1 << 16
MIN_RA_INTERVAL = 3.0  # RFC 4861 §10 MIN_DELAY_BETWEEN_RAS: answers to Router Solicitations


def is_newer(sequence: int, last: int) -> bool:
    """RFC 6275 §9.5.1: ``sequence`` is greater than ``last`` modulo 2^16."""
    return 0 < (sequence - last) % SEQUENCE_MODULUS < SEQUENCE_MODULUS // 2


@dataclass(frozen=True, slots=True)
class ArPolicy:
    """The settings of one AR link; docs/lke.md names them."""

    link_local: IPv6Address
    """The AR's link-local address on this link: KE messages go to and from it."""
    ar_address: IPv6Address
    """The AR's global address named in the KE Ack: BUs and Finished come to it."""
    prefixes: tuple[IPv6Network, ...]
    link_layer_address: bytes | None = None
    max_lifetime: int = 7200
    router_lifetime: int = 9000
    max_lbsas: int = 1024
    max_binding_lifetime: int = 600
    ke_interval: float = 3.0
    ke_backoff_max: float = 60.0
    ke_rate: float = 10.0
    ke_burst: int = 20
    max_sources: int = 4096
    dad_transmits: int = 2
    dad_wait: float = 1.0
    finished_request: bool = False
    finished_wait: float = 3.0
    codes: CodePoints = EXPERIMENTAL

    def __post_init__(self):
        if not self.link_local.is_link_local or self.ar_address.is_link_local:
            raise ValueError("link_local must be link-local and ar_address global")
        if not self.prefixes:
            raise ValueError("an AR link needs at least one prefix")
        if not LIFETIME_UNIT_SECONDS <= self.max_lifetime <= 0xFFFF:
            raise ValueError("max_lifetime must be 4..65535 seconds")
        if not 1 <= self.router_lifetime <= 9000:
            raise ValueError("router_lifetime must be 1..9000 seconds (RFC 4861 §6.2.1)")
        for name in ("max_lbsas", "max_binding_lifetime", "ke_burst", "max_sources",
                     "dad_transmits"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("ke_interval", "ke_rate", "dad_wait", "finished_wait"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.ke_backoff_max < self.ke_interval:
            raise ValueError("ke_backoff_max must be at least ke_interval")

    @property
    def advertised_lifetime(self) -> int:
        """§3.1.1: the Maximum Lifetime may not exceed the Router Lifetime."""
        return min(self.max_lifetime, self.router_lifetime)


@dataclass(slots=True)
class _Dad:
    """A pending LBSA and its authenticated DAD run."""

    lbsa: Lbsa
    nonces: list[int]
    next_probe: float
    ends: float
    probes_left: int
    verified: dict[bytes | None, bytes] = field(default_factory=dict)  # TLLA -> the NA
    plain: list[bytes] = field(default_factory=list)  # TLLAs of NAs without the option


@dataclass(slots=True)
class _Binding:
    care_of: IPv6Address
    expires: float
    finished: tuple[int, float, LkeBindingAck] | None = None  # nonce, deadline, the BA


@dataclass(slots=True)
class _Source:
    """A link-local source's KE backoff (§4.2, §6.2)."""

    last: float
    interval: float


class ArCore:
    """The LBSAs, DAD runs, bindings and counters of one AR link."""

    def __init__(self, policy: ArPolicy, private_key: rsa.RSAPrivateKey, *,
                 random: Callable[[int], bytes] = os.urandom):
        self.policy = policy
        self.codes = policy.codes
        self._key = private_key
        self._key_octets = private_key.key_size // 8
        self._public_key = encode_public_key(private_key)
        self._random = random
        self.counters: Counter[str] = Counter()
        self._valid: dict[IPv6Address, Lbsa] = {}
        self._pending: dict[IPv6Address, _Dad] = {}
        self._cached_na: dict[IPv6Address, bytes] = {}
        self._bindings: dict[IPv6Address, _Binding] = {}
        self._sources: OrderedDict[IPv6Address, _Source] = OrderedDict()
        self._tokens = float(policy.ke_burst)
        self._tokens_at = -math.inf
        self._last_ra = -math.inf

    def __repr__(self) -> str:
        return (f"ArCore({self.policy.link_local}, lbsas={len(self._valid)}, "
                f"pending={len(self._pending)}, bindings={len(self._bindings)})")

    @property
    def lbsas(self) -> list[Lbsa]:
        """The valid LBSAs."""
        return list(self._valid.values())

    @property
    def bindings(self) -> dict[IPv6Address, tuple[IPv6Address, float]]:
        """previous care-of address -> (care-of address, expiry)."""
        return {previous: (b.care_of, b.expires) for previous, b in self._bindings.items()}

    # ------------------------------------------------------------------ start, RA, timer

    def restore(self, lbsas: Iterable[Lbsa], now: float) -> list[Action]:
        """LBSAs saved before a restart; expired ones are forgotten."""
        actions: list[Action] = []
        for lbsa in lbsas:
            if lbsa.expires <= now:
                actions.append(ForgetLbsa(lbsa.care_of, "expired"))
            elif len(self._valid) < self.policy.max_lbsas:
                self._valid[lbsa.care_of] = lbsa
        return actions

    def router_advertisement(self, now: float) -> list[Action]:
        """The RA to multicast (§3.1.1: H bit set, LKE Capability option)."""
        self._last_ra = now
        policy = self.policy
        options = []
        if policy.link_layer_address is not None:
            options.append(LinkLayerAddress(1, policy.link_layer_address))
        options += [PrefixInformation(prefix) for prefix in policy.prefixes]
        options.append(LkeCapability(policy.advertised_lifetime, self._public_key))
        advertisement = RouterAdvertisement(policy.router_lifetime, options=tuple(options))
        return [SendIcmp(policy.link_local, ALL_NODES,
                         advertisement.encode(policy.link_local, ALL_NODES, self.codes))]

    def timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or None."""
        times = [lbsa.expires for lbsa in self._valid.values()]
        times += [min(dad.next_probe, dad.ends) for dad in self._pending.values()]
        times += [b.expires for b in self._bindings.values()]
        times += [b.finished[1] for b in self._bindings.values() if b.finished]
        return min(times, default=None)

    def handle_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for care_of, dad in list(self._pending.items()):
            if now >= dad.ends:
                actions += self._dad_ended(care_of, dad, now)
            elif now >= dad.next_probe:
                actions.append(self._probe(dad, now))
        for previous, binding in list(self._bindings.items()):
            if now >= binding.expires:
                actions.append(self._unbind(previous, "expired"))
            elif binding.finished and now >= binding.finished[1]:
                self.counters["finished-timeout"] += 1
                actions.append(self._unbind(previous, "finished-timeout"))
        for care_of, lbsa in list(self._valid.items()):
            if now >= lbsa.expires:
                actions += self._forget(care_of, "expired")
        return actions

    # ------------------------------------------------------------------ ICMPv6

    def icmp_received(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                      hop_limit: int, now: float) -> list[Action]:
        """A Router Solicitation, Neighbor Solicitation or Neighbor Advertisement."""
        if hop_limit != LINK_HOP_LIMIT:
            return [self._drop("not-link-local")]
        kind = data[0] if data else None
        if kind not in (ROUTER_SOLICITATION, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT):
            return [self._drop("not-lke")]
        try:
            decoded = decode_nd(data, source, destination, self.codes)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        if kind == ROUTER_SOLICITATION:
            if now < self._last_ra + MIN_RA_INTERVAL:
                return [self._drop("ra-rate-limited")]
            return self.router_advertisement(now)
        if kind == NEIGHBOR_SOLICITATION:
            return self._solicitation(decoded.message, source)
        return self._advertisement(decoded, data, now)

    def _solicitation(self, solicitation, source: IPv6Address) -> list[Action]:
        """§4.3: another node's DAD probe for a protected address gets the MN's cached NA."""
        cached = self._cached_na.get(solicitation.target)
        if source != UNSPECIFIED or cached is None or solicitation.target in self._pending:
            return []  # not a DAD probe, nothing to defend, or the AR's own probe: the MN answers
        self.counters["dad-defended"] += 1
        return [SendIcmp(solicitation.target, ALL_NODES, cached)]

    def _advertisement(self, decoded, data: bytes, now: float) -> list[Action]:
        advertisement = decoded.message
        dad = self._pending.get(advertisement.target)
        if dad is None or data == self._cached_na.get(advertisement.target):
            return []  # no DAD run, or the AR's own defence looped back
        lla = next((o.address for o in advertisement.options
                    if isinstance(o, LinkLayerAddress)
                    and o.option_type == TARGET_LINK_LAYER_ADDRESS), None)
        option = advertisement.option(DadAuthentication)
        if option is None:
            if lla is None:
                return self._dad_failed(advertisement.target, "dad-impostor")
            dad.plain.append(lla)
            return []
        try:
            verify_dad(decoded, dad.lbsa.kbm)
        except LkeError:
            return self._dad_failed(advertisement.target, "dad-impostor")
        if option.ar_address != self.policy.ar_address or option.nonce not in dad.nonces:
            return self._dad_failed(advertisement.target, "dad-impostor")
        dad.verified.setdefault(lla, data)
        return []

    def _probe(self, dad: _Dad, now: float) -> SendIcmp:
        nonce = int.from_bytes(self._random(4), "big")
        dad.nonces.append(nonce)
        dad.probes_left -= 1
        dad.next_probe = now + self.policy.dad_wait if dad.probes_left else math.inf
        target = dad.lbsa.care_of
        group = solicited_node(target)
        probe = NeighborSolicitation(target, (DadAuthentication(nonce, self.policy.ar_address),))
        return SendIcmp(UNSPECIFIED, group,
                        probe.encode(UNSPECIFIED, group, self.codes, kbm=dad.lbsa.kbm))

    def _dad_failed(self, care_of: IPv6Address, reason: str) -> list[Action]:
        del self._pending[care_of]
        return [self._drop(reason)]

    def _dad_ended(self, care_of: IPv6Address, dad: _Dad, now: float) -> list[Action]:
        if not dad.verified:
            return self._dad_failed(care_of, "dad-timeout")
        if any(lla not in dad.verified for lla in dad.plain):
            return self._dad_failed(care_of, "dad-impostor")
        del self._pending[care_of]
        actions: list[Action] = []
        if care_of in self._bindings:  # the MN is on this link again
            actions.append(self._unbind(care_of, "lbsa-replaced"))
        self._valid[care_of] = dad.lbsa
        self._cached_na[care_of] = next(iter(dad.verified.values()))
        self.counters["lbsa-established"] += 1
        return [StoreLbsa(dad.lbsa), *actions]

    # ------------------------------------------------------------------ Mobility Header

    def mobility_received(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                          hop_limit: int, now: float) -> list[Action]:
        """A KE Request (on the link), a BU or a Finished (to the AR's global address)."""
        kind = mh_type(data)
        if kind == self.codes.ke_request:
            return self._key_exchange(data, source, destination, hop_limit, now)
        if destination != self.policy.ar_address:
            return [self._drop("wrong-destination")]
        if kind == MH_BINDING_UPDATE:
            return self._binding_update(data, source, destination, now)
        if kind == self.codes.finished:
            return self._finished(data, source, destination)
        return [self._drop("unknown-mh-type")]

    def _key_exchange(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                      hop_limit: int, now: float) -> list[Action]:
        policy = self.policy
        if (hop_limit != LINK_HOP_LIMIT or not source.is_link_local
                or destination != policy.link_local):
            return [self._drop("not-link-local")]
        try:
            request = KeyExchangeRequest.decode(data, source, destination, self.codes,
                                                key_octets=self._key_octets)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        if request.requested_lifetime == 0:
            return [self._drop("malformed")]
        care_of = request.care_of
        valid = self._valid_lbsa(care_of, now)
        pending = self._pending.get(care_of)
        if any(lbsa.mn_link_local != source for lbsa in
               (valid, pending and pending.lbsa) if lbsa):
            return [self._drop("ke-coa-bound")]
        last = pending.lbsa if pending is not None else valid
        if last is not None and not is_newer(request.sequence, last.ke_sequence):
            return [self._drop("ke-replay")]
        if not self._admit(source, now):
            return [self._drop("ke-rate-limited")]
        try:
            kbm = unwrap_kbm(self._key, request.key_exchange_data, care_of)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        return self._acknowledge(request, kbm, source, now)

    def _admit(self, source: IPv6Address, now: float) -> bool:
        """§6.2 / §4.2: the source's backoff and the AR's decryption budget; uses them up."""
        policy = self.policy
        state = self._sources.get(source)
        if state is not None and now < state.last + state.interval:
            return False
        self._tokens = min(float(policy.ke_burst),
                           self._tokens + (now - self._tokens_at) * policy.ke_rate)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        if state is None:
            state = _Source(now, policy.ke_interval)
        elif now < state.last + 2 * state.interval:
            state = _Source(now, min(state.interval * 2, policy.ke_backoff_max))
        else:
            state = _Source(now, policy.ke_interval)
        self._sources[source] = state
        self._sources.move_to_end(source)
        while len(self._sources) > policy.max_sources:
            self._sources.popitem(last=False)
        return True

    def _acknowledge(self, request: KeyExchangeRequest, kbm: bytes, source: IPv6Address,
                     now: float) -> list[Action]:
        policy = self.policy
        care_of = request.care_of
        lifetime = lifetime_units(min(request.requested_seconds, policy.advertised_lifetime))
        status = KeAckStatus.ACCEPTED
        if not any(care_of in prefix for prefix in policy.prefixes):
            status = KeAckStatus.CARE_OF_NOT_ON_LINK
        elif (care_of not in self._valid and care_of not in self._pending
              and len(self._valid) + len(self._pending) >= policy.max_lbsas):
            status = KeAckStatus.INSUFFICIENT_RESOURCES
        ack = KeyExchangeAck(status, request.sequence, lifetime if status == 0 else 0,
                             care_of, policy.ar_address)
        send = SendMobility(policy.link_local, source,
                            ack.encode(policy.link_local, source, kbm, self.codes))
        if status != KeAckStatus.ACCEPTED:
            self.counters[f"ke-status-{int(status)}"] += 1
            return [send]
        self.counters["ke-accepted"] += 1
        lbsa = Lbsa(care_of, policy.ar_address, policy.link_local, source, kbm,
                    now + lifetime * LIFETIME_UNIT_SECONDS, request.sequence)
        dad = _Dad(lbsa, [], now, now + policy.dad_transmits * policy.dad_wait,
                   policy.dad_transmits)
        self._pending[care_of] = dad
        return [send, self._probe(dad, now)]

    def _valid_lbsa(self, previous: IPv6Address, now: float) -> Lbsa | None:
        lbsa = self._valid.get(previous)
        return lbsa if lbsa is not None and now < lbsa.expires else None

    def _binding_update(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                        now: float) -> list[Action]:
        try:
            update = LkeBindingUpdate.decode(data, source, destination, self.codes)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        previous = update.previous
        lbsa = self._valid_lbsa(previous, now)
        if lbsa is None:
            return [self._drop("no-lbsa")]
        try:
            update.verify(lbsa.kbm)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        if source.is_link_local or source.is_multicast or source == UNSPECIFIED:
            return [self._drop("bad-care-of")]
        if lbsa.bu_sequence is not None and not is_newer(update.sequence, lbsa.bu_sequence):
            self.counters["bu-replay"] += 1
            return [self._answer(lbsa, source, BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW,
                                 lbsa.bu_sequence, 0)]
        if not update.flags & BindingUpdateFlag.HOME_REGISTRATION:
            self.counters["ba-status-129"] += 1
            return [self._answer(lbsa, source, BindingAckStatus.ADMINISTRATIVELY_PROHIBITED,
                                 update.sequence, 0)]
        lbsa = lbsa.with_bu_sequence(update.sequence)
        self._valid[previous] = lbsa
        actions: list[Action] = [StoreLbsa(lbsa)]
        self._cached_na.pop(previous, None)  # §4.3, §4.4
        seconds = min(update.lifetime_seconds, self.policy.max_binding_lifetime,
                      int(lbsa.expires - now))
        units = lifetime_units(max(seconds, 0))
        if units == 0 or source == previous:
            if previous in self._bindings:
                actions.append(self._unbind(previous, "deregistered"))
            self.counters["deregistered"] += 1
            return [*actions, self._answer(lbsa, source, BindingAckStatus.ACCEPTED,
                                           update.sequence, 0)]
        nonce = int.from_bytes(self._random(4), "big") if self.policy.finished_request else None
        ack = LkeBindingAck(BindingAckStatus.ACCEPTED, update.sequence, units, previous, nonce)
        expires = now + units * LIFETIME_UNIT_SECONDS
        binding = _Binding(source, expires)
        if nonce is not None:
            binding.finished = (nonce, now + self.policy.finished_wait, ack)
        self._bindings[previous] = binding
        self.counters["bound"] += 1
        actions.append(BindPrevious(previous, source, expires))
        actions.append(SendMobility(self.policy.ar_address, source,
                                    ack.encode(self.policy.ar_address, source, lbsa.kbm,
                                               self.codes)))
        return actions

    def _answer(self, lbsa: Lbsa, care_of: IPv6Address, status: int, sequence: int,
                units: int) -> SendMobility:
        ack = LkeBindingAck(status, sequence, units, lbsa.care_of)
        address = self.policy.ar_address
        return SendMobility(address, care_of, ack.encode(address, care_of, lbsa.kbm, self.codes))

    def _finished(self, data: bytes, source: IPv6Address, destination: IPv6Address
                  ) -> list[Action]:
        try:
            finished = Finished.decode(data, source, destination, self.codes)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        binding = self._bindings.get(finished.previous)
        lbsa = self._valid.get(finished.previous)
        if binding is None or binding.finished is None or lbsa is None:
            return [self._drop("unexpected-finished")]
        try:
            finished.verify(lbsa.kbm)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        nonce, _, ack = binding.finished
        if (source != binding.care_of or finished.nonce != nonce or finished.status != ack.status
                or finished.sequence != ack.sequence or finished.lifetime != ack.lifetime):
            return [self._drop("finished-mismatch")]
        binding.finished = None
        self.counters["finished"] += 1
        return []

    # ------------------------------------------------------------------ helpers

    def _unbind(self, previous: IPv6Address, why: str) -> UnbindPrevious:
        del self._bindings[previous]
        self.counters[f"unbound-{why}"] += 1
        return UnbindPrevious(previous, why)

    def _forget(self, care_of: IPv6Address, why: str) -> list[Action]:
        del self._valid[care_of]
        self._cached_na.pop(care_of, None)
        actions: list[Action] = []
        if care_of in self._bindings:
            actions.append(self._unbind(care_of, "lbsa-gone"))
        self.counters[f"lbsa-{why}"] += 1
        return [*actions, ForgetLbsa(care_of, why)]

    def _drop(self, reason: str) -> Drop:
        self.counters[reason] += 1
        return Drop(reason)
