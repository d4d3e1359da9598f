"""A HAC's files and a real ``mip6-hac`` process, for the lab, the integration tests and bench/.

:func:`make_setup` writes what a HAC needs into a directory: a CA, the HAC's
certificate (subjectAltName ``hac.example`` and 127.0.0.1 / ::1 unless told otherwise),
a PSK file for some MNs, and a SQLite store URL (or the PostgreSQL URL you give); the
loopback and namespace labs (:mod:`lab.loopback`, :mod:`lab.netns`) use it too, and
:func:`toml_text` writes settings as a ``--config`` file.
:class:`HacProcess` starts ``mip6-hac`` on a free loopback port with that setup,
waits until it accepts connections, and stops it (SIGTERM) or kills it
(SIGKILL); it can be started again on the same setup and store. Settings beyond the
quick-start flags go into a TOML ``--config`` file written from ``config``; by
default the per-source rate limit is lifted (every test MN comes from 127.0.0.1)
and only warnings are logged. ``ha`` is the ``--ha`` flag: 2001:db8::1 by default
(nothing listens there: enough for bootstrap tests), a real HA's ``[v6]:port`` or
``v4:port``, or None to take the home agents from ``config``. Its output goes
to ``hac.log`` in the setup directory (:meth:`HacProcess.log_tail` for failure
messages). Use it as a context manager so that no process outlives its caller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aaa_mip6 import pki
from aaa_mip6.addresses import format_host_port

from ..processes import free_port, stop_process, wait_listening

HAC_NAME = "hac.example"
HA_ADDRESS = "2001:db8::1"
HOA_PREFIX = "2001:db8:1::/64"
START_TIMEOUT = 20.0  # seconds for the HAC to accept connections
START_ATTEMPTS = 3  # a free port may be taken by someone else before the HAC binds it
_SCRIPT = Path(sys.executable).with_name("mip6-hac")
TEST_CONFIG = {"limits": {"rate": 1_000_000.0, "burst": 1_000_000}, "log": {"level": "warning"}}


@dataclass(frozen=True)
class HacSetup:
    """Files and identities one HAC runs with; ``psks`` maps each MN's NAI to its key."""

    directory: Path
    ca: pki.Identity
    server: pki.Identity
    psk_file: Path
    psks: Mapping[str, bytes] = field(repr=False)
    store_url: str


def mn_ids(count: int) -> list[str]:
    return [f"mn{number}@example.org" for number in range(count)]


def make_setup(directory: Path, *, identities: Iterable[str] = tuple(mn_ids(4)),
               store_url: str | None = None, key_type: str = "ec", hac_name: str = HAC_NAME,
               addresses: Iterable[str] = ("127.0.0.1", "::1"),
               ca_name: str = "aaa-mip6 CA") -> HacSetup:
    """Create the CA, the HAC certificate (``hac_name`` and ``addresses``), one random PSK
    per identity and the store URL."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca(directory, common_name=ca_name, key_type=key_type)
    server = pki.make_cert(directory, ca, "hac", dns_names=(hac_name,),
                           ip_addresses=tuple(addresses), key_type=key_type)
    psks = {identity: os.urandom(16) for identity in identities}
    psk_file = directory / "psk.txt"
    pki.write_private(psk_file, "".join(f"{nai} {key.hex()}\n"
                                        for nai, key in psks.items()).encode())
    return HacSetup(directory, ca, server, psk_file, psks,
                    store_url or f"sqlite:///{directory / 'sa.db'}")


def toml_value(value) -> str:
    """A TOML value for strings, numbers, booleans, lists and inline tables."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value)  # JSON spells strings, numbers and booleans as TOML does


def toml_text(settings: Mapping[str, object]) -> str:
    """TOML for settings given as tables (``{"limits": {"rate": 5.0}}``), as dotted keys
    (``{"limits.rate": 5.0}``) or both, as the HAC's ``--config`` file reads them."""
    tables: dict[str, list[str]] = {}
    for dotted, value in _dotted(settings):
        table, _, key = dotted.rpartition(".")
        tables.setdefault(table, []).append(f"{key} = {toml_value(value)}")
    top = tables.pop("", [])
    return "".join(line + "\n" for line in top) + "".join(
        f"[{table}]\n" + "".join(line + "\n" for line in lines) for table, lines in tables.items())


def _dotted(settings: Mapping[str, object], prefix: str = ""):
    """(dotted key, value) for every value that is not a table."""
    for key, value in settings.items():
        if isinstance(value, Mapping):
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


class HacProcess:
    """One ``mip6-hac`` subprocess on ``host`` (127.0.0.1 by default) and a free port."""

    def __init__(self, setup: HacSetup, *, host: str = "127.0.0.1",
                 config: Mapping[str, Mapping[str, object]] = TEST_CONFIG,
                 ha: str | None = HA_ADDRESS, extra_args: Iterable[str] = ()):
        self.setup = setup
        self.host = host
        self.ha_args = ("--ha", ha) if ha is not None else ()
        self.config_path = setup.directory / "hac.toml"
        self.config_path.write_text(toml_text(config))
        self.extra_args = tuple(extra_args)
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = setup.directory / "hac.log"

    @property
    def address(self) -> str:
        """``HOST:PORT`` as ``mip6-mn --hac`` takes it."""
        return format_host_port(self.host, self.port)

    def command(self, port: int) -> list[str]:
        setup = self.setup
        return [str(_SCRIPT), "--listen", format_host_port(self.host, port),
                "--cert", str(setup.server.cert_path), "--key", str(setup.server.key_path),
                "--psk-file", str(setup.psk_file), "--store", setup.store_url,
                *self.ha_args, "--hoa-prefix", HOA_PREFIX,
                "--config", str(self.config_path), *self.extra_args]

    def start(self) -> HacProcess:
        """Start the HAC and return once it accepts TCP connections; RuntimeError if it cannot."""
        if self.process is not None:
            raise RuntimeError("this HAC is already running")
        for _ in range(START_ATTEMPTS):
            port = free_port(self.host)
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(self.command(port), stdout=log,
                                                stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
            if wait_listening(self.process, self.host, port, START_TIMEOUT):
                self.port = port
                return self
            self.kill()
        raise RuntimeError(f"mip6-hac did not start; its log ends:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL; the exit status (None if not running)."""
        if self.process is None:
            return None
        status = stop_process(self.process)
        self.process = None
        return status

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> HacProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

