"""What the loopback lab (:mod:`lab.loopback`) and the namespace lab (:mod:`lab.netns`)
share: their documentation addresses, the HAC's files and settings, the per-MN results and
the summary."""

from __future__ import annotations

import select
import sys
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path

from .servers.hac import HacSetup, make_setup

MN_DOMAIN = "lab.example"
HAC_NAME = "hac.lab.example"
HOA_PREFIX = "2001:db8:1::/64"
HOA_SPACE4 = IPv4Network("192.0.2.0/24")  # the IPv4 home pool is the start of it, sized from N
CORRESPONDENT6 = IPv6Address("2001:db8:c::2")  # a host behind the HA (home network side)
CORRESPONDENT4 = IPv4Address("198.51.100.250")  # outside every home pool


# --------------------------------------------------------------------------- set-up


def home_pool4(count: int) -> IPv4Network:
    """The smallest subnet at the start of 192.0.2.0/24 with a host address for each of
    ``count`` MNs (the HAC never assigns a subnet's network and broadcast addresses)."""
    for prefix in range(30, HOA_SPACE4.prefixlen - 1, -1):
        pool = IPv4Network((HOA_SPACE4.network_address, prefix))
        if pool.num_addresses - 2 >= count:
            return pool
    raise ValueError(f"{count} MNs do not fit in {HOA_SPACE4}")


def make_files(directory: Path, mn_ids: list[str], hac_addresses: tuple[str, ...]) -> HacSetup:
    """The lab's CA, a HAC certificate naming ``hac_addresses``, one PSK per MN, the store."""
    return make_setup(directory, identities=mn_ids, hac_name=HAC_NAME, addresses=hac_addresses,
                      ca_name="mip6-lab CA")


def hac_settings(files: HacSetup, listen: str, home_agent: dict) -> dict:
    """The HAC's settings (dotted keys of hac.config) for the lab; the IPv4 home pool is
    sized for the MNs that have a PSK."""
    return {
        "listen": listen,
        "tls.cert": str(files.server.cert_path),
        "tls.key": str(files.server.key_path),
        "credentials.psk_file": str(files.psk_file),
        "store.url": files.store_url,
        "home_agents.addresses": [home_agent],
        "bootstrap.hoa_prefix": HOA_PREFIX,
        "bootstrap.hoa_pool4": str(home_pool4(len(files.psks))),
        "limits.rate": 1_000_000.0,
        "limits.burst": 1_000_000,
        "log.level": "warning",
    }


# --------------------------------------------------------------------------- results


@dataclass
class MnResult:
    """What one MN achieved; ``error`` is set at the first step that failed."""

    mn_id: str
    spi: int | None = None
    suite: str = ""
    home_address: str = ""
    home_address4: str = ""
    care_of: list[str] = field(default_factory=list)
    registrations: int = 0
    echoes_sent: int = 0
    echoes_back: int = 0
    handover: bool = False
    deregistered: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return (not self.error and self.registrations >= 2 and self.handover
                and self.echoes_sent > 0 and self.echoes_back == self.echoes_sent
                and self.deregistered)


def print_summary(results: list[MnResult], extra: list[str], out=sys.stdout) -> None:
    """One row per MN, then totals."""
    columns = ("MN", "SPI", "suite", "home address", "IPv4 home", "care-of path",
               "BAs", "echo", "result")
    rows = [(r.mn_id, str(r.spi or "-"), r.suite or "-", r.home_address or "-",
             r.home_address4 or "-", " -> ".join(r.care_of) or "-", str(r.registrations),
             f"{r.echoes_back}/{r.echoes_sent}",
             "OK" if r.ok else f"FAILED: {r.error or 'see row'}")
            for r in results]
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    for row in (columns, *rows):
        print("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip(), file=out)
    passed = sum(r.ok for r in results)
    print(f"totals: {passed}/{len(results)} MNs OK, "
          f"{sum(r.echoes_back for r in results)}/{sum(r.echoes_sent for r in results)} "
          f"echo replies, {sum(r.registrations for r in results)} registrations", file=out)
    for line in extra:
        print(line, file=out)


class OutputClosed(Exception):
    """Nobody reads the lab's output any more (``mip6-lab up | head -1``): stop the run."""


def check_output(out) -> None:
    """OutputClosed if ``out`` is a pipe whose reading end is closed.

    The writing end of such a pipe polls as an error at once; a terminal, a file or a
    pipe still read polls without one, so this costs nothing while someone reads.
    """
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not backed by a descriptor (a test's StringIO): nothing to watch
    poller = select.poll()
    poller.register(fd, 0)
    if any(events & select.POLLERR for _, events in poller.poll(0)):
        raise OutputClosed


def directory_note(directory: Path, keep: bool) -> str:
    """How the banner names the lab's directory: whether it outlives the run."""
    return f"{directory} ({'kept' if keep else 'deleted at exit; --keep-dir keeps it'})"
