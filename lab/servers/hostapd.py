"""hostapd's integrated EAP server as a second RADIUS server for the interop tests.

hostapd runs with ``driver=none``: no radio, only its RADIUS authentication server
(``radius_server_clients``) in front of its own EAP server (``eap_server=1``). The
generated config enables the methods the MN speaks (md5, gtc, mschapv2, pwd, tls,
ttls, peap) with certificates from :mod:`aaa_mip6.pki`, TLS 1.2 and 1.3, and
accepts RADIUS only from 127.0.0.1. hostapd 2.10 has no option to bind its RADIUS
server to one address: it listens on the wildcard address, so the free port is
picked there. hostapd writes a debug log (``-d``, keys hidden since ``-K`` is
not given) to a 0600 file in the 0700 temp dir: its TTLS AVP dumps still show the
throwaway test password in hex. hostapd is stopped when the fixture ends.

The session fixture ``hostapd`` (tests/integration/conftest.py) starts one for the whole run.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from aaa_mip6 import pki

from ..processes import free_port, stop_process, wait_for_log_line
from .config import eap_server_pki, quoted

START_TIMEOUT = 20.0
READY_LINE = "AP-ENABLED"
BIND_FAILED = "RADIUS: bind"
PORT_ATTEMPTS = 3
WILDCARD = "0.0.0.0"

PASSWORD_USER = "mn1@example.org"
TLS_USER = "mn-tls@example.org"
ANONYMOUS_IDENTITY = "anonymous@example.org"
SERVER_NAME = "radius.example.org"
PWD_GROUP = 19
TLS13_SINCE = (2, 9)  # hostapd ChangeLog v2.9: "EAP-TLS server support for TLS 1.3"


@dataclass(frozen=True)
class Hostapd:
    """What a test needs to reach the running server and authenticate to it.

    The credential fields have the same names as on ``FreeRadius``, so a test can
    run one case against either server.
    """

    host: str
    port: int
    secret: bytes = field(repr=False)
    ca_cert: Path
    client_cert: Path  # EAP-TLS client certificate, CN = tls_user
    client_key: Path
    user: str  # a password user for md5/gtc/mschapv2/pwd and inside ttls/peap
    password: str = field(repr=False)
    tls_user: str
    anonymous_identity: str
    pwd_supported: bool  # False if this build has no EAP-pwd server
    tls13_supported: bool  # False if this hostapd predates its TLS 1.3 server
    config_dir: Path
    log_path: Path
    usim: Path | None = None  # the USIM of the AuC's subscriber, when started with one


def binary() -> str | None:
    return shutil.which("hostapd")


def version(executable: str) -> tuple[int, ...]:
    """(2, 10) for ``hostapd v2.10``; hostapd prints it on stderr and exits with status 1."""
    result = subprocess.run([executable, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"^hostapd v(\d+(?:\.\d+)*)", result.stderr + result.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{executable} -v printed no version line")
    return tuple(int(part) for part in match.group(1).split("."))


def _hostapd_conf(directory: Path, port: int, server: pki.Identity, ca: pki.Identity) -> str:
    return f"""\
