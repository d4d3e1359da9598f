"""The MN's Twisted shell: a UDP socket at the care-of address, the clock, and the tunnel.

:class:`MobileSession` moves bytes between a :class:`mn.mobility.MobilityMachine`,
one UDP socket bound to the current care-of address, and (optionally) a packet
device such as :class:`mn.tunnel.Tunnel`. It decides nothing about the protocol:
it feeds the machine datagrams and the time, performs the actions it returns, and
calls the machine's :meth:`~mn.mobility.MobilityMachine.handle_timer` at its timer().
When the machine asks to go back to the HAC, the session calls ``renew`` (a new
bootstrap) when :class:`mn.rebootstrap.RebootstrapPolicy` says, and hands the new SA
to the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from ipaddress import ip_address

from twisted.internet import defer, task
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.python import log

from aaa_mip6.actions import Action
from aaa_mip6.addresses import format_host_port
from aaa_mip6.mobility.messages import BindingAckStatus
from aaa_mip6.sa import HomeAgent, IPAddress
from aaa_mip6.twisted.tun import DeviceReader

from aaa_mip6.twisted.routes import source_address_towards
from aaa_mip6.twisted.tls import ClientTLS
from aaa_mip6.twisted.timer import rearm

from . import client
from .bootstrap import BootstrapMachine, Bootstrapped
from .actions import (
    Deliver,
    Deregistered,
    GiveUp,
    Rebootstrap,
    Registered,
    RegistrationFailed,
    Transmit,
    Wait,
)
from .hacset import HacSet
from .mobility import DEFAULT_LIFETIME, DEFAULT_MAX_ATTEMPTS, Binding, MobilityMachine
from .rebootstrap import RebootstrapPolicy

DEREGISTER_TIMEOUT = 3.0  # seconds stop() waits for the de-registration's BA


class RegistrationError(Exception):
    """The registration ended without a binding: the HA refused, never answered, or the
    rebootstrap it asked for failed. ``reason`` and ``status`` as in
    :class:`mn.actions.RegistrationFailed`, plus ``no-rebootstrap`` (the session has no
    ``renew``), ``rebootstrap-failed``, ``rebootstrap-loop`` (``rebootstrap.MAX_IN_A_ROW``
    rebootstraps in a row never got a registration), ``no-route`` and ``care-of`` (the
    care-of address cannot be bound: not an address of this host). The message names
    the home agent, the care-of address and what went wrong."""

    def __init__(self, message: str, *, reason: str, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


def local_address_towards(home_agent: HomeAgent) -> IPAddress:
    """The source address the kernel would use to reach the HA: the MN's care-of address.

    Tries the HA's IPv6 address first, then IPv4.
    """
    last_error: OSError | None = None
    for address in (home_agent.address6, home_agent.address4):
        if address is None:
            continue
        try:
            return source_address_towards(address, home_agent.port)
        except OSError as error:
            last_error = error
    raise RegistrationError(
        f"registration with the home agent {home_agent_text(home_agent)} failed: no route "
        f"to it ({getattr(last_error, 'strerror', None) or last_error})", reason="no-route")


def home_agent_text(home_agent: HomeAgent, care_of: IPAddress | None = None) -> str:
    """The HA as ``[v6]:port`` or ``v4:port``: the address a BU from ``care_of`` goes to
    (without one, or when the HA has no address of its IP version, every address the HA
    has, IPv6 first)."""
    addresses = [home_agent.address6, home_agent.address4]
    if care_of is not None:
        matching = home_agent.address4 if care_of.version == 4 else home_agent.address6
        addresses = [matching] if matching is not None else addresses
    return " or ".join(format_host_port(address, home_agent.port)
                       for address in addresses if address is not None)


class _HomeAgentSocket(DatagramProtocol):
    """The MN's UDP socket: datagrams from the HA's address and port go to the session."""

    def __init__(self, session: MobileSession):
        self.session = session

    def datagramReceived(self, datagram: bytes, address) -> None:  # noqa: N802 (Twisted API)
        self.session._datagram(datagram, ip_address(address[0].split("%")[0]), address[1])


class MobileSession:
    """One MN at its HA: registration, refresh, handover, rebootstrap and tunneled data.

    ``renew()`` returns a Deferred firing with a new :class:`mn.bootstrap.Bootstrapped`
    (None: a request for a new SA ends the session with :class:`RegistrationError`).
    ``on_event`` sees every :class:`Registered`, :class:`Deregistered`,
    :class:`RegistrationFailed` and :class:`Rebootstrap`. Packets that come through
    the tunnel go to ``device.write`` (see :meth:`attach`) or to ``deliver``.
    """

    def __init__(
        self,
        reactor,
        machine: MobilityMachine,
        *,
        renew: Callable[[], defer.Deferred] | None = None,
        on_event: Callable[[Action], None] | None = None,
        deliver: Callable[[bytes], None] | None = None,
    ):
        self.reactor = reactor
        self.machine = machine
        self.renew = renew
        self.on_event = on_event
        self.deliver = deliver
        self.foreign_datagrams = 0  # datagrams not from the HA's address and port
        self.send_failures = 0  # datagrams the kernel refused (no route while moving)
        self._port = None
        self._timer = None
        self._reader: DeviceReader | None = None
        self._follow: task.LoopingCall | None = None
        self._waiting: list[defer.Deferred] = []
        self._registering_since: float | None = None  # when the pending registration began
        self._rebootstraps = RebootstrapPolicy()
        self._renewing = False  # a rebootstrap is waiting out its delay or running
        self._delayed_renewal = None  # the reactor call that starts it
        self.on_moving: Callable[[IPAddress], None] | None = None  # before each (re)registration

    # ---------------------------------------------------------------- control

    def start(self, care_of: IPAddress | None = None,
              give_up_at: float | None = None) -> defer.Deferred:
        """Register from ``care_of`` (default: the address that routes to the HA).

        Fires with the :class:`mn.mobility.Binding` once the HA accepts, or fails
        with :class:`RegistrationError`, at the latest at ``give_up_at`` (reactor time).
        """
        return self.move(care_of, give_up_at)

    def move(self, care_of: IPAddress | None = None,
             give_up_at: float | None = None) -> defer.Deferred:
        """Handover: rebind the socket to the new care-of address and re-register (same SA)."""
        try:
            care_of = ip_address(care_of) if care_of else local_address_towards(
                self.machine.home_agent)
            if self.machine.home_agent_address(care_of) is not None:  # else the machine says
                self._listen(care_of)
        except RegistrationError:
            return defer.fail()
        except CannotListenError as error:
            return defer.fail(RegistrationError(
                f"registration with the home agent "
                f"{home_agent_text(self.machine.home_agent, care_of)} failed: cannot use the "
                f"care-of address {care_of}: {_strerror(error)} (is it an address of this "
                f"host?)", reason="care-of"))
        if self.on_moving is not None and care_of != self.machine.care_of:
            self.on_moving(care_of)  # LKE: the BU to the previous AR leaves first
        waiting = self._wait()
        self._registering_since = self.reactor.seconds()
        self._perform(self.machine.register(care_of, self.reactor.seconds(),
                                            give_up_at=give_up_at))
        return waiting

    def follow_care_of(self, interval: float) -> None:
        """Every ``interval`` seconds, hand over if the address that routes to the HA changed.

        This is how a new link or address (the old one gone) becomes a new care-of address
        without anyone telling the MN; with no route at all it waits for one.
        """
        self._follow = task.LoopingCall(self._check_care_of)
        self._follow.clock = self.reactor
        self._follow.start(interval, now=False)

    def _check_care_of(self) -> None:
        try:
            current = local_address_towards(self.machine.home_agent)
        except RegistrationError:
            return
        if current != self.machine.care_of:
            log.msg(f"mip6-mn: care-of address {self.machine.care_of} -> {current}")
            # A refused move is reported through on_event; nothing more to do here.
            self.move(current).addErrback(lambda failure: failure.trap(RegistrationError))

    def attach(self, device) -> None:
        """Tunnel through ``device`` (``fileno``, non-blocking ``read_batch``, ``write``)."""
        self.deliver = device.write
        self._reader = DeviceReader(device, self.send, "mip6-mn-tun")
        self.reactor.addReader(self._reader)

    def send(self, packet: bytes) -> bool:
        """Tunnel one inner packet to the HA; False if the machine refused it (counted)."""
        transmit = self.machine.encapsulate(packet, self.reactor.seconds())
        if transmit is None:
            self._schedule()  # an exhausted sequence space makes the timer due at once
            return False
        self._transmit(transmit)
        return True

    @defer.inlineCallbacks
    def stop(self, deregister: bool = True):
        """De-register (waiting at most DEREGISTER_TIMEOUT), then close socket, timers, reader.

        A rebootstrap still waiting out its delay is called off first, so that none starts
        while the session shuts down.
        """
        if self._delayed_renewal is not None and self._delayed_renewal.active():
            self._delayed_renewal.cancel()
        self._delayed_renewal = None
        if deregister and self.machine.binding is not None:
            waiting = self._wait()
            self._perform(self.machine.deregister(self.reactor.seconds()))
            waiting.addTimeout(DEREGISTER_TIMEOUT, self.reactor)
            try:
                yield waiting
            except (RegistrationError, defer.TimeoutError):
                pass
        if self._follow is not None and self._follow.running:
            self._follow.stop()
        if self._reader is not None:
            self.reactor.removeReader(self._reader)
            self._reader = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._port is not None:
            yield self._port.stopListening()
            self._port = None

    # ---------------------------------------------------------------- plumbing

    def _listen(self, care_of: IPAddress) -> None:
        if self._port is not None:
            self._port.stopListening()
        self._port = self.reactor.listenUDP(0, _HomeAgentSocket(self), interface=str(care_of))

    def _wait(self) -> defer.Deferred:
        waiting = defer.Deferred()
        self._waiting.append(waiting)
        return waiting

    def _settle(self, outcome) -> None:
        waiting, self._waiting = self._waiting, []
        for deferred in waiting:
            if isinstance(outcome, Exception):
                deferred.errback(outcome)
            else:
                deferred.callback(outcome)

    def _datagram(self, datagram: bytes, address: IPAddress, port: int) -> None:
        home_agent = self.machine.home_agent
        if port != home_agent.port or address not in (home_agent.address6, home_agent.address4):
            self.foreign_datagrams += 1
            return
        self._perform(self.machine.receive(datagram, self.reactor.seconds()))

    def _timer_fired(self) -> None:
        self._timer = None
        self._perform(self.machine.handle_timer(self.reactor.seconds()))

    def _schedule(self) -> None:
        self._timer = rearm(self.reactor, self._timer, self.machine.timer(), self._timer_fired)

    def _transmit(self, transmit: Transmit) -> None:
        """Send one datagram; while the MN moves there may be no route: count and go on."""
        if self._port is None:
            return
        try:
            self._port.write(transmit.packet, (str(transmit.address), transmit.port))
        except OSError:
            self.send_failures += 1

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self._transmit(action)
                continue
            if isinstance(action, Deliver):
                if self.deliver is not None:
                    self.deliver(action.packet)
                continue
            if self.on_event is not None:
                self.on_event(action)
            if isinstance(action, Registered):
                self._rebootstraps.registered()
                self._settle(action.binding)
            elif isinstance(action, Deregistered):
                self._settle(None)
            elif isinstance(action, RegistrationFailed):
                self._settle(RegistrationError(self.describe(action), reason=action.reason,
                                               status=action.status))
            elif isinstance(action, Rebootstrap):
                self._rebootstrap(action)
        self._schedule()

    def _rebootstrap(self, request: Rebootstrap) -> None:
        """Bootstrap again when the policy says (at once, or after its backoff).

        One at a time: a handover while a rebootstrap is under way sends under the old SA
        and may be answered 176 again, which asks for nothing new.
        """
        if self.renew is None:
            self._perform([RegistrationFailed("no-rebootstrap")])
            return
        if self._renewing:
            return
        self._follow_policy(request, self._rebootstraps.asked(request.reason))

    def _follow_policy(self, request: Rebootstrap, step: Wait | GiveUp) -> None:
        if isinstance(step, GiveUp):
            if step.reason == "rebootstrap-loop":  # a refusal was logged as it came
                log.msg(f"mip6-mn: {step.cause}")
            self._perform([RegistrationFailed(step.reason)])
            return
        if step.seconds:
            log.msg(f"mip6-mn: rebootstrap after {request.reason} in {step.seconds:g} s "
                    f"({step.in_a_row} in a row without a registration)")
        self._renewing = True
        self._delayed_renewal = self.reactor.callLater(step.seconds, self._renew, request)

    def _renew(self, request: Rebootstrap) -> None:
        """Run ``renew`` and carry on under the new SA; after a failure the policy says
        whether to try again (a HAC out of reach, 500/503/504) or end the session."""
        self._delayed_renewal = None
        renewing = defer.maybeDeferred(self.renew)

        def renewed(result: Bootstrapped) -> None:
            if result.bootstrap is None:
                raise RegistrationError("the new bootstrap names no home agent",
                                        reason="no-home-agent")
            self._renewing = False
            self._perform(self.machine.rekey(result.sa, result.bootstrap.home_agent,
                                             self.reactor.seconds()))

        def failed(failure) -> None:
            self._renewing = False
            log.msg(f"mip6-mn: rebootstrap after {request.reason} failed: "
                    f"{failure.getErrorMessage()}")
            self._follow_policy(request, self._rebootstraps.failed(
                failure.value, datetime.now(timezone.utc)))

        renewing.addCallback(renewed).addErrback(failed)

    def describe(self, failed: RegistrationFailed) -> str:
        """One line for a failed registration: the HA, the care-of address, and why."""
        machine = self.machine
        care_of = machine.care_of
        where = f"registration with the home agent {home_agent_text(machine.home_agent, care_of)}"
        if care_of is not None:
            where += f" from care-of {care_of}"
        return f"{where} failed: {self._why(failed)}"

    def _why(self, failed: RegistrationFailed) -> str:
        reason, status = failed.reason, failed.status
        if reason == "no-home-agent-address":
            version = self.machine.care_of.version if self.machine.care_of else 6
            return (f"the HAC named no IPv{version} address for the home agent "
                    f"({home_agent_text(self.machine.home_agent)}): use a care-of address "
                    f"of the home agent's IP version")
        if reason == "no-answer":
            waited = ""
            if self._registering_since is not None:
                waited = f" in {self.reactor.seconds() - self._registering_since:.0f} s"
            why = f"no answer to {failed.attempts} Binding Update(s){waited}"
            if self.foreign_datagrams:
                why += (f"; {self.foreign_datagrams} datagram(s) came from another address or "
                        f"port (an HA listening on a wildcard address answers from the address "
                        f"the kernel picks: listen on the address the HAC names)")
            if self.machine.drops:
                drops = ", ".join(f"{name} {count}"
                                  for name, count in sorted(self.machine.drops.items()))
                why += f"; answers that failed their checks: {drops}"
            if not self.foreign_datagrams and not self.machine.drops:
                why += (" (is mip6-ha running there, with --home-agent the address the HAC "
                        "names, and the SA in its store? Its log says why it drops a BU)")
            return why
        if status is None:
            return reason
        try:
            name = BindingAckStatus(status).name
        except ValueError:
            return f"{reason}, BA status {status}"
        return f"{reason}, BA status {status} ({name})"


def bootstrap_session(
    reactor,
    tls: ClientTLS,
    port: int,
    make_machine: Callable[[], BootstrapMachine],
    *,
    timeout: float = client.DEFAULT_TIMEOUT,
    **options,
) -> defer.Deferred:
    """Bootstrap with the HAC at ``tls.host``:``port``, then a session with the HA it named.

    Every bootstrap, the first and each rebootstrap, runs a fresh ``make_machine()``.
    ``options`` as :func:`open_session` takes them. Fires with (:class:`MobileSession`
    not yet registered, the first :class:`~mn.bootstrap.Bootstrapped`); fails with what
    the bootstrap failed with, or :class:`RegistrationError` (``no-home-agent``) when the
    HAC named no home agent.
    """
    def run() -> defer.Deferred:
        return client.bootstrap(reactor, tls, port, make_machine(), timeout=timeout)

    return open_session(reactor, run, run, lambda: format_host_port(tls.host, port), **options)


def failover_session(reactor, hacs: HacSet, make_machine: Callable[[], BootstrapMachine], *,
                     timeout: float = client.DEFAULT_TIMEOUT, **options) -> defer.Deferred:
    """:func:`bootstrap_session` with several HACs (:class:`mn.hacset.HacSet`): the first
    bootstrap walks them for up to ``timeout`` seconds (:mod:`mn.hacs`), each rebootstrap
    tries each once and leaves the rounds to :mod:`mn.rebootstrap`'s policy."""
    return open_session(
        reactor, lambda: hacs.bootstrap(make_machine, timeout),
        lambda: hacs.bootstrap(make_machine, timeout, rounds=1),
        lambda: str(hacs.last_used or hacs), **options)


