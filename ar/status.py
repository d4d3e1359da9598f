"""The AR's status file: its counters as one JSON object, replaced atomically (0600) so a
reader never sees half of it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_status(path: Path, status: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(status, handle, sort_keys=True)
    os.replace(temporary, path)
