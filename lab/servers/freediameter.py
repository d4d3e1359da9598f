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

As a routing agent in front of several nodes of one realm, it also takes
``extensions`` (Debian's ``/usr/lib/freeDiameter/*.fdx``: ``rt_load_balance`` to
prefer the candidate with the fewest pending requests, ``rt_randomize`` to break ties
at random) and ``accept``: the Diameter identities (``*.example.org`` allowed) that may
connect to it, through the ``acl_wl`` whitelist extension, on its TLS port
(``Relay.tls_port``), so that those nodes connect and reconnect by themselves.

Use with ``with run_relay(tmp_path, peers) as relay:``. A connection the relay finds
refused is retried only after TcTimer plus a random 0-4 s, so callers whose nodes start
listening later pass ``start=False`` and call :meth:`Relay.start` once they listen; then
:meth:`Relay.wait_open` waits for the capabilities exchange with each peer, as logged
(freeDiameterd 1.2.1 has no control interface to ask).
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from aaa_mip6 import pki

from ..processes import POLL_INTERVAL, free_port, stop_process, wait_listening
from . import ServerMissing
from .config import quoted

BINARY = "freeDiameterd"
RELAY_IDENTITY = "relay.example.com"
RELAY_REALM = "example.com"
RELAY_TW = 6  # freeDiameter refuses a TwTimer below RFC 3539's 6 seconds
START_TIMEOUT = 30.0  # seconds for the daemon to listen (it loads extensions and TLS first)
LOWEST_PORT = 10_000  # the agent's ports are drawn from here up to the ephemeral range
PORT_ATTEMPTS = 100
EXTENSION_DIR = Path("/usr/lib/freeDiameter")  # Debian's freediameter-extensions


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
    credentials: dict[str, pki.Identity]  # our nodes' certificates by Origin-Host
    config_path: Path
    log_path: Path
    process: subprocess.Popen | None = None  # the latest daemon started
    port: int = 0  # TCP
    tls_port: int = 0  # TLS from the first octet (RFC 6733 §13)
    _log_start: int = field(default=0, repr=False)  # where its lines begin in the log

    def start(self) -> None:
        """Start the daemon (``run_relay(start=False)``); it appends to the log."""
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = _start(self.config_path, self.log_path, self.tls_port)

    def restart(self) -> None:
        """Stop the daemon (SIGTERM) and start it again with the same configuration."""
        self.resume()
        stop_process(self.process)
        self.start()

    def is_open(self, origin_host: str) -> bool:
        """Whether the latest daemon has logged its connection to ``origin_host`` open
        (capabilities exchanged, so it routes to that peer's realm)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            lines = log.read().decode(errors="replace")
        return f"-> 'STATE_OPEN'\t'{origin_host}'" in lines

    def wait_open(self, origin_hosts, timeout: float) -> None:
        """Until every one of ``origin_hosts`` is open; RuntimeError naming the others and
        the log after ``timeout`` or if the daemon exits."""
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
                 peers: list[PeerSpec], port: int, tls_port: int, *,
                 extensions: tuple[Path, ...] = (), whitelist: Path | None = None) -> str:
    """freeDiameter.conf for a relay on 127.0.0.1 that connects to ``peers`` over TLS,
    loads ``extensions`` and, with ``whitelist``, accepts the peers it names."""
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
    lines += [f"LoadExtension = {quoted(str(path))};" for path in extensions]
    if whitelist is not None:
        lines.append(f"LoadExtension = {quoted(str(EXTENSION_DIR / 'acl_wl.fdx'))} : "
                     f"{quoted(str(whitelist))};")
    lines += [
        f"ConnectPeer = {quoted(peer.origin_host)} {{ ConnectTo = \"127.0.0.1\"; "
        f"Port = {peer.port}; No_SCTP; TcTimer = 1; }};"
        for peer in peers
    ]
    return "\n".join(lines) + "\n"


def _restartable_port() -> int:
    """A free TCP port below the kernel's ephemeral range (else :func:`free_port`).

    Between a stop and a restart of the agent, a port from the ephemeral range may be
    handed to any outgoing connection on the machine (or to a peer's reconnection that
    meets itself), and the restarted agent then cannot bind it; ports below the range
    are never handed out that way.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return free_port()
    draw = random.SystemRandom()
    for _ in range(PORT_ATTEMPTS):
        port = draw.randrange(LOWEST_PORT, low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return free_port()


def _start(config_path: Path, log_path: Path, tls_port: int) -> subprocess.Popen:
    """Start the daemon and return once it accepts connections on ``tls_port``, so that
    peers connecting to it do not start on a long reconnect backoff."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise ServerMissing("freeDiameterd is not installed (Debian package freediameter)")
    with open(log_path, "ab") as log:
        process = subprocess.Popen([binary, "-c", str(config_path)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if not wait_listening(process, "127.0.0.1", tls_port, START_TIMEOUT):
        stop_process(process)
        raise RuntimeError(f"freeDiameterd did not listen on port {tls_port}; see {log_path}")
    return process


@contextmanager
def run_relay(directory: Path, peers: list[PeerSpec], *, extensions: tuple[str, ...] = (),
              accept: tuple[str, ...] = (), start: bool = True) -> Iterator[Relay]:
    """Start freeDiameterd (unless ``start`` is false: then :meth:`Relay.start`) as a
    relay between ``peers`` (and the ``accept``ed identities that connect to it), with
    ``extensions`` loaded by name (``"rt_load_balance"``); ServerMissing if it or an
    extension is not installed.

    ``credentials`` holds a certificate for each peer and each accepted identity without
    a ``*`` (server and client usage: it may listen or connect).
    """
    if shutil.which(BINARY) is None:
        raise ServerMissing("freeDiameterd is not installed (Debian package freediameter)")
    paths = tuple(EXTENSION_DIR / f"{name}.fdx" for name in extensions)
    for path in (*paths, *([EXTENSION_DIR / "acl_wl.fdx"] if accept else [])):
        if not path.exists():
            raise ServerMissing(f"{path} is missing (Debian package freediameter-extensions)")
    directory = Path(directory)
    ca = pki.make_ca(directory, "diameter-ca")
    relay_cert = pki.make_cert(directory, ca, "relay", dns_names=(RELAY_IDENTITY,),
                               client=True, server=True)
    names = [peer.origin_host for peer in peers] + [n for n in accept if "*" not in n]
    credentials = {name: pki.make_cert(directory, ca, name, dns_names=(name,),
                                       client=True, server=True)
                   for name in dict.fromkeys(names)}
    whitelist = None
    if accept:
        whitelist = directory / "acl_wl.conf"
        whitelist.write_text("\n".join(accept) + "\n")
    port, tls_port = _restartable_port(), _restartable_port()
    config_path = directory / "freeDiameter.conf"
    config_path.write_text(relay_config(relay_cert, ca, peers, port, tls_port,
                                        extensions=paths, whitelist=whitelist))
    log_path = directory / "freeDiameterd.log"
    relay = Relay(RELAY_IDENTITY, RELAY_REALM, ca, credentials, config_path, log_path,
                  None, port, tls_port)
    if start:
        relay.start()
    try:
        yield relay
    finally:
        if relay.process is not None:
            relay.resume()
            stop_process(relay.process)
