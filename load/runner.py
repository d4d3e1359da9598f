"""``mip6-load``'s Twisted shell: simulated MNs on the MN library, in one process.

Each :class:`SimulatedMn` is what ``mip6-mn register --keep`` is, without the program
around it: its own :class:`mn.hacset.HacSet` (its own TLS sessions, its own preferred
HAC), :func:`mn.session.failover_session` for the bootstrap and the
:class:`~mn.session.MobileSession` that refreshes, goes back to the HAC on 176 or when
the HA stops answering, and tunnels the keep-alive packets. :class:`LoadRun` starts them
when :class:`load.core.Scheduler` says and records every attempt in a
:class:`load.core.Recorder`; it decides nothing else.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer, task

from lab.loopback import Echo
from mn import session
from mn.actions import Rebootstrap, Registered, RegistrationFailed
from mn.bootstrap import BootstrapFailed, BootstrapMachine, Bootstrapped
from mn.hacset import HacSet

from .core import OK, Event, Recorder, Scheduler

PROGRESS_INTERVAL = 1.0  # seconds between progress lines


@dataclass(frozen=True)
class RunOptions:
    """What one process of a run does (the CLI's flags, checked)."""

    indices: tuple[int, ...]  # the MNs this process runs
    rate: float  # new bootstraps per second in this process
    duration: float
    timeout: float  # seconds for one bootstrap, and for one first registration
    register: bool = False
    repeat: bool = False
    keepalive: float = 0.0  # seconds between keep-alive packets; 0: none
    lifetime: int = 600
    bu_attempts: int = 7


def home_agent_text(home_agent) -> str | None:
    return None if home_agent is None else session.home_agent_text(home_agent)


def _status(error: BaseException) -> tuple[str, str | None]:
    """(status, where) of a failed attempt, for its event."""
    if isinstance(error, BootstrapFailed):
        return (str(error.status) if error.status is not None else error.reason), error.step
    if isinstance(error, session.RegistrationError):
        return (str(error.status) if error.status is not None else error.reason), None
    return f"error-{type(error).__name__}", None


class SimulatedMn:
    """One MN of the run: bootstrap, then (with ``register``) a binding it keeps."""

    def __init__(self, run: LoadRun, index: int, mn_id: str,
                 make_machine: Callable[[], BootstrapMachine]):
        self.run = run
        self.index = index
        self.mn_id = mn_id
        self.make_machine = make_machine
        self.hac_set: HacSet | None = None
        self.session: session.MobileSession | None = None
        self.registered = False
        self._first_done = False
        self._lost_since: float | None = None  # when the session asked for a new SA
        self._keepalive: task.LoopingCall | None = None
        self._echo_sequence = 0
        self._last_keepalive = 0.0  # reactor time of the last keep-alive sent
        self._binding_errors = 0  # the machine's Binding Errors seen so far

    def _event(self, step: str, status: str, started: float, *, spi=None, ha=None,
               at=None) -> None:
        hac = None
        if step in ("bootstrap", "rebootstrap") and self.hac_set is not None:
            hac = str(self.hac_set.last_used) if self.hac_set.last_used else None
        self.run.record(Event(self.run.now(), self.mn_id, step, status,
                              self.run.reactor.seconds() - started, spi, ha, at, hac))

    @defer.inlineCallbacks
    def attempt(self):
        """One bootstrap (and registration): a fresh SA, the old session let go."""
        yield self.stop()
        run, reactor = self.run, self.run.reactor
        if self.hac_set is None:
            self.hac_set = run.make_hac_set()
        options = run.options
        started = reactor.seconds()
        if not options.register:
            try:
                result: Bootstrapped = yield self.hac_set.bootstrap(self.make_machine,
                                                                    options.timeout)
            except Exception as error:  # noqa: BLE001 - every failure is a counted event
                status, at = _status(error)
                self._event("bootstrap", status, started, at=at)
                return
            self._event("bootstrap", OK, started, spi=result.sa.spi,
                        ha=home_agent_text(result.bootstrap and result.bootstrap.home_agent))
            return
        try:
            mobile, result = yield session.failover_session(
                reactor, self.hac_set, self.make_machine, timeout=options.timeout,
                lifetime=options.lifetime, max_attempts=options.bu_attempts,
                rebootstrap_when_silent=True, on_event=self._session_event)
        except Exception as error:  # noqa: BLE001
            status, at = _status(error)
            self._event("bootstrap", status, started, at=at)
            return
        ha = home_agent_text(result.bootstrap.home_agent)
        self._event("bootstrap", OK, started, spi=result.sa.spi, ha=ha)
        self.session = mobile
        mobile.renew = self._timed_renew(mobile.renew)
        started = reactor.seconds()
        try:
            binding = yield mobile.start(give_up_at=started + options.timeout)
        except Exception as error:  # noqa: BLE001
            status, _ = _status(error)
            self._event("register", status, started, spi=result.sa.spi, ha=ha)
            yield self.stop()
            return
        self._first_done = True
        self.registered = True
        # the HA of the binding: a 176 to the first BU may have brought a new SA and HA
        self._event("register", OK, started, spi=binding.spi,
                    ha=home_agent_text(mobile.machine.home_agent))
        if options.keepalive > 0:
            self._keepalive = task.LoopingCall(self._send_keepalive)
            self._keepalive.clock = reactor
            reactor.callLater(random.uniform(0, options.keepalive), self._start_keepalive)

    def _start_keepalive(self) -> None:
        if self._keepalive is not None and not self._keepalive.running:
            self._keepalive.start(self.run.options.keepalive, now=True)

    def _timed_renew(self, renew: Callable[[], defer.Deferred]):
        """The session's ``renew``, with a ``rebootstrap`` event for each run of it."""
        def timed() -> defer.Deferred:
            started = self.run.reactor.seconds()
            running = renew()

            def ok(result: Bootstrapped):
                self._event("rebootstrap", OK, started, spi=result.sa.spi,
                            ha=home_agent_text(result.bootstrap and result.bootstrap.home_agent))
                return result

            def failed(failure):
                status, at = _status(failure.value)
                self._event("rebootstrap", status, started, at=at)
                return failure

            return running.addCallbacks(ok, failed)
        return timed

    def _session_event(self, action) -> None:
        """What the session did after the first registration (before it, attempt() sees)."""
        if not self._first_done:
            return
        machine = self.session.machine if self.session else None
        if isinstance(action, Rebootstrap):
            self.registered = False
            if self._lost_since is None:
                self._lost_since = self.run.reactor.seconds()
        elif isinstance(action, Registered):
            self.registered = True
            binding_errors = machine.counters["binding-error"]
            if self._lost_since is None and binding_errors > self._binding_errors:
                # the HA had lost the binding (a restart): since the packet that told
                self._lost_since = self._last_keepalive
            self._binding_errors = binding_errors
            if self._lost_since is not None:
                self._event("reregister", OK, self._lost_since, spi=action.binding.spi,
                            ha=home_agent_text(machine.home_agent))
                self._lost_since = None
            else:
                self.run.recorder.counters["refreshed"] += 1
        elif isinstance(action, RegistrationFailed):
            self.registered = False
            status = str(action.status) if action.status is not None else action.reason
            self._event("reregister", status, self._lost_since or self.run.reactor.seconds(),
                        spi=machine.sa.spi, ha=home_agent_text(machine.home_agent))
            self._lost_since = None

    def _send_keepalive(self) -> None:
        """One ICMPv6 echo request from the home address to the HA, through the tunnel."""
        mobile = self.session
        if mobile is None or not self.registered:
            return
        home, home_agent = mobile.machine.home_address, mobile.machine.home_agent
        if home.ipv4_mapped is not None or home_agent.address6 is None:
            self.run.recorder.counters["keepalive-skipped"] += 1
            return
        self._echo_sequence = (self._echo_sequence + 1) & 0xFFFF
        packet = Echo(home, home_agent.address6, self.index & 0xFFFF, self._echo_sequence,
                      b"mip6-load").packet()
        sent = mobile.send(packet)
        self._last_keepalive = self.run.reactor.seconds()
        self.run.recorder.counters["keepalive-sent" if sent else "keepalive-refused"] += 1

    @defer.inlineCallbacks
    def stop(self):
        """Let the session go (no de-registration: the binding lapses at the HA)."""
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self._keepalive = None
        mobile, self.session = self.session, None
        self.registered = False
        self._first_done = False
        self._lost_since = None
        self._binding_errors = 0
        if mobile is not None:
            yield mobile.stop(deregister=False)


class LoadRun:
    """One process's share of a run: start MNs on schedule, record, report.

    ``credentials(index)`` gives an MN's (identity, machine factory);
    ``make_hac_set()`` a fresh :class:`HacSet` for one MN; ``events_out`` (a text file)
    gets every event as a JSON line as it happens; ``progress(line)`` a line a second.
    """

    def __init__(self, reactor, options: RunOptions,
                 credentials: Callable[[int], tuple[str, Callable[[], BootstrapMachine]]],
                 make_hac_set: Callable[[], HacSet], *, events_out=None,
                 progress: Callable[[str], None] | None = None):
        self.reactor = reactor
        self.options = options
        self.credentials = credentials
        self.make_hac_set = make_hac_set
        self.events_out = events_out
        self.progress = progress
        self.recorder = Recorder()
        self.scheduler = Scheduler(options.indices, options.rate, options.duration,
                                   repeat=options.repeat)
        self.mns: dict[int, SimulatedMn] = {}
        self.started_at = reactor.seconds()
        self._running: set[defer.Deferred] = set()
        self._next = None
        self._finished = defer.Deferred()
        self._ending = False
        self._schedule_over = False  # the duration has passed: no more starts

    def now(self) -> float:
        return self.reactor.seconds() - self.started_at

    def record(self, event: Event) -> None:
        self.recorder.record(event)
        if self.events_out is not None:
            self.events_out.write(json.dumps(event.as_json()) + "\n")
            self.events_out.flush()

    def registered(self) -> int:
        return sum(1 for mn in self.mns.values() if mn.registered)

    def start(self) -> defer.Deferred:
        """Run; fires with the report once the run is over and every MN let go."""
        self.started_at = self.reactor.seconds()
        self._ticker = task.LoopingCall(self._tick_progress)
        self._ticker.clock = self.reactor
        if self.progress is not None:
            self._ticker.start(PROGRESS_INTERVAL, now=False)
        self._tick()
        return self._finished

    def _tick(self) -> None:
        self._next = None
        for index in self.scheduler.due(self.now()):
            mn = self.mns.get(index)
            if mn is None:
                mn_id, make_machine = self.credentials(index)
                mn = self.mns[index] = SimulatedMn(self, index, mn_id, make_machine)
            running = mn.attempt()
            self._running.add(running)
            running.addBoth(self._attempt_done, running, index)
        due = self.scheduler.next_due()
        if due is not None:
            self._next = self.reactor.callLater(max(0.0, due - self.now()), self._tick)
        else:
            self._next = self.reactor.callLater(max(0.0, self.options.duration - self.now()),
                                                self._schedule_ended)

    def _attempt_done(self, result, running, index) -> None:
        self._running.discard(running)
        self.scheduler.done(index)
        if self._schedule_over:
            self._maybe_end()

    def _schedule_ended(self) -> None:
        self._next = None
        self._schedule_over = True
        self._maybe_end()

    def _maybe_end(self) -> None:
        """The schedule is over: end once no attempt is in flight."""
        if self._running or self._finished.called or self._ending:
            return
        self._end()

    def stop_now(self) -> None:
        """A signal: end the run at once, attempts in flight left out of the report."""
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        if not self._finished.called and not self._ending:
            self._end()

    @defer.inlineCallbacks
    def _end(self):
        self._ending = True
        if self._ticker.running:
            self._ticker.stop()
        elapsed = self.now()
        registered = self.registered() if self.options.register else None
        self.recorder.counters["missed-slots"] = self.scheduler.missed
        yield defer.DeferredList([mn.stop() for mn in self.mns.values()])
        self._finished.callback((elapsed, registered))

    def _tick_progress(self) -> None:
        self.progress(self.recorder.progress(
            self.now(), registered=self.registered() if self.options.register else None))
