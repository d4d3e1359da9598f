"""``mip6-auc``'s settings: every flag and its TOML key (docs/configuration.md, section
mip6-auc)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aaa_mip6 import settings as parsers
from aaa_mip6.settings import Schema, setting


@dataclass(frozen=True)
class AucConfig:
    """Where the AuC serves, what it reads and where it keeps its SQNs."""

    socket: Path = setting("auc.socket", parsers.path, flag="--socket")
    milenage: Path | None = setting("auc.milenage", parsers.path, None, flag="--milenage")
    triplets: Path | None = setting("auc.triplets", parsers.path, None, flag="--triplets")
    state: Path | None = setting("auc.state", parsers.path, None, flag="--state")
    log_level: str = setting("log.level", parsers.log_level, "info", flag="--log-level")
    log_format: str = setting("log.format", parsers.log_format, "text", flag="--log-format")


SCHEMA = Schema(AucConfig)
