"""A real FreeRADIUS 3.2 for the integration tests and bench/eap_relay.py, configured from
scratch in a temp dir.

The generated config enables every EAP method the MN speaks (md5, gtc, mschapv2,
pwd, tls, ttls, peap) with certificates from :mod:`aaa_mip6.pki`, returns the
MS-MPPE keys in Access-Accept, and gives the test users the home-address
attributes the HAC uses. The server listens on 127.0.0.1 on a free port, logs to
a file in the temp dir (not debug mode), and is stopped when the fixture ends. An
accounting listener on another free port writes every Accounting-Request to the
``detail`` file in the config dir (FreeRADIUS's detail module), for the HAC's
accounting tests.

The session fixture ``freeradius`` (tests/integration/conftest.py) starts one for the whole run.
"""

from __future__ import annotations

import ipaddress
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

DICTIONARY_DIR = Path("/usr/share/freeradius")
START_TIMEOUT = 20.0
READY_LINE = "Ready to process requests"
PORT_ATTEMPTS = 3

PASSWORD_USER = "mn1@example.org"
TLS_USER = "mn-tls@example.org"
ANONYMOUS_IDENTITY = "anonymous@example.org"
PWD_SERVER_ID = "radius.example.org"
SERVER_NAME = "radius.example.org"
# Reply attributes for every test user; the HAC turns them into the home addresses and
# prefix. The prefix is not the tests' HAC pool (2001:db8:1::/64), so a test can tell the
# AAA's prefix from local policy.
HOME_LINK_PREFIX = ipaddress.IPv6Network("2001:db8:1:a::/64")
FRAMED_IPV6_ADDRESS = "2001:db8:1:a::10"
FRAMED_IP_ADDRESS = "192.0.2.10"
# EAP-SIM with fixed triplets in the users file (FreeRADIUS 3.2 has no AKA): the subscriber's
# permanent identity and its three (RAND, SRES, Kc), as hlr_auc_gw's triplet file writes them.
SIM_IMSI = "232010000000002"
SIM_TRIPLETS = (("a0a1a2a3a4a5a6a7", "d1d2d3d4", "101112131415161718191a1b1c1d1e1f"),
                ("b0b1b2b3b4b5b6b7", "e1e2e3e4", "202122232425262728292a2b2c2d2e2f"),
                ("c0c1c2c3c4c5c6c7", "f1f2f3f4", "303132333435363738393a3b3c3d3e3f"))


@dataclass(frozen=True)
class FreeRadius:
    """What a test needs to reach the running server and authenticate to it."""

    host: str
    port: int
    acct_port: int  # the accounting listener's
    secret: bytes = field(repr=False)
    ca_cert: Path
    client_cert: Path  # EAP-TLS client certificate, CN = tls_user
    client_key: Path
    user: str  # a password user for md5/gtc/mschapv2/pwd/ttls/peap
    password: str = field(repr=False)
    tls_user: str
    anonymous_identity: str
    pwd_server_id: str
    framed_ipv6_address: str
    framed_ip_address: str
    home_link_prefix: ipaddress.IPv6Network
    config_dir: Path
    log_path: Path
    detail_path: Path  # every Accounting-Request, as FreeRADIUS's detail module writes it
    sim_triplets: Path  # the SIM of SIM_IMSI: its triplets as hlr_auc_gw writes them


def _radiusd_conf(directory: Path, log_path: Path) -> str:
    return f"""\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {directory}
sbindir = /usr/sbin
logdir = {directory}
raddbdir = {directory}
radacctdir = {directory}
name = radiusd
confdir = {directory}
modconfdir = {directory}/mods-config
certdir = {directory}/certs
cadir = {directory}/certs
run_dir = {directory}
db_dir = {directory}
libdir = /usr/lib/freeradius
pidfile = {directory}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no
log {{
    destination = files
    file = {log_path}
    colourise = no
    auth = yes
    auth_badpass = no
    auth_goodpass = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
proxy_requests = no
$INCLUDE clients.conf
thread pool {{
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 2
    max_requests_per_server = 0
}}
modules {{
    $INCLUDE mods-enabled/
}}
instantiate {{
}}
policy {{
}}
$INCLUDE sites-enabled/
"""


