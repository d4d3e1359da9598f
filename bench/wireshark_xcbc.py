"""Cost of the Lua AES-XCBC-MAC-96 ICV check in etc/wireshark/mip6.lua: one JSON line
per figure (docs/performance.md, section Wireshark).

A capture of AES_128_CBC_SHA256 packets (PType 1, MN -> HA), made with the project's
own transform, is read by tshark with the dissector twice per round: with the XCBC
check (keys in the profile's esp_sa) and without it (``mip6tls.sa_keys`` names an
empty file), the ESP dissector decrypting in both. The figure is tshark's CPU time
(user + system, from the kernel's child accounting), best round of each, so other
jobs on a shared machine do not count; ``ratio`` is with / without, and
``lua_ms_per_packet`` the difference per packet.

Usage: .venv/bin/python bench/wireshark_xcbc.py [--packets N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

# This checkout's code, not whichever tree the venv has installed (as the other benches).
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import emit  # noqa: E402
from aaa_mip6.iana import MIPV6TLS_PORT, NEXT_HEADER_IPV6  # noqa: E402
from aaa_mip6.keylog import esp_sa_records  # noqa: E402
from aaa_mip6.sa import SCOPE_ALL, HomeAgent, SecurityAssociation  # noqa: E402
from aaa_mip6.suites import SUITES, new_keys  # noqa: E402
from aaa_mip6.transform import PType, SaEndpoint  # noqa: E402
from lab.loopback import Echo  # noqa: E402
from tests.integration.test_wireshark import _ipv4_udp, _pcap  # noqa: E402

DISSECTOR = ROOT / "etc" / "wireshark" / "mip6.lua"
SIZES = {"data": 1300, "signaling": 40}  # echo payload octets: ~1400- and ~140-octet packets


def _capture(directory: Path, payload_length: int, count: int) -> tuple[Path, Path, int]:
    """(capture, configuration directory with its esp_sa, UDP payload octets) of
    ``count`` packets."""
    suite = SUITES["AES_128_CBC_SHA256"]
    keys = new_keys(suite)
    sa = SecurityAssociation(
        spi=0x77, suite=suite.name, mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey, validity_end=datetime.now(timezone.utc),
        scope=SCOPE_ALL, mn_id="mn@example.org")
    mn = SaEndpoint(sa, "mn")
    echo = Echo(IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:c::2"), 4242, 7,
                bytes(payload_length))
    capture = directory / f"{payload_length}.pcap"
    packets = [mn.protect(PType.ENCRYPTED_IP, echo.packet(), NEXT_HEADER_IPV6)
               for _ in range(count)]
    _pcap(capture, [_ipv4_udp("127.0.0.2", "127.0.0.1", 40000, MIPV6TLS_PORT, packet)
                    for packet in packets])
    config = directory / "ws"
    config.mkdir(exist_ok=True)
    home_agent = HomeAgent(None, IPv4Address("127.0.0.1"), MIPV6TLS_PORT)
    (config / "esp_sa").write_text("".join(f"{line}\n" for line in esp_sa_records(sa, home_agent)))
    return capture, config, len(packets[0])


def _tshark_cpu(capture: Path, config: Path, extra: list[str], count: int) -> float:
    """CPU seconds of one tshark pass; checks every packet got the expected verdict."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    shown = subprocess.run(
        ["tshark", "-r", str(capture), "-X", f"lua_script:{DISSECTOR}",
         "-o", f"mip6tls.port:{MIPV6TLS_PORT}", "-o", "esp.enable_encryption_decode:TRUE", *extra,
         "-T", "fields", "-e", "mip6tls.icv_good"],
        capture_output=True, text=True, check=True, timeout=600,
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(config)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    verdicts = set(shown.stdout.splitlines())
    assert len(shown.stdout.splitlines()) == count and verdicts == ({""} if extra else {"1"}), \
        verdicts
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        no_keys = directory / "empty.keys"
        no_keys.write_text("")
        for name, payload_length in SIZES.items():
            capture, config, octets = _capture(directory, payload_length, options.packets)
            with_check = without = float("inf")
            for _ in range(options.rounds):
                with_check = min(with_check, _tshark_cpu(capture, config, [], options.packets))
                without = min(without, _tshark_cpu(
                    capture, config, ["-o", f"mip6tls.sa_keys:{no_keys}"], options.packets))
            emit("wireshark_xcbc_icv_check", packets=name, count=options.packets,
                 packet_octets=octets,
                 tshark_cpu_s=round(with_check, 2), baseline_cpu_s=round(without, 2),
                 ratio=round(with_check / without, 2),
                 lua_ms_per_packet=round((with_check - without) / options.packets * 1000, 3))


if __name__ == "__main__":
    main()
