"""The MN's Twisted shell around :mod:`mn.hacs`: resolve the HACs' names, connect, wait.

A :class:`HacSet` holds the HACs of ``--hac`` (several, or a DNS name with several
addresses) and one :class:`aaa_mip6.twisted.tls.ClientTLS` per name, so that a HAC's TLS
session resumes next time and its certificate is checked against the name given. It
decides nothing: :class:`mn.hacs.HacWalk` says which address comes next and how long to
wait; :func:`mn.client.bootstrap` runs each try.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from ipaddress import ip_address

from OpenSSL import SSL
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from aaa_mip6.addresses import format_host_port
from aaa_mip6.twisted.tls import ClientTLS

from . import client
from .actions import GiveUp, Wait
from .bootstrap import BootstrapFailed, BootstrapMachine, Bootstrapped
from .hacs import DEFAULT_ROUNDS, Candidate, HacWalk, Try


@implementer(IOpenSSLClientConnectionCreator)
class _Via:
    """A HAC's TLS settings (certificate checked against its name) reached at one address."""

    def __init__(self, tls: ClientTLS, address: str):
        self.tls = tls
        self.host = address  # what mn.client connects to

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:  # noqa: N802 (Twisted API)
        return self.tls.clientConnectionForTLS(tlsProtocol)

    def __getattr__(self, name: str):
        """The rest (what mn.client asks after a handshake) is the HAC's ClientTLS."""
        return getattr(self.tls, name)


def _is_address(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


class HacSet:
    """The HACs one MN may bootstrap with, in order (``hacs``: (host, port) pairs).

    ``make_tls(host)`` builds the TLS settings of one HAC name (called once per name).
    """

    def __init__(self, reactor, hacs: Sequence[tuple[str, int]],
                 make_tls: Callable[[str], ClientTLS], *, draw=random.random):
        if not hacs:
            raise ValueError("a HacSet needs at least one HAC")
        self.reactor = reactor
        self.hacs = list(hacs)
        self.draw = draw
        self.tls = {host: make_tls(host) for host, _ in self.hacs}
        self.preferred: Candidate | None = None
        self.last_used: Candidate | None = None

    def __str__(self) -> str:
        return ", ".join(format_host_port(host, port) for host, port in self.hacs)

    @defer.inlineCallbacks
    def candidates(self):
        """Every (name, address, port) to try, names resolved now (A and AAAA)."""
        found: list[Candidate] = []
        for host, port in self.hacs:
            if _is_address(host):
                found.append(Candidate(host, host, port))
                continue
            try:
                infos = yield threads.deferToThread(socket.getaddrinfo, host, port,
                                                    type=socket.SOCK_STREAM)
            except OSError:
                continue  # the walk reports the name as out of reach when nothing resolves
            found += [Candidate(host, info[4][0], port) for info in infos]
        return found

    @defer.inlineCallbacks
    def bootstrap(self, make_machine: Callable[[], BootstrapMachine], timeout: float,
                  rounds: int = DEFAULT_ROUNDS):
        """A Deferred firing with :class:`Bootstrapped` from the first HAC that gives an SA;
        fails with the last :class:`BootstrapFailed` when none does within ``timeout``
        seconds and ``rounds`` rounds."""
        walk = HacWalk(self.reactor.seconds() + timeout, preferred=self.preferred, rounds=rounds)
        walk.begin_round((yield self.candidates()))
        while True:
            step = walk.next_step(self.reactor.seconds(), self.draw())
            if isinstance(step, GiveUp):
                raise walk.last_error or BootstrapFailed(
                    f"connect: cannot resolve the HAC(s) {self}", step="connect",
                    reason="connect")
            if isinstance(step, Wait):
                yield task.deferLater(self.reactor, step.seconds, lambda: None)
                walk.begin_round((yield self.candidates()))
                continue
            result = yield self._try(step, walk, make_machine)
            if result is not None:
                return result

    @defer.inlineCallbacks
    def _try(self, step: Try, walk: HacWalk, make_machine: Callable[[], BootstrapMachine]):
        candidate = step.candidate
        self.last_used = candidate
        via = _Via(self.tls[candidate.name], candidate.address)
        try:
            result: Bootstrapped = yield client.bootstrap(
                self.reactor, via, candidate.port, make_machine(), timeout=step.timeout)
        except BootstrapFailed as error:
            walk.failed(error, datetime.now(timezone.utc))
            return None
        walk.succeeded(candidate)
        self.preferred = candidate
        return result
