"""Child processes of the lab, the tests and the benchmarks: free ports, readiness, stopping.

Every server gets a port the kernel just handed out (:func:`free_port`), so parallel
runs do not collide; a start waits until the server listens (:func:`wait_listening`)
or logs that it is ready (:func:`wait_for_log_line`); every child is stopped with
:func:`stop_process`.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

STOP_TIMEOUT = 10.0  # seconds for a SIGTERM before SIGKILL
POLL_INTERVAL = 0.05


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port that is free on ``host`` now (TCP by default; ``socket.SOCK_DGRAM`` for UDP).

    Someone else may take it before the server binds it: callers that start a
    program on it retry on a new port when the bind fails.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit status (at once if it has exited)."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def wait_for_log_line(process: subprocess.Popen, log_path: Path, line: str, *,
                      timeout: float, what: str) -> bool:
    """True once ``log_path`` holds ``line``; False if ``process`` exited first.

    RuntimeError naming ``what`` and the log when neither happens within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.exists() and line in log_path.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"{what} not ready after {timeout} s; see {log_path}")


def wait_listening(process: subprocess.Popen, host: str, port: int, timeout: float) -> bool:
    """True once ``host:port`` accepts TCP connections; False if ``process`` exited first
    or ``timeout`` passed (the process is left as it is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(POLL_INTERVAL)
    return False
