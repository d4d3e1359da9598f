"""``mip6-ar``'s Twisted shell: raw sockets, the clock, the LBSA file and the tunnel around
one :class:`aaa_mip6.lke.ar.ArCore`.

It decides nothing about the protocol: Router Solicitations, Neighbor Solicitations and
Advertisements from the link and Mobility Headers from anywhere go to the core with their
source, destination and hop limit; the core's actions are carried out in order (a
:class:`StoreLbsa` is on disk before the packet after it leaves). What the shell adds is
I/O: the periodic Router Advertisement, the solicited-node groups of the MNs' care-of
addresses (so a later DAD probe for one reaches the core, which answers with the cached
Advertisement), and the status file.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from ipaddress import IPv6Address
from pathlib import Path

from twisted.internet import task

from aaa_mip6.iana import NEXT_HEADER_ICMPV6, NEXT_HEADER_MOBILITY
from aaa_mip6.lke import actions as lke
from aaa_mip6.lke.nd import (
    NEIGHBOR_ADVERTISEMENT,
    NEIGHBOR_SOLICITATION,
    ROUTER_SOLICITATION,
    solicited_node,
)
from aaa_mip6.logthrottle import LogThrottle
from aaa_mip6.twisted import rawip
from aaa_mip6.twisted.timer import rearm
from aaa_mip6.twisted.tun import DeviceReader, TunnelError

from .forwarder import Forwarder
from .status import write_status
from .store import LbsaFile

log = logging.getLogger("mip6.ar")

ICMP_TYPES = (ROUTER_SOLICITATION, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT)  # to the core
ALL_ROUTERS = IPv6Address("ff02::2")
STATUS_DELAY = 0.1  # seconds: the status file is written at most this late after a change
DROP_LOG_INTERVAL = 10.0  # seconds between log lines of one drop reason


class AccessRouter:
    """One link's LKE service: the core, its sockets, its timers."""

    def __init__(self, reactor, core, *, interface: str, interface_index: int,
                 ra_interval: float, store: LbsaFile, forwarder: Forwarder,
                 status_path: Path | None, sockets: dict[str, socket.socket]):
        self.reactor = reactor
        self.core = core
        self.interface = interface
        self.interface_index = interface_index
        self.ra_interval = ra_interval
        self.store = store
        self.forwarder = forwarder
        self.status_path = status_path
        self.sockets = sockets
        self.send_failures: Counter[str] = Counter()
        self._readers: list[rawip.SocketReader] = []
        self._timer = None
        self._advertising: task.LoopingCall | None = None
        self._expiring: task.LoopingCall | None = None
        self._status_pending = None
        self.drop_log = LogThrottle(DROP_LOG_INTERVAL)

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        rawip.join_group(self.sockets["icmp"], ALL_ROUTERS, self.interface_index)
        self._perform(self.core.restore(self.store.load(), self.reactor.seconds()))
        for lbsa in self.core.lbsas:  # restored: DAD probes for them reach the core again
            rawip.join_group(self.sockets["icmp"], solicited_node(lbsa.care_of),
                             self.interface_index)
        for name, deliver in (("icmp", self._icmp), ("mobility", self._mobility),
                              ("tunnel", self.forwarder.from_tunnel)):
            reader = rawip.SocketReader(self.sockets[name], deliver, f"mip6-ar-{name}")
            self.reactor.addReader(reader)
            self._readers.append(reader)
        device_reader = DeviceReader(self.forwarder.device, self.forwarder.from_device,
                                     "mip6-ar-tun")
        self.reactor.addReader(device_reader)
        self._readers.append(device_reader)
        self._advertising = task.LoopingCall(self.advertise)
        self._advertising.clock = self.reactor
        self._advertising.start(self.ra_interval, now=True)
        self._expiring = task.LoopingCall(self._expire_forwarding)
        self._expiring.clock = self.reactor
        self._expiring.start(1.0, now=False)
        self._write_status()

    def stop(self) -> None:
        for looping in (self._advertising, self._expiring):
            if looping is not None and looping.running:
                looping.stop()
        for reader in self._readers:
            self.reactor.removeReader(reader)
        self._readers = []
        for call in (self._timer, self._status_pending):
            if call is not None and call.active():
                call.cancel()
        self._write_status()

    def advertise(self) -> None:
        self._perform(self.core.router_advertisement(self.reactor.seconds()))

    def status(self) -> dict:
        """What the status file and SIGUSR1 show: LBSAs, bindings, the core's counters by
        reason (refusals and successes, docs/lke.md), the tunnel's."""
        return {
            "interface": self.interface,
            "lbsas": {"valid": len(self.core.lbsas)},
            "bindings": {str(previous): str(binding.current)
                         for previous, binding in self.forwarder.by_previous.items()},
            "counters": dict(sorted(self.core.counters.items())),
            "tunnel": dict(sorted(self.forwarder.counters.items())),
            "send-failures": dict(sorted(self.send_failures.items())),
        }

    # ----------------------------------------------------------------- input

    def _icmp(self, received: rawip.Received) -> None:
        if received.interface != self.interface_index:
            return  # the link this AR serves only
        self._perform(self.core.icmp_received(received.data, received.source,
                                              received.destination, received.hop_limit,
                                              self.reactor.seconds()))

    def _mobility(self, received: rawip.Received) -> None:
        self._perform(self.core.mobility_received(received.data, received.source,
                                                  received.destination, received.hop_limit,
                                                  self.reactor.seconds()))

    def _timer_fired(self) -> None:
        self._timer = None
        self._perform(self.core.handle_timer(self.reactor.seconds()))

    def _expire_forwarding(self) -> None:
        """A binding past its end stops even if the core's own timer has not run yet."""
        if self.forwarder.expire(self.reactor.seconds()):
            self._status_soon()

    # ----------------------------------------------------------------- output

    def _perform(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, lke.SendIcmp):
                self._send(action, NEXT_HEADER_ICMPV6, "icmp")
            elif isinstance(action, lke.SendMobility):
                self._send(action, NEXT_HEADER_MOBILITY, "mobility")
            elif isinstance(action, lke.StoreLbsa):
                self.store.put(action.lbsa)
                rawip.join_group(self.sockets["icmp"], solicited_node(action.lbsa.care_of),
                                 self.interface_index)
            elif isinstance(action, lke.ForgetLbsa):
                self.store.remove(action.care_of)
                rawip.leave_group(self.sockets["icmp"], solicited_node(action.care_of),
                                  self.interface_index)
                log.info("LBSA of %s removed: %s", action.care_of, action.why)
            elif isinstance(action, lke.BindPrevious):
                try:
                    self.forwarder.bind(action.previous, action.care_of, action.expires)
                except TunnelError as error:
                    self.send_failures["route"] += 1
                    log.warning("cannot route %s into %s: %s", action.previous,
                                self.forwarder.device.name, error)
                    continue
                log.info("temporary home agent for %s: tunneling to %s for %.0f s",
                         action.previous, action.care_of,
                         action.expires - self.reactor.seconds())
            elif isinstance(action, lke.UnbindPrevious):
                self.forwarder.unbind(action.previous)
                log.info("stopped tunneling for %s: %s", action.previous, action.why)
            elif isinstance(action, lke.Drop):
                self._log_drop(action.reason)
        self._schedule()
        if actions:
            self._status_soon()

    def _log_drop(self, reason: str) -> None:
        """At most one line per reason per DROP_LOG_INTERVAL (every one at debug)."""
        held = self.drop_log.admit(reason, self.reactor.seconds())
        if held is None:
            log.debug("dropped: %s", reason)
        else:
            log.info("dropped: %s%s", reason, f" ({held} more since the last line)"
                     if held else "")

    def _status_soon(self) -> None:
        """Write the status file within STATUS_DELAY, once for a burst of changes."""
        if self._status_pending is None or not self._status_pending.active():
            self._status_pending = self.reactor.callLater(STATUS_DELAY, self._write_status)

    def _send(self, action, next_header: int, kind: str) -> None:
        if not rawip.send_packet(self.sockets["sender"], action.source, action.destination,
                                 next_header, action.data, self.interface_index):
            self.send_failures[kind] += 1

    def _schedule(self) -> None:
        self._timer = rearm(self.reactor, self._timer, self.core.timer(), self._timer_fired)

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        try:
            write_status(self.status_path, self.status())
        except OSError as error:
            log.warning("status file %s: %s", self.status_path, error.strerror or error)
