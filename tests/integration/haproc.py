"""A real ``mip6-ha`` process for the HA's flood and fuzz tests.

:func:`running_ha` starts ``mip6-ha`` on free loopback ports with a TOML ``--config``
written from ``config`` (the status file is written every half second), its output in
``ha.log``; it yields an :class:`HaProcess` and stops it (SIGTERM, then SIGKILL) when
the test ends. :meth:`HaProcess.counters` waits (bounded) for the status file to show
what the test expects.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab.processes import POLL_INTERVAL, stop_process

START_TIMEOUT = 20.0  # seconds for mip6-ha to log that it listens
STATUS_INTERVAL = 0.5  # seconds between status_file writes


@dataclass
class HaProcess:
    process: subprocess.Popen
    ports: list[int]
    log_path: Path
    status_path: Path

    def stop(self) -> int:
        """SIGTERM (SIGKILL if that does not end it); the exit status."""
        return stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def counters(self, ready: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """The status file's counters once ``ready(counters)`` holds (or the last seen)."""
        counters: dict = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                counters = json.loads(self.status_path.read_text())["counters"]
            except (OSError, ValueError, KeyError):
                counters = {}
            if ready(counters):
                break
            time.sleep(POLL_INTERVAL)
        return counters


def _toml(value) -> str:
    return json.dumps(value)  # strings, numbers and lists of strings read the same in TOML


@contextmanager
def running_ha(directory: Path, store_url: str, listen: list[str],
               config: Mapping[str, object] | None = None) -> Iterator[HaProcess]:
    """``mip6-ha`` listening on every ``listen`` address (port 0: a free one)."""
    log_path, status_path = directory / "ha.log", directory / "ha-status.json"
    settings = {"listen": listen, "store": store_url, "status_file": str(status_path),
                "stats_interval": STATUS_INTERVAL, "state": str(directory / "ha.state"),
                **(config or {})}
    config_path = directory / "ha.toml"
    config_path.write_text("".join(f"{key} = {_toml(value)}\n" for key, value in settings.items()))
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "ha.cli", "--config", str(config_path)],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        ports: list[int] = []
        deadline = time.monotonic() + START_TIMEOUT
        while len(ports) < len(listen) and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            ports = [int(port) for port in re.findall(r"listening on \[[^\]]+\]:(\d+)",
                                                       log_path.read_text(errors="replace"))]
            time.sleep(POLL_INTERVAL)
        if len(ports) < len(listen):
            raise RuntimeError(f"mip6-ha did not start; its log:\n{log_path.read_text()}")
        yield HaProcess(process, ports, log_path, status_path)
    finally:
        stop_process(process)
