"""Linux TUN devices (root), shared by the MN's tunnel and the HA's home-network side.

A device is created with the TUNSETIFF ioctl and no packet-information header, so
each read or write is one bare IP packet. The device lives as long as its file
descriptor is open; its addresses and routes vanish with it. Configuration is done
by the ``ip`` program (iproute2), as an operator would do it by hand.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

from aaa_mip6.errors import ConfigError

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
MAX_PACKET = 65535
READ_BATCH = 64  # packets read per reactor wake-up, so the UDP side is not starved
_DROPPED_WRITE = (errno.EAGAIN, errno.EINVAL, errno.EIO)  # queue full, packet refused, link down

Network = IPv4Network | IPv6Network


class TunnelError(Exception):
    """The TUN device could not be created or configured (the message says which step)."""


def run_ip(*arguments: str) -> str:
    """Run one ``ip`` command; its stdout, or TunnelError with its stderr."""
    try:
        done = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
    except OSError as error:
        raise TunnelError(f"cannot run ip: {error}") from None
    if done.returncode:
        raise TunnelError(f"ip {' '.join(arguments)}: {done.stderr.strip()}")
    return done.stdout


def route_into(device: str, network: Network, *extra: str) -> None:
    """Route ``network`` into ``device`` (replacing any route for it); ``extra`` e.g. src."""
    family = "-6" if network.version == 6 else "-4"
    run_ip(family, "route", "replace", str(network), "dev", device, *extra)


def open_tun(name: str) -> tuple[int, str]:
    """Create a TUN device (no packet information header); (non-blocking fd, name)."""
    if not 0 < len(name.encode()) < IFNAMSIZ:
        raise ConfigError(f"interface name {name!r} must have 1..{IFNAMSIZ - 1} octets")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise TunnelError(f"cannot open /dev/net/tun: {error.strerror} (root needed)") from None
    try:
        request = struct.pack(f"{IFNAMSIZ}sH", name.encode(), IFF_TUN | IFF_NO_PI)
        answer = fcntl.ioctl(fd, TUNSETIFF, request)
    except OSError as error:
        os.close(fd)
        raise TunnelError(f"cannot create TUN interface {name}: {error.strerror}") from None
    return fd, answer[:IFNAMSIZ].rstrip(b"\0").decode()


class TunDevice:
    """An open TUN device: packets in and out; subclasses add its addresses and routes.

    :meth:`create` opens the device and runs :meth:`_configure`; if that fails the
    device is closed again, so a half-configured device never outlives the error.
    """

    def __init__(self, fd: int, name: str):
        self._fd = fd
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"

    @classmethod
    def create(cls, name: str, *configuration, **options):
        """Create ``name`` and configure it with ``_configure(*configuration, **options)``."""
        device = cls(*open_tun(name))
        try:
            device._configure(*configuration, **options)
        except BaseException:
            device.close()
            raise
        return device

    def _configure(self, mtu: int) -> None:
        """Bring the device up with ``mtu``."""
        run_ip("link", "set", "dev", self.name, "mtu", str(mtu), "up")

    def fileno(self) -> int:
        return self._fd

    def read(self) -> bytes:
        """One packet the kernel routed into the device (OSError EAGAIN when none)."""
        return os.read(self._fd, MAX_PACKET)

    def read_batch(self) -> list[bytes]:
        """Up to READ_BATCH packets waiting in the device (none when it is empty)."""
        packets = []
        for _ in range(READ_BATCH):
            try:
                packets.append(self.read())
            except BlockingIOError:
                break
        return packets

    def write(self, packet: bytes) -> bool:
        """Hand one packet to the kernel; False (dropped, as a link would) when the device
        queue is full, the kernel refuses the packet or the device is down."""
        try:
            os.write(self._fd, packet)
        except OSError as error:
            if error.errno in _DROPPED_WRITE:
                return False
            raise
        return True

    def close(self) -> None:
        """Close the device, which removes it with its addresses and routes."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SilentTunDevice(TunDevice):
    """A TUN device without a link-local address: the kernel sends nothing of its own
    (MLD, Router Solicitations) into it."""

    def _configure(self, mtu: int) -> None:
        run_ip("link", "set", "dev", self.name, "addrgenmode", "none")
        super()._configure(mtu)



@implementer(IReadDescriptor)
class DeviceReader:
    """Lets a reactor read a packet device (``fileno``, ``read_batch``): at each
    readiness event every waiting packet, up to READ_BATCH, goes to ``receive``."""

    def __init__(self, device, receive: Callable[[bytes], object], log_prefix: str):
        self.device = device
        self.receive = receive
        self.log_prefix = log_prefix

    def fileno(self) -> int:
        return self.device.fileno()

    def logPrefix(self) -> str:  # noqa: N802 (Twisted API)
        return self.log_prefix

    def doRead(self) -> None:  # noqa: N802 (Twisted API)
        for packet in self.device.read_batch():
            self.receive(packet)

    def connectionLost(self, reason) -> None:  # noqa: N802 (Twisted API)
        """Nothing to do: the device's owner closes it."""
