"""``mip6-aaa-gw`` as a process for the integration tests: Diameter EAP in, RADIUS out.

:func:`gateway_process` runs it with its command line (``python -m
gateway.cli``) in front of a RADIUS server such as the ``freeradius``
fixture, as realm ``GW_REALM``; the caller adds the Diameter side (``--origin-host``,
``--listen``, TLS files). The log stays in the directory for post-mortems.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from lab.processes import stop_process, wait_listening

GW_HOST, GW_REALM = "gw.example.net", "example.net"
START_TIMEOUT = 30.0  # seconds for the gateway to listen


@contextmanager
def gateway_process(directory: Path, server, *options: str):
    """``mip6-aaa-gw`` (``python -m gateway.cli``) relaying to FreeRADIUS ``server``."""
    secret_file = directory / f"radius-secret-{len(list(directory.iterdir()))}"
    secret_file.write_bytes(server.secret)
    os.chmod(secret_file, 0o600)
    log_path = secret_file.with_suffix(".log")  # kept in the temp dir for post-mortems
    command = [sys.executable, "-m", "gateway.cli", "--origin-realm", GW_REALM,
               "--radius-server", f"{server.host}:{server.port}",
               "--radius-secret-file", str(secret_file), "--watchdog", "6",
               "--log-level", "debug", *options]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    if "--listen" in options:  # peers started next should find it listening, not back off
        host, _, port = options[options.index("--listen") + 1].rpartition(":")
        wait_listening(process, host.strip("[]"), int(port), START_TIMEOUT)
    try:
        yield
    finally:
        stop_process(process)