driver=none
interface=none
logger_stdout=-1
logger_stdout_level=2
eap_server=1
eap_user_file={directory / "eap_user"}
ca_cert={ca.cert_path}
server_cert={server.cert_path}
private_key={server.key_path}
server_id={SERVER_NAME}
tls_flags=[ENABLE-TLSv1.2][ENABLE-TLSv1.3]
fragment_size=1020
pwd_group={PWD_GROUP}
radius_server_clients={directory / "radius_clients"}
radius_server_auth_port={port}
radius_server_acct_port=0
"""


def _eap_users(password: str, with_pwd: bool) -> str:
    """Phase 1: the password user by name, TLS by certificate, the outer anonymous name
    for TTLS/PEAP; phase 2 ([2]): the password user inside the tunnels.

    hostapd offers a user's methods in order and moves on when the peer Naks.
    """
    outer_methods = "MD5,GTC,MSCHAPV2" + (",PWD" if with_pwd else "")
    secret = quoted(password)
    return (
        f"{quoted(PASSWORD_USER)}\t{outer_methods}\t{secret}\n"
        f"{quoted(TLS_USER)}\tTLS\n"
        f"{quoted(ANONYMOUS_IDENTITY)}\tTTLS,PEAP\n"
        f"{quoted(PASSWORD_USER)}\tTTLS-PAP,TTLS-MSCHAPV2,MSCHAPV2\t{secret}\t[2]\n"
    )


def sim_aka_config(socket_path: Path) -> tuple[str, str]:
    """(hostapd.conf lines, eap_user lines) for EAP-SIM/AKA/AKA' with vectors from the AuC
    at ``socket_path``: permanent identities (1 SIM, 0 AKA, 6 AKA'), hostapd's pseudonyms
    (3, 2, 7) and re-authentication identities (5, 4, 8)."""
    users = "".join(f'"{prefix}"*\t{method}\n' for prefix, method in (
        ("1", "SIM"), ("3", "SIM"), ("5", "SIM"), ("0", "AKA"), ("2", "AKA"), ("4", "AKA"),
        ("6", "AKA'"), ("7", "AKA'"), ("8", "AKA'")))
    return f"eap_sim_db=unix:{socket_path}\neap_sim_aka_result_ind=1\n", users


def write_config(directory: Path, port: int, secret: str, password: str, with_pwd: bool,
                 extra: tuple[str, str] = ("", "")) -> tuple[pki.Identity, pki.Identity]:
    """Write a complete hostapd config into ``directory``; return (ca, client identity).
    ``extra`` adds (hostapd.conf lines, eap_user lines)."""
    certs = directory / "certs"
    ca, server, client = eap_server_pki(certs, "aaa-mip6 test hostapd CA", SERVER_NAME,
                                        TLS_USER)
    (directory / "hostapd.conf").write_text(_hostapd_conf(directory, port, server, ca)
                                            + extra[0])
    pki.write_private(directory / "radius_clients", f"127.0.0.1/32\t{secret}\n".encode())
    pki.write_private(directory / "eap_user", (extra[1] + _eap_users(password, with_pwd)
                                               ).encode())
    return ca, client


def _wait_ready(process: subprocess.Popen, log_path: Path) -> bool:
    """True once hostapd says its (RADIUS-only) interface is up; False if it exited first."""
    return wait_for_log_line(process, log_path, READY_LINE, timeout=START_TIMEOUT,
                             what="hostapd")


def _pwd_unsupported(log_text: str) -> bool:
    return "Unsupported EAP type 'PWD'" in log_text


@contextmanager
def running_hostapd(directory: Path, host: str = "127.0.0.1",
                    extra: tuple[str, str] = ("", "")) -> Iterator[Hostapd]:
    """Configure and start hostapd in ``directory``; stop it on exit.

    A free port is picked; if another process takes it before hostapd binds it,
    the start is retried on a new port. A build without an EAP-pwd server rejects
    the user file; the server is then started without pwd (``pwd_supported`` False).
    """
    executable = binary()
    if executable is None:
        raise FileNotFoundError("hostapd is not installed")
    tls13 = version(executable) >= TLS13_SINCE
    secret = secrets.token_hex(16)
    password = "pw-" + secrets.token_hex(8)
    with_pwd = True
    for attempt in range(PORT_ATTEMPTS + 1):
        config_dir = directory / f"hostapd{attempt}"
        config_dir.mkdir(mode=0o700, parents=True)
        port = free_port(WILDCARD, socket.SOCK_DGRAM)
        ca, client = write_config(config_dir, port, secret, password, with_pwd, extra)
        log_path = config_dir / "hostapd.log"
        pki.write_private(log_path, b"")  # hostapd appends and keeps the mode
        command = [executable, "-d", "-f", str(log_path), str(config_dir / "hostapd.conf")]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            if _wait_ready(process, log_path):
                yield Hostapd(
                    host=host, port=port, secret=secret.encode(), ca_cert=ca.cert_path,
                    client_cert=client.cert_path, client_key=client.key_path,
                    user=PASSWORD_USER, password=password, tls_user=TLS_USER,
                    anonymous_identity=ANONYMOUS_IDENTITY,
                    pwd_supported=with_pwd, tls13_supported=tls13,
                    config_dir=config_dir, log_path=log_path,
                )
                return
        finally:
            stop_process(process)
        log_text = log_path.read_text(errors="replace")
        if with_pwd and _pwd_unsupported(log_text):
            with_pwd = False
        elif BIND_FAILED not in log_text:
            break
    raise RuntimeError(f"hostapd did not start; see {log_path}")
