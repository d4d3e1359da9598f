"""``mip6-auc`` and hostapd together: an EAP-SIM/AKA/AKA' server whose vectors come from the
project's AuC (hostapd.conf ``eap_sim_db=unix:PATH``), for the integration tests and
bench/eap_aka.py.

One Milenage subscriber (TS 35.208 test set 20's K and OPc) and one SIM with fixed triplets;
:func:`usim_file` writes the MN's side of either.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from aaa_mip6 import pki

from ..processes import stop_process
from . import hostapd as hostapd_support

AUC = Path(sys.executable).with_name("mip6-auc")
IMSI = "232010000000000"
K, OPC = "90dca4eda45b53cf0f12d7c9c3bc6a89", "cb9cccc4b9258e6dca4760379fb82581"
AMF, SQN = "8000", "000000000020"
TRIPLET_IMSI = "232010000000001"
TRIPLETS = (("a0a1a2a3a4a5a6a7", "d1d2d3d4", "101112131415161718191a1b1c1d1e1f"),
            ("b0b1b2b3b4b5b6b7", "e1e2e3e4", "202122232425262728292a2b2c2d2e2f"),
            ("c0c1c2c3c4c5c6c7", "f1f2f3f4", "303132333435363738393a3b3c3d3e3f"))
START_TIMEOUT = 15.0


@dataclass(frozen=True)
class SimAkaServer:
    hostapd: hostapd_support.Hostapd
    auc_socket: Path
    auc_log: Path
    directory: Path


def usim_file(path: Path, *, sqn: str = SQN, k: str = K, imsi: str = IMSI) -> Path:
    """The MN's USIM: one hlr_auc_gw Milenage line."""
    pki.write_private(path, f"{imsi} {k} {OPC} {AMF} {sqn}\n".encode())
    return path


def triplets_file(path: Path, imsi: str = TRIPLET_IMSI, triplets=TRIPLETS) -> Path:
    pki.write_private(path, "".join(f"{imsi}:{kc}:{sres}:{rand}\n"
                                    for kc, sres, rand in triplets).encode())
    return path


@contextmanager
def running_auc(directory: Path, imsis: tuple[str, ...] = (IMSI,), log_level: str = "debug"
                ) -> Iterator[tuple[Path, Path, subprocess.Popen]]:
    """``mip6-auc`` on a socket in ``directory``: (socket, log, process). Every IMSI in
    ``imsis`` is a Milenage subscriber with the same K and OPc."""
    milenage = directory / "auc-milenage.db"
    pki.write_private(milenage, "# IMSI Ki OPc AMF SQN\n".encode() + "".join(
        f"{imsi} {K} {OPC} {AMF} {SQN}\n" for imsi in imsis).encode())
    triplets = triplets_file(directory / "auc-triplets.db")
    socket_path, log_path = directory / "auc.sock", directory / "auc.log"
    socket_path.unlink(missing_ok=True)  # left by a killed AuC: wait for the new one's
    with open(log_path, "a") as log:
        process = subprocess.Popen([str(AUC), "--socket", str(socket_path), "--milenage",
                                    str(milenage), "--triplets", str(triplets),
                                    "--log-level", log_level],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not socket_path.exists() and process.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        if not socket_path.exists():
            raise RuntimeError(f"mip6-auc did not start:\n{log_path.read_text()}")
        yield socket_path, log_path, process
    finally:
        stop_process(process)


@contextmanager
def running_sim_aka_server(directory: Path, imsis: tuple[str, ...] = (IMSI,),
                           log_level: str = "debug") -> Iterator[SimAkaServer]:
    directory.chmod(0o700)
    with running_auc(directory, imsis, log_level) as (socket_path, log_path, _), \
            hostapd_support.running_hostapd(
                directory, extra=hostapd_support.sim_aka_config(socket_path)) as server:
        yield SimAkaServer(server, socket_path, log_path, directory)
