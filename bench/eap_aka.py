"""EAP-AKA benchmark: bootstraps per second through the HAC against hostapd + mip6-auc, full
authentication and fast re-authentication, each against PSK bootstraps through the same HAC
in the same run; and Milenage vectors per second against the bare AES calls they make
(docs/performance.md, section "EAP-AKA").

One run starts ``mip6-auc`` (one Milenage subscriber per concurrent MN, so each keeps its own
re-authentication identity at hostapd), hostapd as RADIUS EAP server asking that AuC, and a
``mip6-hac`` relaying to hostapd. Figures, one JSON line each:

- ``milenage_rate``: ``Milenage.generate`` (f1..f5* and AUTN for one RAND: what the AuC
  computes per vector) per second,
  and ``aes_floor_ratio`` = that rate / (bare AES-128 block encryptions per second / 6): a
  vector is six block encryptions, so 1.0 would be Python overhead of nothing;
- ``psk_bootstrap_rate``: the baseline, PSK bootstraps through the same HAC;
- ``eap_aka_rate`` for ``full`` (every bootstrap asks the AuC for a vector; no state kept) and
  ``reauth`` (each MN keeps its state file and re-authenticates fast), with the CPU per
  bootstrap of the driver, the HAC, hostapd and the AuC;
- ``eap_aka_ratio``: each rate over the PSK rate.

Usage: .venv/bin/python bench/eap_aka.py [--count N] [--seconds S] [--concurrency C]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import emit  # noqa: E402
from bench.eap_relay import CpuMeter, load, run_psk  # noqa: E402

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

from aaa_mip6 import pki  # noqa: E402
from aaa_mip6.milenage import Milenage  # noqa: E402
from aaa_mip6.twisted.tls import ClientTLS  # noqa: E402
from lab.reactors import run_on_fresh_reactor  # noqa: E402
from lab.servers import auc  # noqa: E402
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup  # noqa: E402
from mn import client  # noqa: E402
from mn.bootstrap import EapBootstrap  # noqa: E402
from mn.eap import EapCredentials  # noqa: E402
from mn.eap.peer import EapPeer  # noqa: E402

BLOCKS_PER_VECTOR = 6  # TEMP, OUT1..OUT5
REALM = "wlan.example.org"


def milenage_figure(seconds: float) -> None:
    subscriber = Milenage(bytes.fromhex(auc.K), bytes.fromhex(auc.OPC))
    rand, sqn, amf = os.urandom(16), bytes(6), b"\x80\x00"
    vectors, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            subscriber.generate(rand, sqn, amf)
        vectors += 1000
    vector_rate = vectors / (time.perf_counter() - started)
    encryptor = Cipher(algorithms.AES(bytes(16)), modes.ECB()).encryptor()
    block, blocks, started = bytes(16), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(1000):
            encryptor.update(block)
        blocks += 1000
    block_rate = blocks / (time.perf_counter() - started)
    emit("milenage_rate", vectors_per_second=round(vector_rate),
         aes_blocks_per_second=round(block_rate),
         aes_floor_ratio=round(vector_rate / (block_rate / BLOCKS_PER_VECTOR), 3))


def imsi(index: int) -> str:
    return f"23201{index:010d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="bootstraps per figure")
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound per figure")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    milenage_figure(min(args.seconds, 2.0))
    imsis = tuple(imsi(index) for index in range(args.concurrency))
    with tempfile.TemporaryDirectory(prefix="eap-aka-bench-") as temp:
        directory = Path(temp)
        with auc.running_sim_aka_server(directory, imsis, log_level="warning") as server:
            secret_file = directory / "radius.secret"
            pki.write_private(secret_file, server.hostapd.secret + b"\n")
            config = {**TEST_CONFIG, "limits": {**TEST_CONFIG["limits"],
                                                "max_connections": 10_000}}
            with HacProcess(make_setup(directory / "hac"), config=config, extra_args=[
                    "--radius-server", f"{server.hostapd.host}:{server.hostapd.port}",
                    "--radius-secret-file", str(secret_file)]) as hac:
                meter = CpuMeter(hac, servers=("hostapd", "mip6-auc"))
                psk = run_psk(args, hac, meter)
                for mode in ("full", "reauth"):
                    figure = meter.measure(lambda: run_on_fresh_reactor(
                        aka_bootstraps(args, hac, directory, imsis, mode),
                        limit=args.seconds * 3 + 30))
                    emit("eap_aka_rate", mode=mode, concurrency=args.concurrency, **figure)
                    emit("eap_aka_ratio", mode=mode, baseline="psk_bootstrap_rate",
                         ratio=round(figure["per_second"] / psk["per_second"], 3))
    return 0


def aka_bootstraps(args, hac: HacProcess, directory: Path, imsis: tuple[str, ...], mode: str):
    """A scenario: ``--concurrency`` MNs, each its own subscriber, bootstrapping with EAP-AKA.
    ``reauth``: each MN first authenticates fully once (not counted), then re-authenticates."""
    usims = [auc.usim_file(directory / f"{number}.usim", imsi=number) for number in imsis]
    states = {usim: (directory / f"{usim.name}.state" if mode == "reauth" else None)
              for usim in usims}
    free = list(usims)

    async def scenario(reactor):
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)

        async def bootstrap(usim: Path) -> None:
            credentials = EapCredentials("unused", usim=usim, eap_state=states[usim],
                                         realm=REALM)
            peer = EapPeer("aka", credentials)
            machine = EapBootstrap(peer.method.permanent, peer)
            await client.bootstrap(reactor, tls, hac.port, machine, timeout=30)
            if mode == "reauth" and not peer.method.reauthenticating and warmed[usim]:
                raise RuntimeError(f"{usim.name}: full authentication instead of fast")

        warmed = dict.fromkeys(usims, False)
        if mode == "reauth":
            for usim in usims:
                await bootstrap(usim)
                warmed[usim] = True

        async def one() -> None:
            usim = free.pop()
            try:
                await bootstrap(usim)
            finally:
                free.append(usim)

        return await load(reactor, one, args.count, args.seconds, args.concurrency)

    return scenario


if __name__ == "__main__":
    sys.exit(main())
