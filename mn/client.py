"""The MN's Twisted shell around a bootstrap machine: connect over TLS, move bytes, report.

All protocol decisions live in :mod:`mn.bootstrap`; this module only opens the
TLS connection (verified by :class:`aaa_mip6.twisted.tls.ClientTLS`; over TCP Fast Open,
:mod:`aaa_mip6.twisted.fastopen`, so that a returning MN's SYN carries its ClientHello,
and with the MN Init as early data where the ticket allows it), hands the machine
the certificate the HAC presented, shuttles octets, enforces one deadline for
the whole bootstrap and closes cleanly (``loseConnection``, so the TLS session
can resume next time).
"""

from __future__ import annotations

import ipaddress

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from aaa_mip6.twisted.early_data import EarlyDataClientFactory
from aaa_mip6.twisted.fastopen import FastOpenReactor
from aaa_mip6.twisted.tls import CertificateRejected, ClientTLS, peer_certificate_der

from .bootstrap import BootstrapFailed, BootstrapMachine, Bootstrapped

DEFAULT_TIMEOUT = 30.0
"""Seconds one bootstrap may take from connecting to the HAC's final response."""


@implementer(IHandshakeListener)
class _BootstrapProtocol(Protocol):
    """Runs one machine over one TLS connection; fires ``outcome`` once the connection is
    gone, or calls ``again`` when the HAC refused the offered session (see
    :meth:`ClientTLS.resumption_refused`) before the machine started."""

    def __init__(self, machine: BootstrapMachine, outcome: defer.Deferred, tls: ClientTLS,
                 again):
        self.machine = machine
        self.outcome = outcome
        self.tls = tls
        self.again = again
        self.concluded: Bootstrapped | BootstrapFailed | None = None
        self.connecting_again = False

    def connectionMade(self) -> None:  # noqa: N802 (Twisted API)
        self.transport.setTcpNoDelay(True)  # lock-step requests: never wait for an ACK

    def handshakeCompleted(self) -> None:  # noqa: N802 (Twisted API)
        if self.tls.resumption_refused(self.transport):
            self.connecting_again = True
            self.transport.abortConnection()
            return
        sent_early = self.tls.early_data_accepted(self.transport)
        self._run(lambda certificate: self.machine.start(certificate, sent_early=sent_early),
                  peer_certificate_der(self.transport))

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted API)
        if self.concluded is None:
            self._run(self.machine.receive, data)

    def _run(self, step, argument) -> None:
        try:
            request = step(argument)
        except BootstrapFailed as failure:
            self._conclude(failure)
            return
        if request:
            self.transport.write(request)
        if self.machine.result is not None:
            self._conclude(self.machine.result)

    def _conclude(self, concluded: Bootstrapped | BootstrapFailed) -> None:
        self.concluded = concluded
        self.transport.loseConnection()

    def give_up(self, failure: BootstrapFailed) -> None:
        """The deadline passed: drop the connection without waiting for the HAC."""
        if self.concluded is None:
            self.concluded = failure
        self.transport.abortConnection()

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted API)
        if self.connecting_again and self.concluded is None:
            self.again()
            return
        concluded = self.concluded or _lost(self.machine, reason, _answered(self.transport))
        if isinstance(concluded, Bootstrapped):
            self.outcome.callback(concluded)
        else:
            self.outcome.errback(concluded)


def _lost(machine: BootstrapMachine, reason, answered: bool | None = None) -> BootstrapFailed:
    """Why a connection ended before the machine concluded (``answered``: whether any TLS
    record of the HAC arrived, None if unknown)."""
    if reason.check(CertificateRejected):
        return BootstrapFailed(f"tls: {reason.value}", step="tls", reason="certificate")
    if reason.check(SSL.Error):
        return BootstrapFailed(f"tls: handshake or record failure: {reason.value}",
                               step="tls", reason="tls")
    if not machine.started:
        if answered is False and reason.check(error.ConnectionLost, error.ConnectError):
            # A Fast Open connect returns before the SYN is sent: a HAC that is down
            # refuses or resets the connection only after the ClientHello went out.
            return BootstrapFailed("connect: the HAC refused or reset the connection "
                                   "before it answered", step="connect", reason="connect")
        return BootstrapFailed("tls: the connection closed during the TLS handshake",
                               step="tls", reason="closed")
    return BootstrapFailed(f"{machine.step}: the HAC closed the connection without a response",
                           step=machine.step, reason="closed")


def _answered(transport) -> bool | None:
    """Whether the HAC sent anything on this connection (None: the transport cannot say)."""
    return getattr(transport, "heard_from_server", None)


def _where(protocol: _BootstrapProtocol) -> str:
    """The step a bootstrap is in: ``connect``, ``tls``, or the machine's own step."""
    if protocol.transport is None:
        return "connect"
    return protocol.machine.step if protocol.machine.started else "tls"


def _tcp_endpoint(reactor, host: str, port: int, timeout: float, fast_open: bool):
    if fast_open:
        reactor = FastOpenReactor(reactor)
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return HostnameEndpoint(reactor, bare, port, timeout=timeout)
    endpoint = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
    return endpoint(reactor, bare, port, timeout=timeout)


def bootstrap(reactor, tls: ClientTLS, port: int, machine: BootstrapMachine, *,
              timeout: float = DEFAULT_TIMEOUT, fast_open: bool = True,
              early_data: bool = True) -> defer.Deferred:
    """Run ``machine`` against the HAC at ``tls.host`` and ``port``.

    The Deferred fires with :class:`Bootstrapped` once the connection is closed,
    or fails with :class:`BootstrapFailed` (step ``connect``/``tls``/``init``/
    ``done``), also when the whole bootstrap takes longer than ``timeout``.
    Reuse one ``tls`` per HAC so that later bootstraps resume the TLS session.
    ``fast_open``: connect with TCP Fast Open where the kernel allows it. ``early_data``:
    send the MN Init as TLS 1.3 early data when the offered session allows it.
    """
    outcome: defer.Deferred = defer.Deferred()
    current: dict = {}  # the connection attempt under way: its protocol and Deferred

    def not_connected(failure):
        if not outcome.called:
            outcome.errback(BootstrapFailed(
                f"connect: cannot reach the HAC at {tls.host} port {port}: "
                f"{failure.getErrorMessage()}", step="connect", reason="connect"))

    def connect() -> None:
        protocol = _BootstrapProtocol(machine, outcome, tls, connect)
        early = machine.early_request() if early_data and not machine.started else b""
        factory = EarlyDataClientFactory(tls, Factory.forProtocol(lambda: protocol), early,
                                         reactor)
        connecting = _tcp_endpoint(reactor, tls.host, port, timeout, fast_open).connect(factory)
        connecting.addErrback(not_connected)
        current.update(protocol=protocol, connecting=connecting)

    connect()

    def expire() -> None:
        protocol = current["protocol"]
        step = _where(protocol)
        failure = BootstrapFailed(f"{step}: no result within {timeout:g} s", step=step,
                                  reason="timeout")
        if protocol.transport is None:
            outcome.errback(failure)
            current["connecting"].cancel()
        else:
            protocol.give_up(failure)

    deadline = reactor.callLater(timeout, expire)
    outcome.addBoth(_cancel(deadline))
    return outcome


def _cancel(call):
    def passthrough(result):
        if call.active():
            call.cancel()
        return result

    return passthrough
