"""TUN device plumbing that needs no device: packet I/O over a socket pair, names, routes."""

import socket
from ipaddress import IPv4Network, IPv6Network

import pytest

from aaa_mip6.errors import ConfigError
from aaa_mip6.twisted.tun import READ_BATCH, DeviceReader, TunDevice, open_tun
from mn.tunnel import parse_route


@pytest.fixture
def device_and_kernel():
    """A TunDevice whose fd is one end of a datagram pair; the other end plays the kernel."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    kernel.setblocking(False)
    device = TunDevice(ours.detach(), "test0")
    yield device, kernel
    device.close()
    kernel.close()


def test_read_batch_takes_what_is_waiting_then_nothing(device_and_kernel):
    device, kernel = device_and_kernel
    kernel.send(b"first")
    kernel.send(b"second")
    assert device.read_batch() == [b"first", b"second"]
    assert device.read_batch() == []


def test_read_batch_stops_at_the_batch_size(device_and_kernel):
    device, kernel = device_and_kernel
    for number in range(READ_BATCH + 1):
        kernel.send(number.to_bytes(2, "big"))
    assert len(device.read_batch()) == READ_BATCH
    assert device.read_batch() == [READ_BATCH.to_bytes(2, "big")]


def test_read_with_nothing_waiting_raises_blocking(device_and_kernel):
    device, _ = device_and_kernel
    with pytest.raises(BlockingIOError):
        device.read()


def test_write_delivers_and_drops_when_the_queue_is_full(device_and_kernel):
    device, kernel = device_and_kernel
    assert device.write(b"packet") is True
    assert kernel.recv(100) == b"packet"
    results = [device.write(bytes(4096)) for _ in range(1000)]
    assert results[0] is True and results[-1] is False


def test_device_reader_hands_every_waiting_packet_over(device_and_kernel):
    device, kernel = device_and_kernel
    received = []
    reader = DeviceReader(device, received.append, "test-tun")
    kernel.send(b"one")
    kernel.send(b"two")
    reader.doRead()
    reader.doRead()  # a spurious wake-up finds nothing
    assert received == [b"one", b"two"]
    assert reader.fileno() == device.fileno()
    assert reader.logPrefix() == "test-tun"


def test_close_is_idempotent_and_reprs_by_name(device_and_kernel):
    device, _ = device_and_kernel
    assert repr(device) == "TunDevice(test0)"
    device.close()
    device.close()
    assert device.fileno() == -1


@pytest.mark.parametrize("name", ["", "a" * 16])
def test_open_tun_checks_the_name_length_first(name):
    with pytest.raises(ConfigError, match="1..15 octets"):
        open_tun(name)


def test_parse_route():
    assert parse_route("default") == [IPv6Network("::/0"), IPv4Network("0.0.0.0/0")]
    assert parse_route("2001:db8:c::1/64") == [IPv6Network("2001:db8:c::/64")]
    with pytest.raises(ConfigError, match="--route"):
        parse_route("nowhere")