def _clients_conf(secret: str) -> str:
    return f"""\
client localhost {{
    ipaddr = 127.0.0.1
    secret = {quoted(secret)}
    require_message_authenticator = yes
    nas_type = other
}}
"""


def _eap_module(certs: Path, server: pki.Identity, ca: pki.Identity) -> str:
    return f"""\
eap {{
    default_eap_type = md5
    timer_expire = 60
    ignore_unknown_eap_types = no
    max_sessions = ${{max_requests}}
    md5 {{
    }}
    gtc {{
        auth_type = PAP
    }}
    mschapv2 {{
    }}
    pwd {{
        group = 19
        server_id = {quoted(PWD_SERVER_ID)}
        fragment_size = 1020
        virtual_server = "inner-tunnel"
    }}
    tls-config tls-common {{
        private_key_file = {server.key_path}
        certificate_file = {server.cert_path}
        ca_file = {ca.cert_path}
        ca_path = {certs}
        cipher_list = "DEFAULT"
        cipher_server_preference = no
        tls_min_version = "1.2"
        tls_max_version = "1.3"
        ecdh_curve = ""
        cache {{
            enable = no
        }}
        verify {{
        }}
        ocsp {{
            enable = no
        }}
    }}
    tls {{
        tls = tls-common
    }}
    ttls {{
        tls = tls-common
        default_eap_type = md5
        copy_request_to_tunnel = no
        use_tunneled_reply = yes
        virtual_server = "inner-tunnel"
    }}
    peap {{
        tls = tls-common
        default_eap_type = mschapv2
        copy_request_to_tunnel = no
        use_tunneled_reply = yes
        virtual_server = "inner-tunnel"
    }}
    sim {{
    }}
}}
"""


_OTHER_MODULES = {
    "pap": "pap {\n}\n",
    "mschap": "mschap {\n    use_mppe = yes\n    require_encryption = no\n"
              "    require_strong = no\n    with_ntdomain_hack = yes\n}\n",
    "files": "files {\n    filename = ${modconfdir}/files/authorize\n}\n",
    "detail": "detail {\n    filename = ${radacctdir}/detail\n    escape_filenames = no\n"
              "    permissions = 0600\n    header = \"%t\"\n    locking = no\n}\n",
}

# Outer and inner server share one policy: EAP first, then the users file.
_AUTHORIZE_AUTHENTICATE = """\
    authorize {
        mschap
        eap {
            ok = return
        }
        files
        pap
    }
    authenticate {
        Auth-Type PAP {
            pap
        }
        Auth-Type MS-CHAP {
            mschap
        }
        eap
    }
"""


def _sites(host: str, port: int, acct_port: int) -> dict[str, str]:
    default = (
        "server default {\n"
        f"    listen {{\n        type = auth\n        ipaddr = {host}\n        port = {port}\n    }}\n"
        f"    listen {{\n        type = acct\n        ipaddr = {host}\n"
        f"        port = {acct_port}\n    }}\n"
        + _AUTHORIZE_AUTHENTICATE
        + "    post-auth {\n    }\n"
        + "    preacct {\n    }\n    accounting {\n        detail\n    }\n}\n"
    )
    inner = "server inner-tunnel {\n" + _AUTHORIZE_AUTHENTICATE + "    post-auth {\n    }\n}\n"
    return {"default": default, "inner-tunnel": inner}


def _home_link_prefix_octets(prefix: ipaddress.IPv6Network) -> str:
    """RFC 5447 MIP6-Home-Link-Prefix as users-file octets: prefix length, then the prefix."""
    return "0x" + (bytes([prefix.prefixlen]) + prefix.network_address.packed).hex()


def _users(password: str) -> str:
    reply = (
        f"\tFramed-IPv6-Address = {FRAMED_IPV6_ADDRESS},\n"
        f"\tFramed-IP-Address = {FRAMED_IP_ADDRESS},\n"
        f"\tMIP6-Home-Link-Prefix = {_home_link_prefix_octets(HOME_LINK_PREFIX)}\n"
    )
    triplets = ", ".join(f"EAP-Sim-Rand{n} := 0x{rand}, EAP-Sim-SRES{n} := 0x{sres}, "
                         f"EAP-Sim-KC{n} := 0x{kc}"
                         for n, (kc, sres, rand) in enumerate(SIM_TRIPLETS, 1))
    return (
        f"{quoted(PASSWORD_USER)} Cleartext-Password := {quoted(password)}\n{reply}\n"
        f"{quoted(TLS_USER)}\n{reply}\n"
        f"{quoted('1' + SIM_IMSI)} EAP-Type := SIM, {triplets}\n{reply}\n"
    )


