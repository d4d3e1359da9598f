"""The HAC's side of SA delivery over Diameter: push, answer queries, revoke.

:class:`SaDelivery` runs the SA delivery application (:mod:`aaa_mip6.diameter.sa_app`,
docs/diameter.md) on the HAC's Diameter node:

- Every SA the HAC provisions is pushed (SA-Push) to the HA it assigned, found by the
  HA's address in ``sa_delivery.home_agents``. A push is retried, with exponential
  backoff, until that HA acknowledges it or the SA expires; at most
  :data:`MAX_IN_FLIGHT` are outstanding at once.
- The outbox is the store itself: on start the HAC pushes again every active SA it
  created (``SAStore.active()``), so SAs whose push a crash interrupted still arrive.
  Pushing an SA twice is harmless.
- SA-Query from an HA is answered from the durable store (5030 for an unknown SPI), so
  an HA that restarted, or never got the push, can still serve the MN.
- :meth:`SaDelivery.revoke` marks the SA revoked in the store and sends SA-Revoke to its
  HA (retried like a push). Operators call it through the control socket:
  ``mip6-hac revoke --spi N --config hac.toml`` (see :func:`revoke_main`).

Keys cross Diameter only inside TLS: unless ``insecure_tcp`` is set, a push is refused
(logged, retried later) while any connection it could take is not TLS.

Limits: one Diameter identity per HAC process, so SA delivery needs ``workers = 1``;
a revocation that has not reached its HA when the HAC stops is not re-sent on restart
(the store keeps no outbox); the HA learns it when it next queries that SPI.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import random
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from diameter.message import Message
from twisted.internet import defer, protocol
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from aaa_mip6.diameter import codec, sa_app
from aaa_mip6.diameter.codec import DiameterError
from aaa_mip6.diameter.sa_app import NodeSettings, SaMessage
from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import HomeAgent, IPAddress
from aaa_mip6.store import SARecord, SAStore, StoreError

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64  # pushes and revocations outstanding at once
DEFAULT_RETRY_INITIAL = 1.0
DEFAULT_RETRY_MAX = 60.0
CONTROL_TIMEOUT = 10.0  # seconds mip6-hac revoke waits for the running HAC
_DELIVERY_KEYS = frozenset({"home_agents", "control_socket", "retry_initial", "retry_max"})


@dataclass(frozen=True)
class DeliverySettings:
    """The ``[sa_delivery]`` table: the Diameter node and where each HA is reached."""

    node: NodeSettings
    home_agents: dict[IPAddress, str] = field(default_factory=dict)  # address -> Origin-Host
    control_socket: Path | None = None
    retry_initial: float = DEFAULT_RETRY_INITIAL
    retry_max: float = DEFAULT_RETRY_MAX


def parse_settings(table) -> DeliverySettings:
    """Validate the ``[sa_delivery]`` table; ConfigError names the key within it."""
    if not isinstance(table, dict):
        raise ConfigError("must be a table")
    node = sa_app.node_settings({k: v for k, v in table.items() if k not in _DELIVERY_KEYS})
    agents = table.get("home_agents", {})
    if not isinstance(agents, dict) or not agents:
        raise ConfigError('home_agents: a table "HA address" = "its Origin-Host"')
    home_agents = {}
    for address, host in agents.items():
        try:
            home_agents[ipaddress.ip_address(address.strip("[]"))] = host
        except ValueError:
            raise ConfigError(f"home_agents: {address!r} is not an IP "
                              f"address") from None
        if not isinstance(host, str) or not host or " " in host:
            raise ConfigError(f"home_agents: {address}: the HA's Origin-Host "
                              f"must be a non-empty string")
    control = table.get("control_socket")
    if control is not None and (not isinstance(control, str) or not control.startswith("/")):
        raise ConfigError("control_socket: must be an absolute path")
    retry = {}
    for key, default in (("retry_initial", DEFAULT_RETRY_INITIAL),
                         ("retry_max", DEFAULT_RETRY_MAX)):
        value = table.get(key, default)
        if type(value) not in (int, float) or not 0 < value <= 86_400:
            raise ConfigError(f"{key}: must be a number of seconds in (0, 86400]")
        retry[key] = float(value)
    if retry["retry_max"] < retry["retry_initial"]:
        raise ConfigError("retry_max must be at least retry_initial")
    return DeliverySettings(node, home_agents, None if control is None else Path(control),
                            **retry)


def check(config) -> None:
    """Rules between ``sa_delivery`` and the rest of the HAC's configuration."""
    if config.sa_delivery is not None and config.workers != 1:
        raise ConfigError("sa_delivery needs workers = 1 (one Diameter identity per process)")


