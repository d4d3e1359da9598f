"""strongSwan for benchmarks (bench/vs_strongswan.py, bench/round_trips.py): the Debian
packages a bench needs, a charon configuration of its own (ports, vici socket, log file,
eap-radius), a charon started with it in a private /run, and vici connection dicts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

CHARON = Path("/usr/lib/ipsec/charon")
PLUGINS = Path("/usr/lib/ipsec/plugins")
CHARON_PLUGINS = ("random nonce openssl pem pkcs1 pkcs8 x509 pubkey hmac kdf vici "
                  "socket-default kernel-netlink eap-identity eap-md5 eap-radius")
PROPOSAL = "aes256gcm16-prfsha384-x25519"  # TLS_AES_256_GCM_SHA384 with X25519
START_TIMEOUT = 20.0


def missing_packages(*also: tuple[str, object]) -> str | None:
    """One line naming the Debian packages this machine lacks -- strongswan-charon,
    libcharon-extra-plugins (eap-radius), then each of ``also`` ((package, present)
    pairs) not present -- or None."""
    wanted = [package for package, present in (
        ("strongswan-charon", CHARON.exists()),
        ("libcharon-extra-plugins", (PLUGINS / "libstrongswan-eap-radius.so").exists()),
        *also) if not present]
    if wanted:
        return "missing Debian packages: sudo apt-get install " + " ".join(wanted)
    return None


def strongswan_conf(directory: Path, port: int, natt_port: int, radius=None, *,
                    plugins: str = CHARON_PLUGINS, settings: str = "",
                    log_time_format: str | None = None) -> str:
    """A charon configuration of its own: ports, vici socket, a log file at level 0,
    eap-radius if given; ``settings``: more lines for the charon section."""
    radius_section = "" if radius is None else f"""
    eap-radius {{
      servers {{
        bench {{
          address = {radius.host}
          auth_port = {radius.port}
          secret = {radius.secret.decode()}
        }}
      }}
    }}"""
    time_format = "" if log_time_format is None else f"\n      time_format = {log_time_format}"
    return f"""charon {{
  port = {port}
  port_nat_t = {natt_port}
  install_routes = no
  install_virtual_ip = no
  retransmit_timeout = 2.0
{settings}  load = {plugins}
  filelog {{
    bench {{
      path = {directory / 'charon.log'}
      default = 0{time_format}
    }}
  }}
  syslog {{
    daemon {{
      default = -1
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{directory / 'vici.sock'}
    }}{radius_section}
  }}
}}
"""


class Charon:
    """One charon on ``address`` with a directory, two UDP ports and a vici socket of its
    own. A subclass may change its configuration (``config``), try again on other ports
    (``attempts``) and say whether it took its ports (``bound``)."""

    attempts = 1

    def __init__(self, directory: Path, address: str, radius=None):
        self.directory = directory
        self.address = address
        self.radius = radius
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def vici_path(self) -> Path:
        return self.directory / "vici.sock"

    def config(self, port: int, natt_port: int) -> str:
        return strongswan_conf(self.directory, port, natt_port, self.radius)

    def start(self) -> Charon:
        from lab.processes import free_port
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(self.attempts):  # another program may take a free port first
            self.port = free_port(self.address, socket.SOCK_DGRAM)
            conf = self.directory / "strongswan.conf"
            conf.write_text(self.config(self.port, free_port(self.address, socket.SOCK_DGRAM)))
            # charon's pid file is fixed (/run/charon.pid): a private /run per charon.
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       'mount -t tmpfs bench-run /run && exec "$0"', str(CHARON)]
            with open(self.directory / "stdout.log", "ab") as out:
                self.process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env={**os.environ, "STRONGSWAN_CONF": str(conf)})
            if self._wait_vici():
                return self
            self.stop()
        raise RuntimeError(f"charon did not start; see {self.directory}/charon.log")

    def _wait_vici(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                self.session().close()
            except OSError:
                time.sleep(0.1)
                continue
            return self.bound()
        return False

    def bound(self) -> bool:
        """Whether the charon, its vici socket answering, is up as it should be."""
        return True

    def session(self) -> Vici:
        return Vici(self.vici_path)

    def stop(self) -> None:
        from lab.processes import stop_process
        if self.process is not None:
            stop_process(self.process)
            self.process = None


class Vici:
    """A vici session on a unix socket, closed with the socket."""

    def __init__(self, path: Path):
        import vici
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.socket.connect(str(path))
        except OSError:
            self.socket.close()
            raise
        self.session = vici.Session(self.socket)

    def close(self) -> None:
        self.socket.close()


def conn(local_address: str, remote_address: str, local: dict, remote: dict,
         remote_port: int | None = None) -> dict:
    """A vici connection: IKEv2 with PROPOSAL, no MOBIKE, no UDP encapsulation, no
    fragmentation, between the two addresses."""
    result = {"version": "2", "local_addrs": [local_address], "remote_addrs": [remote_address],
              "proposals": [PROPOSAL], "unique": "never", "mobike": "no", "encap": "no",
              "fragmentation": "no", "local": local, "remote": remote}
    if remote_port is not None:
        result["remote_port"] = str(remote_port)
    return result
