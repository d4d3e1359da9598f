"""``mip6-ar`` as a program in a network namespace of its own (root): it advertises its key
on the link, reports its status, stops cleanly, and without a capability it needs says
which in one line."""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aaa_mip6.iana import NEXT_HEADER_ICMPV6
from aaa_mip6.lke import crypto, nd
from aaa_mip6.twisted import rawip
from lab.netns import in_namespace

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and raw sockets need root"),
    pytest.mark.skipif(not shutil.which("ip") or not shutil.which("setpriv"),
                       reason="needs iproute2 (ip) and util-linux (setpriv)"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
]

AR_SCRIPT = Path(sys.executable).with_name("mip6-ar")
AR_ADDRESS = "2001:db8:a1::1"


def ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True)


@pytest.fixture
def link():
    """Two namespaces joined by a link: the router's side ``ar0`` and a host's ``h0``."""
    tag = f"arp{secrets.token_hex(3)}"
    router, host = f"{tag}-ar", f"{tag}-h"
    for namespace in (router, host):
        ip("netns", "add", namespace)
        subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
                        "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                        "net.ipv6.conf.all.forwarding=1"], check=True)
    try:
        ip("-n", router, "link", "add", "ar0", "type", "veth", "peer", "name", "h0",
           "netns", host)
        ip("-n", router, "address", "add", f"{AR_ADDRESS}/64", "dev", "ar0", "nodad")
        ip("-n", router, "link", "set", "ar0", "up")
        ip("-n", host, "link", "set", "h0", "up")
        yield router, host
    finally:
        for namespace in (router, host):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def ar_command(tmp_path: Path, *extra: str) -> list[str]:
    return [str(AR_SCRIPT), "--interface", "ar0", "--address", AR_ADDRESS,
            "--key", str(tmp_path / "ar.key"), "--generate-key",
            "--state", str(tmp_path / "lbsas"), "--ra-interval", "0.2",
            "--status-file", str(tmp_path / "status.json"), *extra]


def next_advertisement(timeout: float = 5.0) -> nd.RouterAdvertisement:
    listener = rawip.open_raw(NEXT_HEADER_ICMPV6, "h0", icmp_types=(nd.ROUTER_ADVERTISEMENT,))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            select.select([listener], [], [], 0.2)
            received = rawip.receive(listener)
            if received is not None:
                assert received.hop_limit == 255 and received.source.is_link_local
                return nd.decode_nd(received.data, received.source,
                                    received.destination).message
        raise AssertionError("no Router Advertisement")
    finally:
        listener.close()


def test_it_advertises_its_key_reports_and_stops_cleanly(link, tmp_path):
    router, host = link
    process = subprocess.Popen(["ip", "netns", "exec", router, *ar_command(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        advertisement = in_namespace(host, next_advertisement)
        assert advertisement.home_agent
        capability = advertisement.option(nd.LkeCapability)
        key = crypto.decode_private_key((tmp_path / "ar.key").read_bytes())
        assert capability.public_key == crypto.encode_public_key(key)
        assert capability.max_lifetime == 7200
        assert oct((tmp_path / "ar.key").stat().st_mode & 0o777) == "0o600"
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["interface"] == "ar0" and status["lbsas"] == {"valid": 0}
        process.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "status: {" in output and "Traceback" not in output
    links = subprocess.run(["ip", "-n", router, "link", "show"], capture_output=True,
                           text=True).stdout
    assert "mip6ar0" not in links  # the TUN device went with the program


@pytest.mark.parametrize("capability, named", [("-net_raw", "CAP_NET_RAW"),
                                               ("-net_admin", "CAP_NET_ADMIN")])
def test_a_missing_capability_is_one_line_naming_it(link, tmp_path, capability, named):
    router, _ = link
    done = subprocess.run(["ip", "netns", "exec", router, "setpriv", "--bounding-set",
                           capability, "--inh-caps", "-all", *ar_command(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mip6-ar: ") and named in lines[0]


def test_an_address_the_interface_lacks_is_named(link, tmp_path):
    router, _ = link
    command = ar_command(tmp_path)
    command[command.index(AR_ADDRESS)] = "2001:db8:a1::99"
    done = subprocess.run(["ip", "netns", "exec", router, *command], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert "ar.address (--address) 2001:db8:a1::99: not an address of ar0" in done.stderr


def test_mip6_mn_lke_without_cap_net_raw_is_one_line_naming_it(tmp_path):
    from lab.common import make_files

    files = make_files(tmp_path, ["mn@lab.example"], ("127.0.0.1",))
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-all",
         str(AR_SCRIPT.with_name("mip6-mn")), "register", "--lke", "--hac", "127.0.0.1:9",
         "--ca", str(files.ca.cert_path), "--id", "mn@lab.example",
         "--psk", files.psks["mn@lab.example"].hex()],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "mip6-mn: a raw IPv6 socket (protocol 58) needs CAP_NET_RAW: run as root or grant "
        "the capability"]