def _addresses(agent: HomeAgent | None) -> tuple[IPAddress, ...]:
    """The HA's addresses, IPv6 first (none for an SA without an HA)."""
    if agent is None:
        return ()
    return tuple(address for address in (agent.address6, agent.address4) if address is not None)


@dataclass
class _Job:
    """One SA-Push or SA-Revoke still owed to an HA."""

    record: SARecord
    revoke: bool
    attempts: int = 0  # retries so far (they double the backoff)
    retry_call: object = None
    sending: bool = False


class SaDelivery:
    """Pushes, queries and revocations on the HAC's Diameter node.

    ``in_store_thread(function, *args)`` runs a store call where it may block and returns
    a Deferred (the HAC server's thread pool for PostgreSQL).
    """

    def __init__(self, node, settings: DeliverySettings, store: SAStore, *, reactor,
                 hac_instance: str, in_store_thread: Callable[..., defer.Deferred],
                 rng: random.Random | None = None):
        self.node = node
        self.settings = settings
        self.application = settings.node.application
        self.store = store
        self.reactor = reactor
        self.hac_instance = hac_instance
        self.counters: dict[str, int] = {}
        self._in_store_thread = in_store_thread
        self._rng = rng or random.SystemRandom()
        self._jobs: dict[int, _Job] = {}
        self._ready: deque[int] = deque()
        self._in_flight = 0
        self._session_ids = codec.SessionIds(node.local.origin_host, reactor.seconds())
        self._control_port = None
        self._stopped = False
        node.register_handler(self.application.application_id, sa_app.SA_QUERY, self._queried)

    @classmethod
    def create(cls, config, store: SAStore, reactor,
               in_store_thread: Callable[..., defer.Deferred]) -> SaDelivery:
        """The HAC's delivery from its configuration; the node listens and connects at once."""
        settings = config.sa_delivery
        return cls(sa_app.start_node(settings.node, reactor), settings, store, reactor=reactor,
                   hac_instance=config.instance, in_store_thread=in_store_thread)

    def __repr__(self) -> str:
        return f"SaDelivery({self.node.local.origin_host}, pending={len(self._jobs)})"

    @property
    def pending(self) -> int:
        """SAs (and revocations) not yet acknowledged by their HA."""
        return len(self._jobs)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # --- life cycle -------------------------------------------------------------

    def start(self) -> defer.Deferred:
        """Listen on the control socket; queue every active SA of this instance again."""
        if self.settings.control_socket is not None:
            self._control_port = listen_control(self, self.settings.control_socket,
                                                self.reactor)
        resent = self._in_store_thread(self.store.active)
        resent.addCallback(self._resend)
        resent.addErrback(lambda failure: log.error("cannot list active SAs to push: %s",
                                                    failure.getErrorMessage()))
        return resent

    def _resend(self, records: list[SARecord]) -> None:
        mine = [record for record in records if record.hac_instance == self.hac_instance]
        if mine:
            log.info("pushing %d active SAs again", len(mine))
        for record in mine:
            if record.sa.spi not in self._jobs:
                self.deliver(record)

    @defer.inlineCallbacks
    def stop(self):
        """Stop retrying and listening; stop the Diameter node (DPR to each peer)."""
        self._stopped = True
        for job in self._jobs.values():
            if job.retry_call is not None and job.retry_call.active():
                job.retry_call.cancel()
        if self._control_port is not None:
            yield self._control_port.stopListening()
        yield self.node.stop()

    # --- push -------------------------------------------------------------------

    def provisioned(self, record: SARecord) -> None:
        """Push the SA the HAC has just stored; a failure here is logged, and never fails
        the MN's bootstrap (the SA is stored: the HA can still query it)."""
        try:
            self.deliver(record)
        except Exception as error:  # noqa: BLE001 (the MN gets its SA regardless)
            log.error("SA %d not queued for push: %s", record.sa.spi, error)

    def deliver(self, record: SARecord) -> None:
        """Queue an SA-Push of ``record`` to its HA (replacing any job for that SPI)."""
        self._queue(_Job(record, revoke=False))

    def _queue(self, job: _Job) -> None:
        spi = job.record.sa.spi
        old = self._jobs.get(spi)
        if old is not None and old.retry_call is not None and old.retry_call.active():
            old.retry_call.cancel()
        self._jobs[spi] = job
        self._ready.append(spi)
        self._pump()

    def _pump(self) -> None:
        while self._ready and self._in_flight < MAX_IN_FLIGHT and not self._stopped:
            spi = self._ready.popleft()
            job = self._jobs.get(spi)
            if job is not None and not job.sending and job.retry_call is None:
                self._send(job)

    def _destination(self, record: SARecord) -> str | None:
        for address in _addresses(record.home_agent):
            if address in self.settings.home_agents:
                return self.settings.home_agents[address]
        return None

    def _send(self, job: _Job) -> None:
        record = job.record
        sa = record.sa
        if not job.revoke and sa.validity_end.timestamp() <= self.reactor.seconds():
            self._done(job, "expired")
            return
        host = self._destination(record)
        if host is None:
            log.warning("SA %d: its HA %s has no Origin-Host in sa_delivery.home_agents; "
                        "the HA will have to query it", sa.spi, record.home_agent)
            self._done(job, "no-destination")
            return
        local = self.node.local
        session = self._session_ids.new()
        destination_realm = self.settings.node.destination_realm
        if job.revoke:
            request = self.application.revoke_request(
                session, local.origin_host, local.origin_realm, destination_realm, host, sa.spi,
                sa.mn_id)
        else:
            request = self.application.push_request(
                session, local.origin_host, local.origin_realm, destination_realm, host,
                SaMessage(sa, _addresses(record.home_agent)), self.reactor.seconds())
            if not self._may_carry_keys(request, sa.spi):
                self._retry(job)
                return
        job.sending = True
        self._in_flight += 1
        command = sa_app.SA_REVOKE if job.revoke else sa_app.SA_PUSH
        sent = self.node.send_request(request)
        sent.addCallback(self.application.check_answer, command)
        sent.addCallbacks(self._acknowledged, self._failed, callbackArgs=(job,),
                          errbackArgs=(job,))

    def _may_carry_keys(self, request: Message, spi: int) -> bool:
        """Whether a push may go now: every route TLS (or ``insecure_tcp``), and one open.

        A push is only handed to the node with an open route, so it can never wait
        there for whatever connection opens next.
        """
        routes, secure = sa_app.open_routes(self.node, request)
        if routes == 0:
            self._count("no-route")
            return False
        if secure < routes and not self.settings.node.insecure_tcp:
            log.error("SA %d: refusing to push keys over a non-TLS Diameter connection", spi)
            self._count("refused-insecure")
            return False
        return True

    def _acknowledged(self, _answer, job: _Job) -> None:
        self._in_flight -= 1
        job.sending = False
        self._done(job, "revoked" if job.revoke else "pushed")
        self._pump()

    def _failed(self, failure: Failure, job: _Job) -> None:
        self._in_flight -= 1
        job.sending = False
        log.info("SA %d: %s not acknowledged (attempt %d): %s", job.record.sa.spi,
                 "SA-Revoke" if job.revoke else "SA-Push", job.attempts + 1,
                 failure.getErrorMessage())
        self._count("retries")
        self._retry(job)
        self._pump()

    def _retry(self, job: _Job) -> None:
        if self._stopped or self._jobs.get(job.record.sa.spi) is not job:
            return
        step = min(self.settings.retry_max, self.settings.retry_initial * 2 ** job.attempts)
        job.attempts += 1
        job.retry_call = self.reactor.callLater(step * self._rng.uniform(0.5, 1.0),
                                                self._requeue, job)

    def _requeue(self, job: _Job) -> None:
        job.retry_call = None
        if self._jobs.get(job.record.sa.spi) is job:
            self._ready.append(job.record.sa.spi)
            self._pump()

    def _done(self, job: _Job, outcome: str) -> None:
        self._count(outcome)
        if self._jobs.get(job.record.sa.spi) is job:
            del self._jobs[job.record.sa.spi]

    # --- revoke -----------------------------------------------------------------

    @defer.inlineCallbacks
    def revoke(self, spi: int):
        """Revoke the SA in the store and tell its HA; fires with False for an unknown SPI."""
        if not (yield self._in_store_thread(self.store.revoke, spi)):
            return False
        record = yield self._in_store_thread(self.store.get, spi)
        log.info("SA %d of %s revoked", spi, record.sa.mn_id)
        self._queue(_Job(record, revoke=True))
        return True

    # --- queries from HAs -------------------------------------------------------

    def _queried(self, message: Message):
        try:
            request = self.application.decode_request(message)
        except DiameterError as error:
            return self.node.answer(message, codec.error_result(error),
                                    self.application.application_avps(),
                                    error_message=str(error))
        self._count("queries")
        found = self._in_store_thread(self.store.get, request.spi)
        found.addCallback(self._query_answer, message)
        return found

    def _query_answer(self, record: SARecord | None, message: Message) -> Message:
        avps = self.application.application_avps()
        if record is None:
            return self.node.answer(message, sa_app.USER_UNKNOWN, avps)
        avps += self.application.sa_avps(SaMessage(record.sa, _addresses(record.home_agent)),
                                         self.reactor.seconds())
        return self.node.answer(message, codec.SUCCESS, avps)


