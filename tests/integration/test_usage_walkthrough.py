"""docs/usage.md "Worked example on loopback", followed literally.

The shell blocks run as one bash session, in a network namespace of the test's own (so step
5's TUN interface and routes never touch the host) and with HOME in a temporary directory
(the example works in ~/mip6-demo). The only change is the one the text offers: the line
of port variables gets free ports.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.processes import free_port
from tests.docs import shell_blocks

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="step 5 (mip6-mn up) and the namespace need root"),
    pytest.mark.skipif(not (shutil.which("ip") and shutil.which("openssl")),
                       reason="needs iproute2 and openssl"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
]

PORTS_LINE = "HAC_PORT=4433 HA_PORT=7872"


@pytest.fixture
def namespace():
    name = f"m6doc{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_worked_example_on_loopback(tmp_path, namespace):
    blocks = shell_blocks("usage.md", "Worked example on loopback")
    assert len(blocks) == 3, "steps 1-4, step 5 (up) and step 6 (stop)"
    script = "".join(blocks)
    assert script.count(PORTS_LINE) == 1
    script = script.replace(PORTS_LINE, f"HAC_PORT={free_port()} HA_PORT={free_port()}")
    environment = {**os.environ, "HOME": str(tmp_path),
                   "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = subprocess.run(["ip", "netns", "exec", namespace, "bash", "-c", script],
                         capture_output=True, text=True, env=environment, timeout=120)
    out = run.stdout
    demo = tmp_path / "mip6-demo"
    logs = "".join(f"\n--- {name}\n{(demo / name).read_text()}"
                   for name in ("hac.log", "ha.log") if (demo / name).exists())
    context = out + run.stderr + logs
    # Step 4: bootstrap prints the SA, register the binding the HA acknowledged.
    assert re.search(r"^mn-id\s+alice@example.org$", out, re.M), context
    assert re.search(r"^mip6-ip6-hoa\s+2001:db8:1:", out, re.M), context
    assert "(hidden; --show-keys prints it)" in out, context
    assert re.search(r"^registered alice@example.org home 2001:db8:1:\S+ care-of ::1 "
                     r"ha \[::1\]:\d+ spi \d+ lifetime \d+ s$", out, re.M), context
    # Step 5: the TUN interface holds the home address and the route.
    assert re.search(r"inet6 2001:db8:1:\S+/64", out), context
    assert "2001:db8:cafe::/64" in out, context
    # Step 6: both servers stopped; the HA counted the ping it could not forward.
    assert "not-forwarding" in (demo / "ha.log").read_text(), context
    leftovers = subprocess.run(["pgrep", "-f", str(demo)], capture_output=True, text=True)
    assert leftovers.stdout == "", context
    # The PSK files are private, as step 2 says.
    for name in ("hac-psk.txt", "alice.psk"):
        assert (demo / name).stat().st_mode & 0o077 == 0
