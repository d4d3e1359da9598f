"""One way for a program's settings to come from flags and a TOML file.

A program declares its settings as a frozen dataclass whose fields are made with
:func:`setting`: a dotted TOML key (``radius.secret_file``), a parser from the raw value (a
TOML value or a flag's string) to the typed one, a default, and the flag that overrides the
key. :class:`Schema` then reads the file, lays the flags over it and names every setting
the same way in every message: ``key (--flag)``.

Keys are dotted, their parts lower case with underscores (``limits.max_connections``).
The value parsers every program shares are here too (:func:`string`, :func:`seconds`,
:func:`host_port`, ...): each takes a TOML value or a flag's string and raises ValueError
saying what a good value looks like.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from .addresses import parse_host_port, refuse_unbracketed_port
from .errors import ConfigError

Config = TypeVar("Config")


def setting(key: str, parse: Callable[[Any], Any], default: Any = MISSING,
            flag: str | None = None, *, secret: bool = False) -> Any:
    """A dataclass field that is the setting ``key``; ``parse`` raises ValueError with the
    reason a value is wrong. A ``secret`` value (a password, a URL that may hold one) is
    left out of the config's repr."""
    metadata = {"key": key, "parse": parse, "flag": flag}
    if default is MISSING:
        return field(metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


class Schema(Generic[Config]):
    """The settings of one config dataclass."""

    def __init__(self, config_class: type[Config], renamed: Mapping[str, str] | None = None):
        self.config_class = config_class
        self.settings = {spec.metadata["key"]: spec for spec in fields(config_class)}
        self.renamed = dict(renamed or {})  # an old key, still read -> its key now
        self._renamed_read: list[str] = []  # old keys read and not yet warned about
        self._renamed_warned: set[str] = set()

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
        for key in [key for key in flat if key in self.renamed]:
            new = self.renamed[key]
            if new in flat:
                raise ConfigError(f"config file {path}: {key} and {new} are the same setting "
                                  f"({key} is its old name); keep {new}")
            flat[new] = flat.pop(key)
            if key not in self._renamed_warned and key not in self._renamed_read:
                self._renamed_read.append(key)
        for key in flat:
            if key not in self.settings:
                raise ConfigError(f"config file {path}: unknown key {key}")
        return flat

    def deprecations(self) -> list[str]:
        """A warning for each old key name read since the last call, once per key in
        the process's life (a reload that reads it again does not repeat it)."""
        notes = [f"config key {key} is deprecated: it is now {self.renamed[key]}"
                 for key in self._renamed_read]
        self._renamed_warned.update(self._renamed_read)
        self._renamed_read.clear()
        return notes

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
            if key not in self.settings:
                raise ValueError(f"no setting {key}")  # a bug in the caller, not the user
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


# --- value parsers: (raw TOML or flag value) -> typed value, ValueError on a bad one ----

MAX_SECONDS = 86_400.0  # a day: the longest timer or interval a setting takes
LOG_LEVELS = ("debug", "info", "warning", "error")


def string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def path(value: Any) -> Path:
    return Path(string(value))


def optional_path(value: Any) -> Path | None:
    """A path, or none for ``""`` (to unset in a file what a default or a flag would set)."""
    return None if value == "" else path(value)


def control_socket(value: Any) -> Path | None:
    """A program's control socket (``control.socket``): an absolute path, or none for ``""``."""
    socket = optional_path(value)
    if socket is not None and not socket.is_absolute():
        raise ValueError("must be an absolute path, e.g. /run/mip6/NAME.sock")
    return socket


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def integer(low: int, high: int) -> Callable[[Any], int]:
    """An integer in ``low..high`` (a flag's digits too)."""
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.isdigit():  # from a flag
            value = int(value)
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"must be an integer in {low}..{high}")
        return value

    return parse


def _number(value: Any) -> Any:
    if isinstance(value, str):  # from a flag
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _shown(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def number(low: float, high: float) -> Callable[[Any], float]:
    """A number in ``low..high`` (a flag's text too)."""
    def parse(value: Any) -> float:
        value = _number(value)
        if (type(value) not in (int, float) or not math.isfinite(value)
                or not low <= value <= high):
            raise ValueError(f"must be a number in {_shown(low)}..{_shown(high)}")
        return float(value)

    return parse


def positive(value: Any) -> float:
    """A positive finite number (of seconds, of connections a second, ...)."""
    value = _number(value)
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return float(value)


def seconds(low: float, high: float = MAX_SECONDS) -> Callable[[Any], float]:
    """A number of seconds in ``low..high``."""
    def parse(value: Any) -> float:
        try:
            return number(low, high)(value)
        except ValueError:
            raise ValueError(f"must be a number of seconds in {_shown(low)}..{_shown(high)}"
                             ) from None

    return parse


def choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


log_level = choice(LOG_LEVELS)
log_format = choice(("text", "json"))


def ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = string(value)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def optional_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return None if value == "" else ip(value)


def host_port(value: Any, default_port: int | None = None) -> tuple[str, int]:
    """``v4:port`` or ``[v6]:port`` (an address, not a name); with ``default_port`` also a
    bare address. A bare IPv6 address followed by what reads as a port is refused as
    ambiguous (:func:`~aaa_mip6.addresses.refuse_unbracketed_port`)."""
    text = string(value)
    try:
        refuse_unbracketed_port(text)
        host, port = parse_host_port(text)
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = None
    if host is None or port is None and default_port is None:
        if default_port is None:
            raise ValueError(f"{text!r} is not ADDRESS:PORT ([v6]:PORT for IPv6)")
        raise ValueError(f"{text!r} is not an IP address with an optional port")
    return host, default_port if port is None else port


_DIAMETER_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def diameter_identity(value: Any) -> str:
    """A DiameterIdentity: an FQDN (RFC 6733 §4.3.1), e.g. hac.example.org."""
    text = string(value)
    if len(text) > 253 or not all(_DIAMETER_LABEL.fullmatch(label)
                                   for label in text.split(".")):
        raise ValueError(f"{text!r} is not a DiameterIdentity (an FQDN such as "
                         "hac.example.org)")
    return text


def diameter_peer(value: Any, *, port_required: bool = False) -> tuple[str, str, int | None]:
    """``NAME=ADDRESS[:PORT]``: a Diameter peer's Origin-Host (its certificate must name
    it) and the address it listens on; the port (1..65535) may be left out, None then (the
    IANA port), unless ``port_required``."""
    text = string(value)
    form = "NAME=ADDRESS:PORT" if port_required else "NAME=ADDRESS[:PORT]"
    name, equals, where = text.partition("=")
    if not equals or not name:
        raise ValueError(f"{text!r} is not {form} (NAME: the peer's Origin-Host), e.g. "
                         "relay.example.org=192.0.2.5:5658")
    try:
        refuse_unbracketed_port(where)
        host, port = parse_host_port(where, lowest=1)
        ip(host)
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None
    if port is None and port_required:
        raise ValueError(f"{text!r} is not {form}")
    return diameter_identity(name), host, port
