"""One way for a program's settings to come from flags and a TOML file.

A program declares its settings as a frozen dataclass whose fields are made with
:func:`setting`: a dotted TOML key (``radius.secret_file``), a parser from the raw value (a
TOML value or a flag's string) to the typed one, a default, and the flag that overrides the
key. :class:`Schema` then reads the file, lays the flags over it and names every setting
the same way in every message: ``key (--flag)``.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import ConfigError

Config = TypeVar("Config")


def setting(key: str, parse: Callable[[Any], Any], default: Any = MISSING,
            flag: str | None = None) -> Any:
    """A dataclass field that is the setting ``key``; ``parse`` raises ValueError with the
    reason a value is wrong."""
    metadata = {"key": key, "parse": parse, "flag": flag}
    return field(metadata=metadata) if default is MISSING else field(default=default,
                                                                      metadata=metadata)


class Schema(Generic[Config]):
    """The settings of one config dataclass."""

    def __init__(self, config_class: type[Config]):
        self.config_class = config_class
        self.settings = {spec.metadata["key"]: spec for spec in fields(config_class)}

    def named(self, key: str) -> str:
        """``key (--flag)``, the way every message names a setting, or the key alone."""
        flag = self.settings[key].metadata["flag"]
        return f"{key} ({flag})" if flag else key

    def _flatten(self, table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for name, value in table.items():
            key = prefix + name
            if isinstance(value, dict) and key not in self.settings:
                flat.update(self._flatten(value, key + "."))
            else:
                flat[key] = value
        return flat

    def read_toml(self, path: Path) -> dict[str, Any]:
        """The settings of a TOML file as dotted keys; ConfigError for a bad file or key."""
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"config file {path}: cannot read ({error.strerror or error})"
                              ) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path}: not valid TOML ({error})") from None
        flat = self._flatten(data)
        for key in flat:
            if key not in self.settings:
                raise ConfigError(f"config file {path}: unknown key {key}")
        return flat

    def overrides(self, arguments: argparse.Namespace) -> dict[str, Any]:
        """The command line's flags as dotted keys (None for a flag not given)."""
        return {key: getattr(arguments, spec.metadata["flag"][2:].replace("-", "_"))
                for key, spec in self.settings.items() if spec.metadata["flag"]}

    def load(self, path: Path | None = None,
             overrides: Mapping[str, Any] | None = None) -> Config:
        """The file's settings with ``overrides`` (dotted key -> flag value) on top, each
        parsed; ConfigError names the first missing or wrong one."""
        raw = self.read_toml(path) if path is not None else {}
        for key, value in (overrides or {}).items():
            if value is not None:
                raw[key] = value
        values = {}
        for key, spec in self.settings.items():
            if key not in raw:
                if spec.default is MISSING:
                    raise ConfigError(f"{self.named(key)} is required")
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw[key])
            except ValueError as error:
                raise ConfigError(f"{self.named(key)}: {error}") from None
        return self.config_class(**values)
