"""TCP Fast Open: the socket options on the HAC's listener and the MN's client socket, and
how the MN names a Fast Open connect that the HAC refused.

Sockets are made but never connected (nothing listens, nothing is sent).
"""

from __future__ import annotations

import socket

import pytest
from twisted.internet import error
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import ClientFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from aaa_mip6.twisted.fastopen import (
    TCP_FASTOPEN_CONNECT,
    FastOpenReactor,
    listen_fast_open,
    sysctl_value,
)
from hac.config import load_config
from hac.server import bind
from mn.bootstrap import PskBootstrap
from mn.client import _lost

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_FASTOPEN"), reason="Linux only")


def hac_config(fast_open: int):
    return load_config(None, {
        "listen": "127.0.0.1:0", "tls.cert": "hac.pem", "tls.key": "hac.key",
        "credentials.psk_file": "psk", "store.url": "sqlite:////tmp/x.db",
        "home_agents.addresses": ["[2001:db8::1]:7000"], "bootstrap.hoa_prefix": "2001:db8:1::/64",
        "tcp_fast_open": fast_open})


def listener_queue(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN)


def test_the_hac_listener_takes_syn_data_unless_turned_off():
    assert hac_config(256).tcp_fast_open == 256
    with bind(hac_config(256)) as on, bind(hac_config(0)) as off:
        assert listener_queue(on) == 256
        assert listener_queue(off) == 0


def test_listen_fast_open_sets_the_queue():
    with socket.socket() as sock:
        assert listen_fast_open(sock, 7)
        assert listener_queue(sock) == 7


def test_the_fast_open_reactor_connects_with_tcp_fastopen_connect():
    real = MemoryReactorClock()
    reactor = FastOpenReactor(real)
    assert IReactorTCP.providedBy(reactor) and IReactorTime.providedBy(reactor)
    assert reactor.seconds() == real.seconds()  # the rest is the real reactor's
    connector = reactor.connectTCP("127.0.0.1", 9, ClientFactory(), timeout=5)
    try:
        sock = connector.transport.getHandle()
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT) == 1
        assert not sock.getblocking()
    finally:
        connector.stopConnecting()


def test_ipv6_hosts_get_an_ipv6_fast_open_socket():
    connector = FastOpenReactor(MemoryReactorClock()).connectTCP("::1", 9, ClientFactory())
    try:
        sock = connector.transport.getHandle()
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT) == 1
    finally:
        connector.stopConnecting()


def test_sysctl_value_reads_the_number(tmp_path):
    path = tmp_path / "tcp_fastopen"
    path.write_text("3\n")
    assert sysctl_value(path) == 3
    assert sysctl_value(tmp_path / "absent") is None


@pytest.mark.parametrize("answered, step", [(False, "connect"), (True, "tls"), (None, "tls")])
def test_a_fast_open_connect_refused_before_any_answer_fails_at_connect(answered, step):
    machine = PskBootstrap("mn@example.org", b"k" * 16)
    failure = _lost(machine, Failure(error.ConnectionLost()), answered)
    assert failure.step == step
    assert failure.reason == ("connect" if step == "connect" else "closed")
