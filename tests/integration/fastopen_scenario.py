"""Run inside a network namespace by test_fastopen.py: a HAC and three PSK bootstraps of one MN.

Prints one JSON object: ``runs``, for each bootstrap its SPI, by how much the namespace's
TcpExt counters TCPFastOpenPassive (the HAC accepted data in a SYN) and TCPFastOpenActive
(the MN's SYN data was acknowledged) grew, and whether the HAC accepted the MN Init as TLS
early data; ``after_stop``, the step and reason of a fourth bootstrap once the HAC has
stopped (with a cookie cached, the MN's connect returns before any SYN is sent).
Usage: python -m tests.integration.fastopen_scenario DIRECTORY TCP_FAST_OPEN EARLY_DATA(0|1)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aaa_mip6.twisted.tls import ClientTLS
from lab.reactors import run_on_fresh_reactor
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids
from mn import client
from mn.bootstrap import BootstrapFailed, PskBootstrap

COUNTERS = ("TCPFastOpenPassive", "TCPFastOpenActive")


class RecordingTLS(ClientTLS):
    """The MN's TLS, noting for each connection whether its early data was accepted."""

    accepted: list[bool] = []

    def early_data_accepted(self, tls) -> bool:
        accepted = super().early_data_accepted(tls)
        self.accepted.append(accepted)
        return accepted


def tcp_ext() -> dict[str, int]:
    """The TcpExt counters of this network namespace (/proc/net/netstat)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()
             if line.startswith("TcpExt:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def main(directory: str, fast_open: str, early_data: str) -> None:
    setup = make_setup(Path(directory), identities=mn_ids(1))
    (identity, psk), = setup.psks.items()
    config = {**TEST_CONFIG, "tcp_fast_open": int(fast_open),
              "tls": {"early_data": early_data == "1"}}
    runs = []
    hac = HacProcess(setup, config=config).start()
    tls = RecordingTLS(hac.host, setup.ca.cert_path)

    async def scenario(reactor):
        return await client.bootstrap(reactor, tls, hac.port, PskBootstrap(identity, psk),
                                      timeout=10)

    try:
        for _ in range(3):
            before = tcp_ext()
            result = run_on_fresh_reactor(scenario, limit=15)
            after = tcp_ext()
            runs.append({"spi": result.sa.spi, "early_data": tls.accepted[-1],
                         **{name: after[name] - before[name] for name in COUNTERS}})
    finally:
        hac.stop()
    try:
        run_on_fresh_reactor(scenario, limit=15)
        after_stop = None
    except BootstrapFailed as failure:
        after_stop = [failure.step, failure.reason]
    print(json.dumps({"runs": runs, "after_stop": after_stop}))


if __name__ == "__main__":
    main(*sys.argv[1:])
