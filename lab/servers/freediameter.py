"""A real freeDiameterd (Debian's freediameter 1.2.1) as a Diameter relay, for the integration
tests and bench/diameter.py.

:func:`run_relay` writes a freeDiameter configuration and TLS credentials (from
:mod:`aaa_mip6.pki`) into a directory and starts ``freeDiameterd -c FILE`` on
127.0.0.1 with free ports. The relay advertises the relay application
(0xffffffff) and routes by Destination-Realm to the peers it connects to: each of
``peers`` is one of our nodes that listens for TLS on the given port and holds a
certificate for its Origin-Host, signed by the same CA. The relay connects to them
(freeDiameter rejects unknown incoming peers without an ACL extension), so our
nodes only listen. The process is stopped when the context ends.

Use with ``with run_relay(tmp_path, peers) as relay:``. A connection the relay finds
refused is retried only after TcTimer plus a random 0-4 s, so callers whose nodes start
listening later pass ``start=False`` and call :meth:`Relay.start` once they listen; then
:meth:`Relay.wait_open` waits for the capabilities exchange with each peer, as logged.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from aaa_mip6 import pki

from ..processes import POLL_INTERVAL, free_port, stop_process
from . import ServerMissing
from .config import quoted

BINARY = "freeDiameterd"
RELAY_IDENTITY = "relay.example.com"
RELAY_REALM = "example.com"
RELAY_TW = 6  # freeDiameter refuses a TwTimer below RFC 3539's 6 seconds


@dataclass(frozen=True)
class PeerSpec:
    """One of our nodes the relay connects to over TLS."""

    origin_host: str
    port: int


@dataclass
class Relay:
    identity: str
    realm: str
    ca: pki.Identity
    credentials: dict[str, pki.Identity]  # our nodes' server certificates by Origin-Host
    config_path: Path
    log_path: Path
    config: Callable[[int, int], str] = field(repr=False)  # its text for (port, TLS port)
    process: subprocess.Popen | None = None  # the latest freeDiameterd started
    _log_start: int = field(default=0, repr=False)  # where its lines begin in the log

    def start(self) -> None:
        """Start freeDiameterd (again, after a stop); it appends to the log.

        Its own ports (nobody connects to them) are picked free now, not when the relay
        was set up: a port free then may be taken by the time a caller starts it."""
        self.config_path.write_text(self.config(free_port(), free_port()))
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([shutil.which(BINARY), "-c", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def is_open(self, origin_host: str) -> bool:
        """Whether the latest freeDiameterd has logged its connection to ``origin_host``
        open (capabilities exchanged, so it routes to that peer's realm)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            lines = log.read().decode(errors="replace")
        return f"-> 'STATE_OPEN'\t'{origin_host}'" in lines

    def wait_open(self, origin_hosts, timeout: float) -> None:
        """Until every one of ``origin_hosts`` is open; RuntimeError naming the others and
        the log after ``timeout`` or if freeDiameterd exits."""
        deadline = time.monotonic() + timeout
        while waiting := [host for host in origin_hosts if not self.is_open(host)]:
            status = self.process.poll()
            if status is not None or time.monotonic() > deadline:
                why = (f"exited with status {status}" if status is not None
                       else f"not within {timeout:g} s")
                raise RuntimeError(f"freeDiameterd has no open connection to "
                                   f"{', '.join(waiting)} ({why}); see {self.log_path}")
            time.sleep(POLL_INTERVAL)

    def pause(self) -> None:
        """Freeze the daemon (SIGSTOP): its TCP connections stay up but nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def relay_config(credentials: pki.Identity, ca: pki.Identity,
                 peers: list[PeerSpec], port: int, tls_port: int) -> str:
    """freeDiameter.conf for a relay on 127.0.0.1 that connects to ``peers`` over TLS."""
    lines = [
        f"Identity = {quoted(RELAY_IDENTITY)};",
        f"Realm = {quoted(RELAY_REALM)};",
        f"Port = {port};",
        f"SecPort = {tls_port};",
        'ListenOn = "127.0.0.1";',
        "No_SCTP;",
        "No_IPv6;",
        "TcTimer = 1;",
        f"TwTimer = {RELAY_TW};",
        f"TLS_Cred = {quoted(str(credentials.cert_path))}, {quoted(str(credentials.key_path))};",
        f"TLS_CA = {quoted(str(ca.cert_path))};",
    ]
    lines += [
        f"ConnectPeer = {quoted(peer.origin_host)} {{ ConnectTo = \"127.0.0.1\"; "
        f"Port = {peer.port}; No_SCTP; TcTimer = 1; }};"
        for peer in peers
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def run_relay(directory: Path, peers: list[PeerSpec], *, start: bool = True) -> Iterator[Relay]:
    """Start freeDiameterd (unless ``start`` is false: then :meth:`Relay.start`) as a relay
    between ``peers``; ServerMissing if it is not installed."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise ServerMissing("freeDiameterd is not installed (Debian package freediameter)")
    directory = Path(directory)
    ca = pki.make_ca(directory, "diameter-ca")
    relay_cert = pki.make_cert(directory, ca, "relay", dns_names=(RELAY_IDENTITY,), client=True)
    credentials = {peer.origin_host: pki.make_cert(directory, ca, peer.origin_host,
                                                   dns_names=(peer.origin_host,))
                   for peer in peers}
    relay = Relay(RELAY_IDENTITY, RELAY_REALM, ca, credentials,
                  directory / "freeDiameter.conf", directory / "freeDiameterd.log",
                  partial(relay_config, relay_cert, ca, peers))
    if start:
        relay.start()
    try:
        yield relay
    finally:
        if relay.process is not None:
            relay.resume()
            stop_process(relay.process)