# --- the control socket and ``mip6-hac revoke`` -------------------------------------


class _ControlProtocol(LineOnlyReceiver):
    """``revoke SPI`` -> ``revoked SPI`` | ``unknown SPI`` | ``error MESSAGE``."""

    delimiter = b"\n"
    MAX_LENGTH = 64

    def __init__(self, delivery: SaDelivery):
        self.delivery = delivery

    def lineReceived(self, line: bytes) -> None:  # noqa: N802 (Twisted API)
        verb, _, argument = line.decode("ascii", "replace").strip().partition(" ")
        if verb != "revoke" or not argument.isdigit():
            self._reply("error usage: revoke SPI")
            return
        spi = int(argument)
        done = self.delivery.revoke(spi)
        done.addCallback(lambda known: self._reply(f"{'revoked' if known else 'unknown'} {spi}"))
        done.addErrback(lambda failure: self._reply(
            f"error {failure.getErrorMessage()}" if failure.check(StoreError)
            else "error internal"))

    def _reply(self, text: str) -> None:
        self.sendLine(text.encode("ascii", "replace"))
        self.transport.loseConnection()


def listen_control(delivery: SaDelivery, path: Path, reactor):
    """Listen on the UNIX socket ``path`` (mode 0600, replacing a stale one)."""
    if path.is_socket():
        path.unlink()
    factory = protocol.Factory.forProtocol(lambda: _ControlProtocol(delivery))
    old_mask = os.umask(0o177)
    try:
        return reactor.listenUNIX(str(path), factory, mode=0o600)
    finally:
        os.umask(old_mask)


