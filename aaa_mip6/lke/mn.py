"""The mobile node's side of the Local Key Exchange (draft-liu-mobileip-lke-01 §2.1, §5,
§6; docs/lke.md), sans-I/O.

Events go in -- an ICMPv6 message (:meth:`MnCore.icmp_received`: RA, DAD NS and NA), a
Mobility Header (:meth:`MnCore.mobility_received`: KE Ack, BA), the shell's decisions
(:meth:`MnCore.key_exchange` after the home registration, :meth:`MnCore.moved` after a
move), the clock (:meth:`MnCore.handle_timer`) -- and each returns the actions
(:mod:`aaa_mip6.lke.actions`) the shell carries out in order. The clock is POSIX seconds.

Rules (docs/lke.md, "The MN"):

- RA (§2.1, §3.1.1): an LKE Capability option counts only in an RA with the H bit, hop
  limit 255, from a link-local source, with an RSA key of ``min_key_bits`` ..
  ``max_key_bits``; the AR is known for its Router Lifetime (0 forgets it).
- KE Request (§2.1 a, §5.2): a fresh random 16-octet Kbm, RSA-OAEP encrypted to the AR's
  key with the care-of address as label, the requested lifetime min(``lifetime``, the
  advertised maximum). Its sequence number is the clock's seconds modulo 2^16, or one
  more than the last one sent to that AR if that is not newer: so it is newer than
  anything the AR saw before, even after the MN restarted. Unanswered, it is resent
  with the same Kbm and the next sequence number after ``ke_timeout``, doubling, up to
  ``ke_attempts`` sends (``ke-timeout``).
- KE Ack (§5.2): from the AR's link-local address, a sequence number of the running
  exchange, the exchange's care-of address; its HMAC must verify under the exchange's
  Kbm -- if not, any LBSA with that AR is dropped (``bad-ack``) and the exchange goes on.
  A verified refusal (status >= 128) ends the exchange (``ke-refused``). Accepted: the
  LBSA lives the granted lifetime from the last send, and is renewed by a new exchange
  ``renew_margin`` before it ends while the MN still has that care-of address (§2.1).
- DAD (§2.1, §5.3): an NS for a care-of address of an LBSA (or running exchange) whose
  DAD Authentication Request names that AR's address and verifies gets a multicast NA
  with the Reply (same nonce and AR address) and the Target Link-Layer Address. One that
  does not verify (another host started an LKE for the MN's address) gets a plain NA,
  as the kernel's own answer would be (``dad-foreign-probe``). An NA for the MN's
  address without a Reply and with another link-layer address, within ``dad_window`` of
  an authenticated probe, is an impostor: the LBSA with that AR is dropped and a new
  exchange starts (``dad-impostor``).
- BU (§2.1, §5.4): :meth:`MnCore.moved` sends one BU, from the new care-of address, to
  the AR whose LBSA is for the care-of address the MN leaves (the last previous AR), A
  and H set, ``binding_lifetime`` capped by the LBSA's remaining life, sequence numbers
  from a random start per LBSA. Unanswered it is resent after ``bu_timeout``, doubling,
  up to ``bu_attempts`` sends. A verified BA 135 resends at once with the number after
  the BA's; another refusal ends it (``PreviousRefused``); an accepted BA that asks for
  it is answered with a Finished.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from cryptography.hazmat.primitives.asymmetric import rsa

from ..actions import Action
from ..errors import LkeError
from ..mobility.messages import LIFETIME_UNIT_SECONDS, BindingAckStatus, lifetime_units
from .actions import (
    Drop,
    LbsaLost,
    LbsaReady,
    PreviousBound,
    PreviousRefused,
    SendIcmp,
    SendMobility,
)
from .ar import LINK_HOP_LIMIT, SEQUENCE_MODULUS, is_newer
from .codepoints import EXPERIMENTAL, CodePoints
from .crypto import MAX_KEY_BITS, MIN_KEY_BITS, decode_public_key, wrap_kbm
from .lbsa import KBM_OCTETS, Lbsa
from .messages import (
    MH_BINDING_ACK,
    Finished,
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
    ROUTER_ADVERTISEMENT,
    TARGET_LINK_LAYER_ADDRESS,
    DadAuthentication,
    LinkLayerAddress,
    LkeCapability,
    NeighborAdvertisement,
    PrefixInformation,
    decode_nd,
    verify_dad,
)


@dataclass(frozen=True, slots=True)
class MnPolicy:
    """The MN's LKE settings; docs/lke.md names them."""

    link_layer_address: bytes | Callable[[IPv6Address], bytes | None] | None = None
    """The MN's link-layer address, sent as the Target Link-Layer Address of its NAs: one
    for every link, or a lookup from a care-of address to the link-layer address of the
    interface holding it (an MN whose links have different MACs)."""
    lifetime: int = 7200
    min_key_bits: int = MIN_KEY_BITS
    max_key_bits: int = MAX_KEY_BITS
    ke_timeout: float = 3.0
    ke_attempts: int = 4
    renew_margin: float = 300.0
    dad_window: float = 5.0
    binding_lifetime: int = 600
    bu_timeout: float = 1.0
    bu_attempts: int = 3
    codes: CodePoints = EXPERIMENTAL

    def __post_init__(self):
        if not LIFETIME_UNIT_SECONDS <= self.lifetime <= 0xFFFF * LIFETIME_UNIT_SECONDS:
            raise ValueError("lifetime must be 4..262140 seconds")
        if not 1 <= self.binding_lifetime <= 0xFFFF * LIFETIME_UNIT_SECONDS:
            raise ValueError("binding_lifetime must be 1..262140 seconds")
        if self.ke_attempts < 1 or self.bu_attempts < 1:
            raise ValueError("ke_attempts and bu_attempts must be at least 1")
        for name in ("ke_timeout", "bu_timeout", "dad_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.renew_margin < 0 or self.min_key_bits > self.max_key_bits:
            raise ValueError("renew_margin cannot be negative, nor min_key_bits > max_key_bits")


@dataclass(frozen=True, slots=True)
class Router:
    """An LKE-capable AR learned from its RA."""

    link_local: IPv6Address
    public_key: rsa.RSAPublicKey = field(repr=False)
    max_lifetime: int
    prefixes: tuple[IPv6Network, ...]
    expires: float


@dataclass(slots=True)
class _Exchange:
    router: IPv6Address
    care_of: IPv6Address
    link_local: IPv6Address
    kbm: bytes = field(repr=False)
    sequences: list[int]
    sent_at: float
    timeout: float
    sends_left: int


@dataclass(slots=True)
class _Update:
    lbsa: Lbsa
    care_of: IPv6Address
    sequence: int
    lifetime: int
    deadline: float
    timeout: float
    sends_left: int


class MnCore:
    """The known ARs, LBSAs, running exchanges and BUs of one MN."""

    def __init__(self, policy: MnPolicy, *, random: Callable[[int], bytes] = os.urandom):
        self.policy = policy
        self.codes = policy.codes
        self._random = random
        self.counters: Counter[str] = Counter()
        self._routers: dict[IPv6Address, Router] = {}
        self._lbsas: dict[IPv6Address, Lbsa] = {}  # AR link-local -> LBSA
        self._exchanges: dict[IPv6Address, _Exchange] = {}
        self._updates: dict[IPv6Address, _Update] = {}  # previous care-of address -> BU
        self._last_ke_sequence: dict[IPv6Address, int] = {}
        self._bu_sequence: dict[IPv6Address, int] = {}  # previous care-of address -> last
        self._probed: dict[IPv6Address, tuple[IPv6Address, float]] = {}  # CoA -> (AR, when)
        self._care_of: IPv6Address | None = None

    def __repr__(self) -> str:
        return f"MnCore(routers={len(self._routers)}, lbsas={len(self._lbsas)})"

    @property
    def routers(self) -> list[Router]:
        return list(self._routers.values())

    @property
    def lbsas(self) -> list[Lbsa]:
        return list(self._lbsas.values())

    # ------------------------------------------------------------------ the shell's inputs

    def key_exchange(self, care_of: IPv6Address, link_local: IPv6Address, now: float, *,
                     router: IPv6Address | None = None) -> list[Action]:
        """Start an LKE for ``care_of`` (sent from ``link_local``) with ``router``, or with
        the first known AR that advertised a prefix holding ``care_of``."""
        self._care_of = care_of
        if router is None:
            router = next((r.link_local for r in self._routers.values()
                           if any(care_of in prefix for prefix in r.prefixes)), None)
        known = self._routers.get(router) if router is not None else None
        if known is None or now >= known.expires:
            return [self._drop("no-lke-router")]
        exchange = _Exchange(router, care_of, link_local, self._random(KBM_OCTETS), [], now,
                             self.policy.ke_timeout, self.policy.ke_attempts)
        self._exchanges[router] = exchange
        return [self._send_request(exchange, known, now)]

    def moved(self, care_of: IPv6Address, now: float) -> list[Action]:
        """The MN has ``care_of`` on a new link: a BU to the AR of the address it left."""
        previous, self._care_of = self._care_of, care_of
        lbsa = next((lbsa for lbsa in self._lbsas.values()
                     if lbsa.care_of == previous and now < lbsa.expires), None)
        if previous is None or previous == care_of or lbsa is None:
            return [self._drop("no-lbsa")]
        sequence = self._bu_sequence.get(previous)
        sequence = (int.from_bytes(self._random(2), "big") if sequence is None
                    else (sequence + 1) % SEQUENCE_MODULUS)
        seconds = min(self.policy.binding_lifetime, int(lbsa.expires - now))
        update = _Update(lbsa, care_of, sequence, lifetime_units(max(seconds, 0)), now,
                         self.policy.bu_timeout, self.policy.bu_attempts)
        self._updates[previous] = update
        return [self._send_update(update, now)]

    # ------------------------------------------------------------------ timer

    def timer(self) -> float | None:
        times = [e.sent_at + e.timeout for e in self._exchanges.values()]
        times += [u.deadline for u in self._updates.values()]
        for lbsa in self._lbsas.values():
            times.append(lbsa.expires)
            if lbsa.care_of == self._care_of and lbsa.ar_link_local not in self._exchanges:
                times.append(lbsa.expires - self.policy.renew_margin)
        return min(times, default=None)

    def handle_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for router, exchange in list(self._exchanges.items()):
            if now < exchange.sent_at + exchange.timeout:
                continue
            known = self._routers.get(router)
            if exchange.sends_left == 0 or known is None:
                del self._exchanges[router]
                actions.append(self._lost(router, "ke-timeout"))
            else:
                exchange.timeout *= 2
                actions.append(self._send_request(exchange, known, now))
        for previous, update in list(self._updates.items()):
            if now < update.deadline:
                continue
            if update.sends_left == 0:
                del self._updates[previous]
                self.counters["bu-timeout"] += 1
                actions.append(PreviousRefused(update.lbsa.ar_link_local, previous, None))
            else:
                update.sequence = (update.sequence + 1) % SEQUENCE_MODULUS
                update.timeout *= 2
                actions.append(self._send_update(update, now))
        for router, lbsa in list(self._lbsas.items()):
            if now >= lbsa.expires:
                del self._lbsas[router]
                actions.append(self._lost(router, "expired"))
            elif (now >= lbsa.expires - self.policy.renew_margin and lbsa.care_of == self._care_of
                  and router not in self._exchanges):
                self.counters["lbsa-renewal"] += 1
                actions += self.key_exchange(lbsa.care_of, lbsa.mn_link_local, now,
                                             router=router)
        for care_of, (_, when) in list(self._probed.items()):
            if now >= when + self.policy.dad_window:
                del self._probed[care_of]
        return actions

    # ------------------------------------------------------------------ ICMPv6

    def icmp_received(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                      hop_limit: int, now: float) -> list[Action]:
        """An RA (learn an LKE-capable AR), a DAD NS (answer it) or an NA (an impostor?)."""
        kind = data[0] if data else None
        if kind not in (ROUTER_ADVERTISEMENT, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT):
            return [self._drop("not-lke")]
        if hop_limit != LINK_HOP_LIMIT:
            return [self._drop("not-link-local")]
        try:
            decoded = decode_nd(data, source, destination, self.codes)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        if kind == ROUTER_ADVERTISEMENT:
            return self._router_advertisement(decoded.message, source, now)
        if kind == NEIGHBOR_SOLICITATION:
            return self._solicitation(decoded, now)
        return self._advertisement(decoded.message, now)

    def _router_advertisement(self, advertisement, source: IPv6Address,
                              now: float) -> list[Action]:
        capability = advertisement.option(LkeCapability)
        if capability is None:
            return []
        if not source.is_link_local:
            return [self._drop("not-link-local")]
        if not advertisement.home_agent:
            return [self._drop("capability-without-h")]
        if advertisement.router_lifetime == 0:
            self._routers.pop(source, None)
            return []
        try:
            key = decode_public_key(capability.public_key, self.policy.min_key_bits,
                                    self.policy.max_key_bits)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        prefixes = tuple(o.prefix for o in advertisement.options
                         if isinstance(o, PrefixInformation) and o.on_link)
        max_lifetime = min(capability.max_lifetime, advertisement.router_lifetime)
        self._routers[source] = Router(source, key, max_lifetime, prefixes,
                                       now + advertisement.router_lifetime)
        return []

    def _solicitation(self, decoded, now: float) -> list[Action]:
        solicitation = decoded.message
        option = solicitation.option(DadAuthentication)
        target = solicitation.target
        if option is None:
            return []
        mine = [lbsa.kbm for lbsa in self._lbsas.values()
                if lbsa.care_of == target and lbsa.ar_address == option.ar_address]
        mine += [e.kbm for e in self._exchanges.values() if e.care_of == target]
        if not mine and target != self._care_of:
            return []
        for kbm in mine:
            try:
                verify_dad(decoded, kbm)
            except LkeError:
                continue
            self._probed[target] = (option.ar_address, now)
            self.counters["dad-answered"] += 1
            return [self._neighbor_advertisement(
                target, (DadAuthentication(option.nonce, option.ar_address),), kbm)]
        self.counters["dad-foreign-probe"] += 1
        return [self._neighbor_advertisement(target, (), None)]

    def _neighbor_advertisement(self, target: IPv6Address, options: tuple,
                                kbm: bytes | None) -> SendIcmp:
        lla = self._link_layer_address(target)
        if lla is not None:
            options = (LinkLayerAddress(TARGET_LINK_LAYER_ADDRESS, lla), *options)
        advertisement = NeighborAdvertisement(target, options=options)
        return SendIcmp(target, ALL_NODES,
                        advertisement.encode(target, ALL_NODES, self.codes, kbm=kbm))

    def _advertisement(self, advertisement, now: float) -> list[Action]:
        probed = self._probed.get(advertisement.target)
        if (probed is None or now >= probed[1] + self.policy.dad_window
                or advertisement.option(DadAuthentication) is not None):
            return []
        lla = next((o.address for o in advertisement.options
                    if isinstance(o, LinkLayerAddress)
                    and o.option_type == TARGET_LINK_LAYER_ADDRESS), None)
        if lla is not None and lla == self._link_layer_address(advertisement.target):
            return []  # the MN's own kernel
        ar_address, _ = probed
        del self._probed[advertisement.target]
        router = next((r for r, lbsa in self._lbsas.items()
                       if lbsa.ar_address == ar_address), None)
        if router is None:
            return [self._drop("dad-impostor")]
        lbsa = self._lbsas.pop(router)
        actions: list[Action] = [self._lost(router, "dad-impostor")]
        return actions + self.key_exchange(lbsa.care_of, lbsa.mn_link_local, now,
                                           router=router)

    # ------------------------------------------------------------------ Mobility Header

    def mobility_received(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                          hop_limit: int, now: float) -> list[Action]:
        """A KE Ack (on the link) or a BA (at the new care-of address)."""
        kind = mh_type(data)
        if kind == self.codes.ke_ack:
            return self._key_exchange_ack(data, source, destination, hop_limit, now)
        if kind == MH_BINDING_ACK:
            return self._binding_ack(data, source, destination, now)
        return [self._drop("unknown-mh-type")]

    def _key_exchange_ack(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                          hop_limit: int, now: float) -> list[Action]:
        exchange = self._exchanges.get(source)
        if hop_limit != LINK_HOP_LIMIT or not source.is_link_local:
            return [self._drop("not-link-local")]
        if exchange is None or destination != exchange.link_local:
            return [self._drop("unexpected-ack")]
        try:
            ack = KeyExchangeAck.decode(data, source, destination, self.codes)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        if ack.sequence not in exchange.sequences or ack.care_of != exchange.care_of:
            return [self._drop("unexpected-ack")]
        try:
            ack.verify(exchange.kbm)
        except LkeError:
            self.counters["bad-ack"] += 1
            if source in self._lbsas:
                del self._lbsas[source]
                return [LbsaLost(source, "bad-ack")]
            return [Drop("bad-ack")]
        del self._exchanges[source]
        if not ack.accepted:
            self.counters[f"ke-refused-{ack.status}"] += 1
            return [LbsaLost(source, "ke-refused")]
        lbsa = Lbsa(exchange.care_of, ack.ar_address, source, exchange.link_local, exchange.kbm,
                    exchange.sent_at + ack.lifetime_seconds, ack.sequence)
        self._lbsas[source] = lbsa
        self._bu_sequence.pop(lbsa.care_of, None)  # a new LBSA: a new random start (§2.1)
        self.counters["lbsa-ready"] += 1
        return [LbsaReady(source, lbsa)]

    def _binding_ack(self, data: bytes, source: IPv6Address, destination: IPv6Address,
                     now: float) -> list[Action]:
        try:
            ack = LkeBindingAck.decode(data, source, destination, self.codes)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        update = self._updates.get(ack.previous)
        if (update is None or source != update.lbsa.ar_address
                or destination != update.care_of):
            return [self._drop("unexpected-ba")]
        try:
            ack.verify(update.lbsa.kbm)
        except LkeError as exc:
            return [self._drop(exc.reason)]
        router = update.lbsa.ar_link_local
        if ack.status == BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            if update.sends_left == 0:
                del self._updates[ack.previous]
                return [PreviousRefused(router, ack.previous, int(ack.status))]
            update.sequence = (ack.sequence + 1) % SEQUENCE_MODULUS
            return [self._send_update(update, now)]
        if ack.sequence != update.sequence:
            return [self._drop("unexpected-ba")]
        del self._updates[ack.previous]
        if not ack.accepted:
            self.counters[f"ba-refused-{int(ack.status)}"] += 1
            return [PreviousRefused(router, ack.previous, int(ack.status))]
        self._bu_sequence[ack.previous] = ack.sequence
        self.counters["previous-bound"] += 1
        actions: list[Action] = [PreviousBound(router, ack.previous, update.care_of,
                                               ack.lifetime_seconds)]
        if ack.finished_nonce is not None:
            finished = Finished(int(ack.status), ack.sequence, ack.lifetime, ack.finished_nonce,
                                ack.previous)
            actions.append(SendMobility(update.care_of, source, finished.encode(
                update.care_of, source, update.lbsa.kbm, self.codes)))
        return actions

    # ------------------------------------------------------------------ helpers

    def _next_ke_sequence(self, router: IPv6Address, now: float) -> int:
        sequence = int(now) % SEQUENCE_MODULUS
        last = self._last_ke_sequence.get(router)
        if last is not None and not is_newer(sequence, last):
            sequence = (last + 1) % SEQUENCE_MODULUS
        self._last_ke_sequence[router] = sequence
        return sequence

    def _send_request(self, exchange: _Exchange, known: Router, now: float) -> SendMobility:
        sequence = self._next_ke_sequence(exchange.router, now)
        exchange.sequences.append(sequence)
        exchange.sent_at = now
        exchange.sends_left -= 1
        requested = lifetime_units(min(self.policy.lifetime, known.max_lifetime))
        request = KeyExchangeRequest(sequence, exchange.care_of, max(requested, 1),
                                     wrap_kbm(known.public_key, exchange.kbm, exchange.care_of))
        return SendMobility(exchange.link_local, exchange.router,
                            request.encode(exchange.link_local, exchange.router, self.codes))

    def _send_update(self, update: _Update, now: float) -> SendMobility:
        update.sends_left -= 1
        update.deadline = now + update.timeout
        self._bu_sequence[update.lbsa.care_of] = update.sequence
        destination = update.lbsa.ar_address
        message = LkeBindingUpdate(update.sequence, update.lifetime, update.lbsa.care_of)
        return SendMobility(update.care_of, destination, message.encode(
            update.care_of, destination, update.lbsa.kbm, self.codes))

    def _link_layer_address(self, care_of: IPv6Address) -> bytes | None:
        lla = self.policy.link_layer_address
        return lla(care_of) if callable(lla) else lla

    def _lost(self, router: IPv6Address, why: str) -> LbsaLost:
        self.counters[f"lbsa-lost-{why}"] += 1
        return LbsaLost(router, why)

    def _drop(self, reason: str) -> Drop:
        self.counters[reason] += 1
        return Drop(reason)
