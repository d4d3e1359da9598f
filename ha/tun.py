"""The HA's home-network side: a Linux TUN device (root), no packet-information header.

Packets the MNs tunnel to the HA are written into it, so the kernel forwards them on
the home network; packets the kernel routes into it (the operator routes the home
prefixes, or single home addresses, to the device) are read and tunneled to the MNs.
Creating the device reuses :func:`mn.tunnel.open_tun` (the same TUNSETIFF ioctl).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network

from mn.tunnel import MAX_PACKET, TunnelError, open_tun

READ_BATCH = 64  # packets read per reactor wake-up, so the UDP side is not starved


class HomeNetworkTun:
    """An up TUN device whose routed packets the HA reads and into which it writes."""

    def __init__(self, fd: int, name: str):
        self._fd = fd
        self.name = name

    def __repr__(self) -> str:
        return f"HomeNetworkTun({self.name})"

    @classmethod
    def open(cls, name: str, routes: Iterable[IPv4Network | IPv6Network] = (),
             mtu: int = 1500) -> HomeNetworkTun:
        """Create ``name``, bring it up and route ``routes`` (home prefixes) into it."""
        tun = cls(*open_tun(name))
        try:
            tun._ip("link", "set", "dev", tun.name, "mtu", str(mtu), "up")
            for network in routes:
                family = "-6" if network.version == 6 else "-4"
                tun._ip(family, "route", "replace", str(network), "dev", tun.name)
        except BaseException:
            tun.close()
            raise
        return tun

    @staticmethod
    def _ip(*arguments: str) -> None:
        done = subprocess.run(["ip", *arguments], capture_output=True, text=True, check=False)
        if done.returncode:
            raise TunnelError(f"ip {' '.join(arguments)}: {done.stderr.strip()}")

    def fileno(self) -> int:
        return self._fd

    def read_batch(self) -> list[bytes]:
        """Up to READ_BATCH packets waiting in the device (none when it is empty)."""
        packets = []
        for _ in range(READ_BATCH):
            try:
                packets.append(os.read(self._fd, MAX_PACKET))
            except BlockingIOError:
                break
        return packets

    def write(self, packet: bytes) -> bool:
        """Hand one packet to the kernel; False when the device queue is full or it is refused."""
        try:
            os.write(self._fd, packet)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EINVAL, errno.EIO):
                return False
            raise
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