def write_config(directory: Path, host: str, port: int, secret: str, password: str,
                 acct_port: int) -> tuple[pki.Identity, pki.Identity]:
    """Write a complete FreeRADIUS config into ``directory``; return (ca, client identity)."""
    certs = directory / "certs"
    ca, server, client = eap_server_pki(certs, "aaa-mip6 test RADIUS CA", SERVER_NAME, TLS_USER)
    log_path = directory / "radius.log"
    (directory / "radiusd.conf").write_text(_radiusd_conf(directory, log_path))
    pki.write_private(directory / "clients.conf", _clients_conf(secret).encode())
    mods = directory / "mods-enabled"
    mods.mkdir()
    (mods / "eap").write_text(_eap_module(certs, server, ca))
    for name, text in _OTHER_MODULES.items():
        (mods / name).write_text(text)
    sites = directory / "sites-enabled"
    sites.mkdir()
    for name, text in _sites(host, port, acct_port).items():
        (sites / name).write_text(text)
    users_dir = directory / "mods-config" / "files"
    users_dir.mkdir(parents=True)
    pki.write_private(users_dir / "authorize", _users(password).encode())
    return ca, client


def _sim_file(path: Path) -> Path:
    pki.write_private(path, "".join(f"{SIM_IMSI}:{kc}:{sres}:{rand}\n"
                                    for kc, sres, rand in SIM_TRIPLETS).encode())
    return path


def binary() -> str | None:
    return shutil.which("freeradius") or shutil.which("radiusd")


def wait_ready(process: subprocess.Popen, log_path: Path) -> bool:
    """True once the log says the server is ready; False if it exited first."""
    return wait_for_log_line(process, log_path, READY_LINE, timeout=START_TIMEOUT,
                             what="FreeRADIUS")


@contextmanager
def running_freeradius(directory: Path, host: str = "127.0.0.1") -> Iterator[FreeRadius]:
    """Configure and start FreeRADIUS in ``directory``; stop it on exit.

    A free port is picked and bound by the server; if another process takes it in
    between, the start is retried on a new port.
    """
    executable = binary()
    if executable is None:
        raise FileNotFoundError("freeradius (radiusd) is not installed")
    secret = secrets.token_hex(16)
    password = "pw-" + secrets.token_hex(8)
    for attempt in range(PORT_ATTEMPTS):
        config_dir = directory / f"raddb{attempt}"
        config_dir.mkdir(mode=0o700, parents=True)
        port = free_port(host, socket.SOCK_DGRAM)
        acct_port = free_port(host, socket.SOCK_DGRAM)
        ca, client = write_config(config_dir, host, port, secret, password, acct_port)
        log_path = config_dir / "radius.log"
        command = [executable, "-f", "-d", str(config_dir), "-D", str(DICTIONARY_DIR),
                   "-n", "radiusd", "-l", str(log_path)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            if wait_ready(process, log_path):
                yield FreeRadius(
                    host=host, port=port, acct_port=acct_port, secret=secret.encode(),
                    ca_cert=ca.cert_path,
                    client_cert=client.cert_path, client_key=client.key_path,
                    user=PASSWORD_USER, password=password, tls_user=TLS_USER,
                    anonymous_identity=ANONYMOUS_IDENTITY, pwd_server_id=PWD_SERVER_ID,
                    framed_ipv6_address=FRAMED_IPV6_ADDRESS,
                    framed_ip_address=FRAMED_IP_ADDRESS,
                    home_link_prefix=HOME_LINK_PREFIX, config_dir=config_dir, log_path=log_path,
                    detail_path=config_dir / "detail",
                    sim_triplets=_sim_file(config_dir / "mn-sim-triplets"),
                )
                return
        finally:
            stop_process(process)
        if "bind" not in log_path.read_text(errors="replace").lower():
            break
    raise RuntimeError(f"FreeRADIUS did not start; see {log_path}")