@defer.inlineCallbacks
def open_session(
    reactor,
    first: Callable[[], defer.Deferred],
    again: Callable[[], defer.Deferred],
    where: Callable[[], str],
    *,
    lifetime: int = DEFAULT_LIFETIME,
    on_event: Callable[[Action], None] | None = None,
    deliver: Callable[[bytes], None] | None = None,
    on_bootstrapped: Callable[[Bootstrapped], None] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    rebootstrap_when_silent: bool = False,
):
    """The first bootstrap (``first()``), then a session whose rebootstraps run ``again()``;
    ``on_bootstrapped`` sees each result (the SA key log); ``where()`` names the HAC in an
    error. ``max_attempts`` and ``rebootstrap_when_silent`` go to the
    :class:`~mn.mobility.MobilityMachine`."""
    def renew(run: Callable[[], defer.Deferred]) -> defer.Deferred:
        running = run()
        if on_bootstrapped is not None:
            running.addCallback(_passed_to, on_bootstrapped)
        return running

    result = yield renew(first)
    if result.bootstrap is None:
        raise RegistrationError(f"bootstrap with the HAC {where()}: "
                                "the HAC named no home agent", reason="no-home-agent")
    machine = MobilityMachine(result.sa, result.bootstrap.home_agent, lifetime=lifetime,
                              max_attempts=max_attempts,
                              rebootstrap_when_silent=rebootstrap_when_silent)
    session = MobileSession(reactor, machine, renew=lambda: renew(again), on_event=on_event,
                            deliver=deliver)
    return session, result


def _passed_to(result: Bootstrapped, listener: Callable[[Bootstrapped], None]) -> Bootstrapped:
    listener(result)
    return result


def _strerror(error: CannotListenError) -> str:
    return getattr(error.socketError, "strerror", None) or str(error.socketError)


def describe_binding(binding: Binding) -> dict:
    """A JSON-ready view of a binding (no keys in it)."""
    return {
        "spi": binding.spi,
        "suite": binding.suite,
        "home-address": str(binding.home_address),
        "home-address4": None if binding.home_address4 is None else str(binding.home_address4),
        "care-of-address": str(binding.care_of),
        "sequence": binding.sequence,
        "status": binding.status,
        "lifetime": binding.lifetime,
        "ipv4-status": binding.ipv4_status,
    }
