"""Debian's stock FreeRADIUS configuration with etc/freeradius installed, for tests.

:func:`running_stock_freeradius` copies /etc/freeradius/3.0 into a directory, installs
the shipped snippet the way etc/freeradius/README.md says (module, both sites, the
client, the dictionary; users of the test's choosing; certificates for the EAP module),
and runs it on 127.0.0.1 only (``-i``/``-p``, proxying off, as docs/usage.md's
walk-through does). Unlike :mod:`lab.servers.freeradius` nothing of FreeRADIUS's
own configuration is written by the test. It needs root and user freerad, and a
directory that user can enter (:func:`freerad_directory`).
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aaa_mip6.radius.servers import RadiusServer
from lab.processes import free_port, stop_process
from lab.servers import freeradius as fixture
from lab.servers.config import eap_server_pki

STOCK_CONFIG = Path("/etc/freeradius/3.0")
SNIPPET = Path(__file__).resolve().parents[2] / "etc" / "freeradius"
HOST = "127.0.0.1"
NAS_ADDRESS = "127.0.0.2"  # the stock clients.conf already has a client 127.0.0.1
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class StockFreeRadius:
    server: RadiusServer = field(repr=False)
    ca_cert: Path
    log_path: Path


def skip_unless_runnable() -> None:
    """Skip the test when the stock configuration cannot be copied and run as Debian does."""
    if fixture.binary() is None:
        pytest.skip("freeradius is not installed (Debian package freeradius)")
    if not (STOCK_CONFIG / "radiusd.conf").is_file():
        pytest.skip(f"no stock FreeRADIUS configuration in {STOCK_CONFIG}")
    if os.geteuid() != 0:
        pytest.skip(f"copying {STOCK_CONFIG} and running it as Debian does needs root")
    try:
        pwd.getpwnam("freerad")
    except KeyError:
        pytest.skip("no user freerad (Debian's FreeRADIUS drops to it)")


def free_radius_port() -> int:
    """A UDP port on 127.0.0.1 free now, with the next one free too: with ``-p PORT``
    FreeRADIUS also takes PORT+1 for accounting."""
    for _ in range(20):
        port = free_port(HOST, socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no two free consecutive UDP ports on {HOST}")


@contextmanager
def freerad_directory() -> Iterator[Path]:
    """A new directory user freerad can enter (pytest's tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="mip6-stock-freeradius-"))
    try:
        directory.chmod(0o755)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def install(raddb: Path, secret: str, users: str) -> Path:
    """Copy the stock tree to ``raddb`` and install the snippet; return the EAP CA."""
    shutil.copytree(STOCK_CONFIG, raddb, symlinks=True)
    shutil.copy(SNIPPET / "eap-aaa-mip6", raddb / "mods-available")
    (raddb / "mods-enabled" / "eap-aaa-mip6").symlink_to("../mods-available/eap-aaa-mip6")
    for site in ("aaa-mip6", "aaa-mip6-inner"):
        shutil.copy(SNIPPET / site, raddb / "sites-available")
        (raddb / "sites-enabled" / site).symlink_to(f"../sites-available/{site}")
    client = (SNIPPET / "clients.conf.aaa-mip6").read_text()
    with open(raddb / "clients.conf", "a") as clients:
        clients.write(client.replace("192.0.2.1", NAS_ADDRESS)
                      .replace("CHANGE-ME-TO-A-RANDOM-SECRET", secret))
    with open(raddb / "mods-config" / "files" / "authorize", "a") as authorize:
        authorize.write(users)
    shutil.copy(SNIPPET / "dictionary.aaa-mip6", raddb)
    with open(raddb / "dictionary", "a") as dictionary:
        dictionary.write("$INCLUDE dictionary.aaa-mip6\n")
    radiusd = raddb / "radiusd.conf"
    text, count = re.subn(r"^proxy_requests *= *yes", "proxy_requests = no", radiusd.read_text(),
                          flags=re.MULTILINE)
    assert count == 1, f"no 'proxy_requests = yes' line in {radiusd}"
    radiusd.write_text(text)
    ca, server, _ = eap_server_pki(raddb / "certs" / "aaa-mip6", "aaa-mip6 stock test CA",
                                   "radius.example.org", "unused@example.org")
    server.cert_path.rename(server.cert_path.with_name("server.pem"))
    server.key_path.rename(server.key_path.with_name("server.key"))
    ca.cert_path.rename(ca.cert_path.with_name("ca.pem"))
    subprocess.run(["chown", "-R", "freerad:freerad", str(raddb)], check=True)
    return raddb / "certs" / "aaa-mip6" / "ca.pem"


@contextmanager
def running_stock_freeradius(directory: Path, users: str) -> Iterator[StockFreeRadius]:
    """The stock tree plus the snippet and ``users``, running on 127.0.0.1; stopped on exit."""
    secret = secrets.token_hex(16)
    for attempt in range(PORT_ATTEMPTS):
        raddb = directory / f"raddb{attempt}"
        ca_cert = install(raddb, secret, users)
        port = free_radius_port()
        log_path = directory / f"radius{attempt}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [fixture.binary(), "-X", "-d", str(raddb), "-i", HOST, "-p", str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            if fixture.wait_ready(process, log_path):
                yield StockFreeRadius(RadiusServer(ipaddress.IPv4Address(HOST), port,
                                                   secret.encode()), ca_cert, log_path)
                return
        finally:
            stop_process(process)
        if "address already in use" not in log_path.read_text(errors="replace").lower():
            break
    raise RuntimeError(f"FreeRADIUS refused the stock tree with etc/freeradius; see {log_path}")
