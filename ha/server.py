"""The HA's Twisted shell: UDP sockets and the TUN device in, the core's actions out.

Everything protocol-related is in :mod:`ha.core`; this module moves bytes, asks the SA
source and the sequence ledger, and runs the clocks (binding expiry every second, SA
refresh every ``sa_refresh`` seconds, ledger rows of SAs past their validity end purged
every ``ledger_purge_interval`` seconds, counters every ``stats_interval`` seconds and when
the program asks (``mip6-ha`` on SIGUSR1) — logged, and written as JSON to
``status_path`` when one is set). Why a packet was dropped is logged at info level, at
most one line per reason every DROP_LOG_INTERVAL seconds (with the number held back),
and every drop at debug level.

Which socket a datagram leaves by decides its source address, and an MN drops replies
that do not come from the HA address it was given. With one socket per address family
that is the family's socket. With several of one family, a reply (BA, Binding Error)
leaves by the socket the datagram it answers came in on, and tunneled data by the one
the binding's BU came in on; that bookkeeping is only switched on then, so the common
case pays nothing per packet. On a wildcard address the kernel picks the source address,
which is why :meth:`HomeAgentServer.listen` warns about it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable

from twisted.internet import defer, task
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from aaa_mip6.addresses import format_host_port
from aaa_mip6.logthrottle import LogThrottle
from aaa_mip6.twisted.tun import DeviceReader

from .actions import (
    Deregistered,
    Drop,
    FetchSA,
    PersistSequences,
    Registered,
    SendDatagram,
    WriteTun,
)
from .core import HomeAgentCore
from .sasource import SASource, SequenceLedger

log = logging.getLogger("mip6.ha")

DROP_LOG_INTERVAL = 10.0  # seconds between info lines about drops of one reason

# What an operator can do about a drop, for the reasons a misconfiguration causes.
DROP_HINTS = {
    "malformed": "not a packet this HA can parse; a Binding Update whose Mobility Header "
                 "checksum names another HA address fails here too (is --home-agent the "
                 "address the HAC hands out?)",
    "unknown-spi": "no SA with this SPI in the SA source (does the HAC write to this "
                   "store, or push to this HA?)",
    "bad-icv": "the ICV does not verify: the MN holds other keys for this SPI",
    "replay": "a sequence number seen before or left of the window",
    "unauthorized-hoa": "the home address is not the one the SA authorizes",
    "no-binding": "data before a Binding Update was accepted",
    "revoked": "the SA was revoked",
    "sa-expired": "the SA is past its validity end",
    "scope-mismatch": "a packet type the SA's scope does not allow",
    "not-forwarding": "no --tun: decapsulated data is not forwarded",
}


class _MnSocket(DatagramProtocol):
    """One listening UDP socket; every datagram goes to the server.

    Twisted's port reads datagrams in a loop until the socket is empty (bounded by
    ``maxThroughput``), so one reactor wakeup already serves a burst.
    """

    def __init__(self, server: HomeAgentServer):
        self.server = server
        self.datagramReceived = server.datagram_received  # one call less per packet

    def note_arrivals(self) -> None:
        """Tell the server which socket each datagram came in on, for its replies."""
        server, sock, received = self.server, self.transport.socket, self.server.datagram_received

        def datagram_received(data: bytes, addr: tuple[str, int]) -> None:
            server.arrival = sock
            try:
                received(data, addr)
            finally:
                server.arrival = None

        self.datagramReceived = datagram_received


class HomeAgentServer:
    """Runs one :class:`HomeAgentCore` on real sockets."""

    def __init__(
        self,
        core: HomeAgentCore,
        source: SASource,
        ledger: SequenceLedger,
        *,
        reactor,
        tun=None,
        clock: Callable[[], float] = time.time,
        sa_refresh: float = 30.0,
        stats_interval: float = 60.0,
        ledger_purge_interval: float = 3600.0,
        status_path: str | None = None,
        drop_log_interval: float = DROP_LOG_INTERVAL,
    ):
        self.core = core
        self.source = source
        self.ledger = ledger
        self.reactor = reactor
        self.tun = tun
        self.clock = clock
        self.sa_refresh = sa_refresh
        self.stats_interval = stats_interval
        self.ledger_purge_interval = ledger_purge_interval
        self.status_path = status_path
        self.drop_log = LogThrottle(drop_log_interval)
        self.ports = []
        self._sockets = {}  # 4 or 6 -> a listening socket, for sendto
        self._protocols: list[_MnSocket] = []
        self._families: list[int] = []
        # Only with several sockets of one family (see the module docstring):
        self.tracking = False
        self.arrival = None  # the socket of the datagram being handled
        self._lookup_via = {}  # SPI being looked up -> the socket its first datagram came by
        self._via = {}  # a binding's home address -> the socket its BU came in on
        self._loops = []
        self._reader = None
        # Source calls not answered yet: a store that answers slower than it is asked
        # (or hangs) must not pile up work in the thread pool without bound.
        self._lookups_in_flight = 0
        self.lookups: Counter[str] = Counter()  # by answer, for the metrics
        # UDP datagrams and their octets by PType (-1: an empty datagram), for the metrics
        self.packets_in: Counter[int] = Counter()
        self.octets_in: Counter[int] = Counter()
        self.packets_out: Counter[int] = Counter()
        self.octets_out: Counter[int] = Counter()
        self.observe_lookup: Callable[[float], None] | None = None  # seconds, for metrics
        self._refreshes_in_flight = 0

    def __repr__(self) -> str:
        return f"HomeAgentServer({self.core!r})"

    # ------------------------------------------------------------------ life cycle

    def listen(self, host: str, port: int):
        """Listen on ``host``:``port`` (``::`` is dual-stack on Linux); return the port."""
        protocol = _MnSocket(self)
        listening = self.reactor.listenUDP(port, protocol, interface=host)
        self.ports.append(listening)
        self._protocols.append(protocol)
        family = 6 if ":" in host else 4
        self._sockets.setdefault(family, listening.socket)
        self._families.append(family)
        if ipaddress.ip_address(host.partition("%")[0]).is_unspecified:
            log.warning(
                "listening on the wildcard address %s: the kernel picks the source address "
                "of every reply, and an MN drops replies that do not come from the HA address "
                "it was given (%s); on a host with several addresses listen on that one",
                host, self.core.policy.home_agent)
        if len(set(self._families)) < len(self._families) and not self.tracking:
            self.tracking = True
            for each in self._protocols:
                each.note_arrivals()
        elif self.tracking:
            protocol.note_arrivals()
        return listening

    def start(self) -> None:
        """Start the clocks and the TUN reader; hook pushes from the source."""
        self.source.on_change = self._sa_changed
        for interval, call in ((1.0, self._timer_fired), (self.sa_refresh, self._refresh),
                               (self.ledger_purge_interval, self._purge_ledger),
                               (self.stats_interval, self.report)):
            loop = task.LoopingCall(call)
            loop.clock = self.reactor
            loop.start(interval, now=False)
            self._loops.append(loop)
        if self.tun is not None:
            self._reader = DeviceReader(self.tun, self.tun_packet, "mip6-ha tun")
            self.reactor.addReader(self._reader)

    def reload(self, status_path: str | None) -> None:
        """The program's reload (SIGHUP): a new status file, and every held SA re-read now."""
        self.status_path = status_path
        self._refresh()

    @defer.inlineCallbacks
    def stop(self):
        """Save the exact sequence marks, stop the clocks and close the sockets."""
        for action in self.core.shutdown():
            self._persist(action)
        for loop in self._loops:
            if loop.running:
                loop.stop()
        if self._reader is not None:
            self.reactor.removeReader(self._reader)
        for listening in self.ports:
            yield listening.stopListening()
        self.report()

    # ------------------------------------------------------------------ events

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """A datagram from ``addr`` = (host, port), as Twisted passes it."""
        ptype = data[0] >> 4 if data else -1  # RFC 6618's PType, the first 4 bits
        self.packets_in[ptype] += 1
        self.octets_in[ptype] += len(data)
        self._carry_out(self.core.datagram_received(addr[0], addr[1], data, self.clock()), addr)

    def tun_packet(self, packet: bytes) -> None:
        self._carry_out(self.core.tun_packet(packet, self.clock()))

    def _sa_changed(self, sa) -> None:
        self._carry_out(self.core.sa_changed(sa))

    def _timer_fired(self) -> None:
        self._carry_out(self.core.handle_timer(self.clock()))
        if self.tracking:  # a binding displaced by another, a lookup the core gave up on
            bindings, core = self.core.bindings, self.core
            for address in [a for a in self._via if bindings.get(a) is None]:
                del self._via[address]
            for spi in [spi for spi in self._lookup_via if not core.is_pending(spi)]:
                del self._lookup_via[spi]

    def _purge_ledger(self) -> None:
        """Forget the marks of SAs past their validity end (and the core's grace)."""
        before = self.clock() - self.core.policy.expired_sa_grace
        purged = self.ledger.purge(before)
        self.core.counters["ledger-purged"] += purged
        if purged:
            log.info("sequence ledger: forgot %d SAs past their validity end", purged)

    def _refresh(self) -> None:
        """Re-read every SA the core holds, so revocations in the store take effect;
        skipped (counted ``sa-refresh-skipped``) while the last round is unanswered."""
        if self._refreshes_in_flight:
            self.core.counters["sa-refresh-skipped"] += 1
            return
        spis = self.core.spis
        self._refreshes_in_flight = len(spis)
        for spi in spis:
            lookup = defer.maybeDeferred(self.source.lookup, spi)
            lookup.addCallback(self._refreshed)
            lookup.addErrback(self._source_failed, spi)
            lookup.addBoth(self._refresh_answered)

    def _refreshed(self, sa) -> None:
        if sa is not None:
            self._sa_changed(sa)

    def _refresh_answered(self, _) -> None:
        self._refreshes_in_flight -= 1

    def _fetch(self, spi: int) -> None:
        """Look ``spi`` up; with as many lookups unanswered as the backlog holds (the core
        gave up on them, the source did not), fail it at once as ``lookup-failed``."""
        if self._lookups_in_flight >= self.core.policy.max_pending_lookups:
            self._answer_lookup(spi, self.core.lookup_failed(spi))
            return
        self._lookups_in_flight += 1
        lookup = defer.maybeDeferred(self.source.lookup, spi)
        lookup.addBoth(self._lookup_answered, self.clock())
        lookup.addCallbacks(self._found, self._lookup_failed,
                            callbackArgs=(spi,), errbackArgs=(spi,))

    def _lookup_answered(self, outcome, started: float):
        """Count and time one lookup of an unknown SPI by its answer (found, not-found,
        failed); ``outcome`` passes through."""
        self._lookups_in_flight -= 1
        if isinstance(outcome, Failure):
            self.lookups["failed"] += 1
        else:
            self.lookups["not-found" if outcome is None else "found"] += 1
        if self.observe_lookup is not None:
            self.observe_lookup(self.clock() - started)
        return outcome

    def _found(self, sa, spi: int) -> None:
        marks = None
        if sa is not None:
            marks = self.ledger.load(spi, sa.validity_end.timestamp())
        self._answer_lookup(spi, self.core.sa_found(spi, sa, marks, self.clock()))

    def _lookup_failed(self, failure, spi: int) -> None:
        self._source_failed(failure, spi)
        self._answer_lookup(spi, self.core.lookup_failed(spi))

    def _answer_lookup(self, spi: int, actions: list) -> None:
        """Carry out what a lookup's answer caused, replies by its first datagram's socket."""
        outer, self.arrival = self.arrival, self._lookup_via.pop(spi, None)
        try:
            self._carry_out(actions)
        finally:
            self.arrival = outer

    def _source_failed(self, failure, spi: int) -> None:
        log.warning("SA source failed for SPI %d: %s", spi, failure.getErrorMessage())
        return None

    # ------------------------------------------------------------------ actions

    def _carry_out(self, actions: list, peer: tuple[str, int] | None = None) -> None:
        """Perform the core's actions; ``peer`` sent the datagram they answer, if any."""
        for action in actions:
            kind = type(action)
            if kind is WriteTun:  # the per-packet action first
                if self.tun is None or not self.tun.write(action.packet):
                    self.core.counters["tun-refused"] += 1
            elif kind is SendDatagram:
                self._send(action)
            elif kind is PersistSequences:
                self._persist(action)
            elif kind is FetchSA:
                if self.tracking:
                    self._lookup_via[action.spi] = self.arrival
                self._fetch(action.spi)
            elif kind is Registered:
                binding = action.binding
                if self.tracking:
                    self._via[binding.home_address] = self.arrival
                log.info("binding %s -> [%s]:%d spi %d until %d", binding.home_address,
                         *binding.care_of, binding.spi, binding.expires,
                         extra={"event": "registration",
                                "home_address": str(binding.home_address),
                                "care_of": format_host_port(*binding.care_of),
                                "spi": binding.spi, "sequence": binding.sequence,
                                "expires": int(binding.expires), "status": 0})
            elif kind is Deregistered:
                self._via.pop(action.binding.home_address, None)
                log.info("binding %s removed (%s)", action.binding.home_address, action.why,
                         extra={"event": "deregistration",
                                "home_address": str(action.binding.home_address),
                                "spi": action.binding.spi, "reason": action.why})
            elif kind is Drop:
                self._log_drop(action.reason, peer)

    def _log_drop(self, reason: str, peer: tuple[str, int] | None) -> None:
        """Every drop at debug level; at info level one line per reason per interval.

        ``peer`` is None for a packet from the home network, and for datagrams that
        waited for an SA lookup (the core holds their senders)."""
        sender = None if peer is None else format_host_port(*peer)
        source = "" if sender is None else f" from {sender}"
        fields = {"event": "drop", "source": sender, "reason": reason}
        held = self.drop_log.admit(reason, self.clock())
        if held is None:
            log.debug("dropped a packet%s: %s", source, reason, extra=fields)
            return
        hint = DROP_HINTS.get(reason)
        log.info("dropped a packet%s: %s%s%s", source, reason,
                 f" ({hint})" if hint else "",
                 f"; {held} more {reason} drop(s) not logged in the last "
                 f"{self.drop_log.interval:g} s" if held else "",
                 extra={**fields, "hint": hint, "held_back": held})

    def _send(self, action: SendDatagram) -> None:
        """sendto on the socket itself: Twisted's write() re-parses the address every time."""
        sock = self._reply_socket(action) if self.tracking else None
        if sock is None:
            sock = self._sockets.get(6 if ":" in action.host else 4)
        if sock is None:
            self.core.counters["no-socket"] += 1
            return
        try:
            sock.sendto(action.data, (action.host, action.port))
        except OSError:  # full send buffer, unreachable, too big: the packet is lost, as UDP is
            self.core.counters["send-failed"] += 1
            return
        ptype = action.data[0] >> 4
        self.packets_out[ptype] += 1
        self.octets_out[ptype] += len(action.data)

    def _reply_socket(self, action: SendDatagram):
        """The socket the datagram being answered came in on, else the one the binding
        of the destination care-of came in on; None to fall back on the family's."""
        if self.arrival is not None:
            return self.arrival
        binding = self.core.bindings.get_by_care_of((action.host, action.port))
        return None if binding is None else self._via.get(binding.home_address)

    def _persist(self, action: PersistSequences) -> None:
        self.ledger.save(action.spi, action.validity_end, action.inbound_floor,
                         action.outbound_next)

    def flush(self, spi: int) -> bool:
        """Drop SA ``spi`` and its binding (``mip6-ha flush``); False if not held."""
        actions = self.core.flush(spi)
        self._carry_out(actions)
        if actions:
            log.info("SA %d flushed by the operator: looked up again at the MN's next "
                     "datagram", spi)
        return bool(actions)

    # ------------------------------------------------------------------ counters

    def status(self) -> dict:
        return {
            "time": int(self.clock()),
            "bindings": len(self.core.bindings),
            "sas": len(self.core.spis),
            "counters": dict(sorted(self.core.counters.items())),
        }

    def report(self) -> None:
        """Log the counters; write them to the status file when there is one.

        A status file that cannot be written is warned about (at most once per drop-log
        interval) and the counters go on being logged."""
        status = self.status()
        log.info("status %s", json.dumps(status, separators=(",", ":")))
        if self.status_path:
            temporary = f"{self.status_path}.tmp"
            try:
                with open(temporary, "w", encoding="utf-8") as out:
                    json.dump(status, out)
                os.replace(temporary, self.status_path)
            except OSError as error:
                if self.drop_log.admit("status-file", self.clock()) is not None:
                    log.warning("status_file %s: cannot write: %s", self.status_path,
                                error.strerror or error)
