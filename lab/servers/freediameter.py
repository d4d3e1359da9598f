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

Use with ``with run_relay(tmp_path, peers) as relay:``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from aaa_mip6 import pki

from ..processes import free_port, stop_process
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


@dataclass(frozen=True)
class Relay:
    identity: str
    realm: str
    ca: pki.Identity
    credentials: dict[str, pki.Identity]  # our nodes' server certificates by Origin-Host
    config_path: Path
    log_path: Path
    process: subprocess.Popen

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
def run_relay(directory: Path, peers: list[PeerSpec]) -> Iterator[Relay]:
    """Start freeDiameterd as a relay between ``peers``; ServerMissing if it is not installed."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise ServerMissing("freeDiameterd is not installed (Debian package freediameter)")
    directory = Path(directory)
    ca = pki.make_ca(directory, "diameter-ca")
    relay_cert = pki.make_cert(directory, ca, "relay", dns_names=(RELAY_IDENTITY,), client=True)
    credentials = {peer.origin_host: pki.make_cert(directory, ca, peer.origin_host,
                                                   dns_names=(peer.origin_host,))
                   for peer in peers}
    config_path = directory / "freeDiameter.conf"
    config_path.write_text(relay_config(relay_cert, ca, peers, free_port(), free_port()))
    log_path = directory / "freeDiameterd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, "-c", str(config_path)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    relay = Relay(RELAY_IDENTITY, RELAY_REALM, ca, credentials, config_path, log_path, process)
    try:
        yield relay
    finally:
        relay.resume()
        stop_process(process)