def send_control(path: Path, command: str, timeout: float = CONTROL_TIMEOUT) -> str:
    """One command to the running HAC's control socket; its one-line reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.settimeout(timeout)
        control.connect(str(path))
        control.sendall(command.encode("ascii") + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = control.recv(256)
            if not chunk:
                break
            reply += chunk
    return reply.decode("ascii", "replace").strip()


def revoke_main(argv: list[str]) -> int:
    """``mip6-hac revoke --spi N (--config FILE | --control PATH)``: 0 revoked, 1 unknown,
    2 usage or configuration error, 3 the HAC did not answer."""
    parser = argparse.ArgumentParser(
        prog="mip6-hac revoke",
        description="Revoke an SA in the running HAC: it is marked revoked in the store and "
                    "its HA is told (SA-Revoke); the HA answers the MN's next Binding Update "
                    "with 176 and the MN bootstraps again.")
    parser.add_argument("--spi", type=int, required=True, help="the SA's SPI")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the HAC's TOML file "
                                                   "(for sa_delivery.control_socket)")
    where.add_argument("--control", type=Path, help="the HAC's control socket")
    arguments = parser.parse_args(argv)
    path = arguments.control
    if path is None:
        from .config import read_toml

        try:
            table = read_toml(arguments.config).get("sa_delivery")
            path = parse_settings(table).control_socket if table is not None else None
        except ConfigError as error:
            print(f"mip6-hac revoke: sa_delivery: {error}", file=sys.stderr)
            return 2
        if path is None:
            print("mip6-hac revoke: the config sets no sa_delivery.control_socket",
                  file=sys.stderr)
            return 2
    try:
        reply = send_control(path, f"revoke {arguments.spi}")
    except OSError as error:
        print(f"mip6-hac revoke: cannot reach the HAC at {path}: "
              f"{error.strerror or error}", file=sys.stderr)
        return 3
    print(reply)
    return 0 if reply.startswith("revoked") else 1 if reply.startswith("unknown") else 3
