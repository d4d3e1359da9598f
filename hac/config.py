"""The HAC's configuration: a TOML file (``--config``) and command-line flags over it.

Every setting has a dotted key (``tls.cert`` is key ``cert`` of table ``[tls]``),
one parser that validates it and a default (or none: required). Flags override the
file. Any problem -- an unknown key, a wrong type, a value out of range, a missing
required setting -- raises :class:`ConfigError` naming the key (and the flag that
sets it), so the operator knows exactly what to fix. docs/configuration.md ("HAC")
documents each key; etc/hac.toml is a commented sample.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from aaa_mip6.addresses import format_host_port, parse_host_port, refuse_unbracketed_port
from aaa_mip6.container import MAX_CONTENT
from aaa_mip6.diameter.peer import DEFAULT_TW
from aaa_mip6.diameter.router import DEFAULT_REQUEST_TIMEOUT
from aaa_mip6.errors import ConfigError
from aaa_mip6.iana import MIPV6TLS_PORT
from aaa_mip6.radius.servers import RadiusServer, RetryPolicy
from aaa_mip6.sa import SCOPE_ALL, HomeAgent
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod

from .provisioning import DEFAULT_LIFETIME, BootstrapPolicy, HaSelection, SaPolicy

LOG_LEVELS = ("debug", "info", "warning", "error")
AAA_BACKENDS = ("radius", "diameter")
MIN_WATCHDOG = 6.0  # RFC 3539's smallest Tw
_RETRY = RetryPolicy()  # the RADIUS defaults


# --- value parsers: (raw TOML or flag value) -> typed value, ValueError on a bad one ----


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def _path(value: Any) -> Path:
    return Path(_string(value))


def _optional_path(value: Any) -> Path | None:
    return None if value == "" else _path(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.isdigit():  # from a flag
            value = int(value)
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"must be an integer in {low}..{high}")
        return value

    return parse


def _positive(value: Any) -> float:
    if isinstance(value, str):  # from a flag
        try:
            value = float(value)
        except ValueError:
            raise ValueError("must be a positive number") from None
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return float(value)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def _listen(value: Any) -> ListenAddress:
    host, port = parse_host_port(_string(value))
    if port is None:
        raise ValueError("must be HOST:PORT ([v6]:PORT for IPv6; port 0 picks a free port)")
    return ListenAddress(str(_ip(host)), port)


def _home_agent(value: Any, default_port: int) -> HomeAgent:
    """An HA: ``"[v6]:port"``, ``"v4:port"``, a bare address, or {ip6, ip4, port}."""
    if isinstance(value, str):
        refuse_unbracketed_port(value)
        host, port = parse_host_port(value, lowest=1)
        address = _ip(host)
        port = default_port if port is None else port
        if isinstance(address, ipaddress.IPv6Address):
            return HomeAgent(address, None, port)
        return HomeAgent(None, address, port)
    if isinstance(value, dict):
        unknown = set(value) - {"ip6", "ip4", "port"}
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r} (ip6, ip4, port)")
        ip6 = value.get("ip6")
        ip4 = value.get("ip4")
        try:
            agent = HomeAgent(None if ip6 is None else ipaddress.IPv6Address(ip6),
                              None if ip4 is None else ipaddress.IPv4Address(ip4),
                              _integer(1, 65_535)(value.get("port", default_port)))
        except ipaddress.AddressValueError as error:
            raise ValueError(str(error)) from None
        if agent.address6 is None and agent.address4 is None:
            raise ValueError("a home agent needs ip6 or ip4")
        return agent
    raise ValueError("each entry is an address string or a table {ip6, ip4, port}")


def _list(value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list")
    return value


def _home_agents(value: Any) -> tuple:
    """Parsed later with the default port (see :meth:`HacConfig.bootstrap_policy`)."""
    entries = _list(value)
    for index, entry in enumerate(entries):
        try:
            _home_agent(entry, MIPV6TLS_PORT)
        except ValueError as error:
            raise ValueError(f"entry {index + 1}: {error}") from None
    return tuple(entries)


def _network(version: int, example: str, other_key: str) -> Callable[[Any], Any]:
    """An IPv``version`` prefix; the other family's prefix is pointed to ``other_key``."""
    def parse(value: Any) -> Any:
        if value == "":
            return None
        text = _string(value)
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv{version} prefix (e.g. {example})") from None
        if network.version != version:
            raise ValueError(f"{text} is an IPv{network.version} prefix; "
                             f"IPv{network.version} home addresses come from {other_key}")
        try:
            ipaddress.ip_network(text)
        except ValueError:
            raise ValueError(f"{text} has host bits set; the prefix is {network}") from None
        if network.num_addresses < 4:
            raise ValueError("the prefix is too long to hold home addresses")
        return network

    return parse


def _address(kind: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if value == "":
            return None
        try:
            return kind(_string(value))
        except ValueError:
            raise ValueError(f"not an {kind.__name__}") from None

    return parse


def _suites(value: Any) -> frozenset:
    names = _list(value)
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite {unknown[0]!r}; known: {', '.join(SUITES)}")
    return frozenset(SUITES[name] for name in names)


def _scopes(value: Any) -> frozenset:
    items = _list(value)
    if any(type(item) is not int or item not in (0, 1) for item in items):
        raise ValueError("each scope is 0 (signaling only) or 1 (signaling and data)")
    return frozenset(items)


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _optional_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return None if value == "" else _ip(_string(value))


def _radius_servers(value: Any) -> tuple[str, ...]:
    """``HOST[:PORT]`` or ``[v6]:PORT`` entries (port 1812 if none); the secret comes apart."""
    entries = [value] if isinstance(value, str) else _list(value)
    for entry in entries:
        try:
            refuse_unbracketed_port(_string(entry))
            RadiusServer.parse(entry, b"checked-later")
        except ConfigError as error:
            raise ValueError(str(error)) from None
    return tuple(entries)


def _methods(value: Any) -> tuple[AuthMethod, ...]:
    """A list, or (from ``--auth-methods``) comma-separated text: ``psk,eap``."""
    names = [name.strip() for name in value.split(",")] if isinstance(value, str) else _list(value)
    if any(name not in tuple(AuthMethod) for name in names) or len(set(names)) != len(names):
        raise ValueError("each entry is psk or eap, once")
    return tuple(AuthMethod(name) for name in names)


def _store_url(value: Any) -> str:
    url = _string(value)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must start with sqlite:/// or postgresql://")
    return url


_DIAMETER_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _diameter_identity(value: Any) -> str:
    """A DiameterIdentity: an FQDN (RFC 6733 §4.3.1), e.g. hac.example.org."""
    text = _string(value)
    if len(text) > 253 or not all(_DIAMETER_LABEL.fullmatch(label)
                                   for label in text.split(".")):
        raise ValueError(f"{text!r} is not a DiameterIdentity (an FQDN such as "
                         "hac.example.org)")
    return text


@dataclass(frozen=True, slots=True)
class DiameterPeer:
    """A Diameter peer the HAC connects to over TLS; ``port`` None means 5658."""

    name: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int | None


def _diameter_peer(text: str) -> DiameterPeer:
    name, equals, where = _string(text).partition("=")
    if not equals:
        raise ValueError(f"{text!r}: each peer is NAME=ADDRESS[:PORT], e.g. "
                         "relay.example.org=192.0.2.5:5658")
    try:
        refuse_unbracketed_port(where)
        host, port = parse_host_port(where, lowest=1)
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None
    return DiameterPeer(_diameter_identity(name), _ip(host), port)


def _diameter_peers(value: Any) -> tuple[DiameterPeer, ...]:
    """One ``NAME=ADDRESS[:PORT]`` string or a list of them, in order of preference."""
    entries = [value] if isinstance(value, str) else _list(value)
    peers = tuple(_diameter_peer(entry) for entry in entries)
    if len({peer.name for peer in peers}) != len(peers):
        raise ValueError("a peer name may be listed once")
    return peers


def _optional_listen(value: Any) -> ListenAddress | None:
    return None if value == "" else _listen(value)


def _watchdog(value: Any) -> float:
    seconds = _positive(value)
    if seconds < MIN_WATCHDOG:
        raise ValueError(f"must be at least {MIN_WATCHDOG:g} seconds (RFC 3539)")
    return seconds


def _sa_delivery(table: Any):
    """The ``[sa_delivery]`` table (hac.sa_delivery; imported late: it needs Twisted)."""
    from .sa_delivery import parse_settings
    return parse_settings(table)


_REQUIRED = object()


def _setting(key: str, parse: Callable[[Any], Any], default: Any = _REQUIRED,
             flag: str | None = None, *, secret: bool = False) -> Any:
    metadata = {"key": key, "parse": parse, "flag": flag}
    if default is _REQUIRED:
        return field(metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class HacConfig:
    """Every HAC setting, validated. Build it with :func:`load_config`."""

    listen: ListenAddress = _setting("listen", _listen, flag="--listen")
    cert: Path = _setting("tls.cert", _path, flag="--cert")
    key: Path = _setting("tls.key", _path, flag="--key")
    store_url: str = _setting("store.url", _store_url, flag="--store",
                              secret=True)  # a PostgreSQL URL may hold a password
    home_agents: tuple = _setting("home_agents.addresses", _home_agents, flag="--ha")
    hoa_prefix: ipaddress.IPv6Network | None = _setting(
        "bootstrap.hoa_prefix",
        _network(6, "2001:db8:1::/64", "bootstrap.hoa_pool4 (--hoa-pool4)"), None,
        flag="--hoa-prefix")
    psk_file: Path | None = _setting("credentials.psk_file", _optional_path, None,
                                     flag="--psk-file")
    instance: str = _setting("instance", _string, socket.gethostname() or "hac",
                             flag="--instance")
    workers: int = _setting("workers", _integer(1, 64), 1, flag="--workers")
    client_ca: Path | None = _setting("tls.client_ca", _optional_path, None, flag="--client-ca")
    require_client_cert: bool = _setting("tls.require_client_cert", _boolean, False,
                                         flag="--require-client-cert")
    ticket_key_lifetime: float = _setting("tls.ticket_key_lifetime", _positive, 3600.0)
    store_threads: int = _setting("store.threads", _integer(1, 64), 4)
    purge_interval: float = _setting("store.purge_interval", _positive, 3600.0)
    suites: frozenset = _setting("sa.suites", _suites, frozenset(SUITES.values()))
    scopes: frozenset = _setting("sa.scopes", _scopes, frozenset({0, 1}))
    default_scope: int = _setting("sa.default_scope", _integer(0, 1), SCOPE_ALL)
    lifetime: int = _setting("sa.lifetime", _integer(60, 10 * 365 * 86_400), DEFAULT_LIFETIME)
    ha_selection: str = _setting("home_agents.selection",
                                 _choice(tuple(HaSelection)), HaSelection.ROUND_ROBIN.value)
    ha_port: int = _setting("home_agents.port", _integer(1, 65_535), MIPV6TLS_PORT)
    hoa_pool4: ipaddress.IPv4Network | None = _setting(
        "bootstrap.hoa_pool4",
        _network(4, "198.51.100.0/24", "bootstrap.hoa_prefix (--hoa-prefix)"), None,
        flag="--hoa-pool4")
    dns6: ipaddress.IPv6Address | None = _setting(
        "bootstrap.dns6", _address(ipaddress.IPv6Address), None, flag="--dns6")
    dns4: ipaddress.IPv4Address | None = _setting(
        "bootstrap.dns4", _address(ipaddress.IPv4Address), None, flag="--dns4")
    handshake_timeout: float = _setting("limits.handshake_timeout", _positive, 10.0)
    idle_timeout: float = _setting("limits.idle_timeout", _positive, 30.0)
    max_connections: int = _setting("limits.max_connections", _integer(1, 1_000_000), 1024,
                                    flag="--max-connections")
    rate: float = _setting("limits.rate", _positive, 20.0)
    burst: int = _setting("limits.burst", _integer(1, 1_000_000), 40)
    max_message: int = _setting("limits.max_message", _integer(64, MAX_CONTENT), MAX_CONTENT)
    draft01_auth: bool = _setting("compat.draft01_auth", _boolean, False)
    log_level: str = _setting("log.level", _choice(LOG_LEVELS), "info", flag="--log-level")
    auth_methods: tuple = _setting("auth.methods", _methods, (AuthMethod.PSK, AuthMethod.EAP),
                                   flag="--auth-methods")
    eap_identity_from_mn_id: bool = _setting("eap.identity_from_mn_id", _boolean, False)
    aaa_timeout: float = _setting("limits.aaa_timeout", _positive, 60.0)
    radius_servers: tuple = _setting("radius.servers", _radius_servers, (),
                                     flag="--radius-server")
    radius_secret: str | None = _setting("radius.secret", _string, None, flag="--radius-secret",
                                         secret=True)
    radius_secret_file: Path | None = _setting("radius.secret_file", _optional_path, None,
                                               flag="--radius-secret-file")
    radius_nas_identifier: str | None = _setting("radius.nas_identifier", _string, None)
    radius_nas_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = _setting(
        "radius.nas_address", _optional_ip, None)
    radius_timeout: float = _setting("radius.timeout", _positive, _RETRY.initial_timeout)
    radius_max_timeout: float = _setting("radius.max_timeout", _positive,
                                         _RETRY.max_timeout)
    radius_transmissions: int = _setting("radius.transmissions", _integer(1, 10),
                                         _RETRY.transmissions)
    radius_dead_after: int = _setting("radius.dead_after", _integer(1, 1000),
                                      _RETRY.dead_after)
    radius_hold_down: float = _setting("radius.hold_down", _positive, _RETRY.hold_down)
    radius_probe: bool = _setting("radius.probe", _boolean, _RETRY.probe)
    aaa_backend: str = _setting("aaa.backend", _choice(AAA_BACKENDS), "radius",
                                flag="--aaa-backend")
    diameter_origin_host: str | None = _setting("diameter.origin_host", _diameter_identity, None,
                                                flag="--diameter-origin-host")
    diameter_origin_realm: str | None = _setting("diameter.origin_realm", _diameter_identity,
                                                 None, flag="--diameter-origin-realm")
    diameter_realm: str | None = _setting("diameter.destination_realm", _diameter_identity, None,
                                          flag="--diameter-realm")
    diameter_peers: tuple = _setting("diameter.peers", _diameter_peers, (),
                                     flag="--diameter-peer")
    diameter_listen: ListenAddress | None = _setting("diameter.listen", _optional_listen, None,
                                                     flag="--diameter-listen")
    diameter_ca: Path | None = _setting("diameter.ca", _optional_path, None, flag="--diameter-ca")
    diameter_cert: Path | None = _setting("diameter.cert", _optional_path, None,
                                          flag="--diameter-cert")
    diameter_key: Path | None = _setting("diameter.key", _optional_path, None,
                                         flag="--diameter-key")
    diameter_request_timeout: float = _setting("diameter.request_timeout", _positive,
                                               DEFAULT_REQUEST_TIMEOUT)
    diameter_watchdog: float = _setting("diameter.watchdog", _watchdog, DEFAULT_TW)
    diameter_retry_after: int = _setting("diameter.retry_after", _integer(1, 3600), 5)
    sa_delivery: Any = _setting("sa_delivery", _sa_delivery, None)

    def sa_policy(self) -> SaPolicy:
        return SaPolicy(self.suites, self.scopes, self.default_scope, self.lifetime)

    @property
    def aaa_configured(self) -> bool:
        """Whether an AAA backend (for the EAP flow) is configured."""
        return self.aaa_backend == "diameter" or bool(self.radius_servers)

    def radius_policy(self) -> RetryPolicy:
        return RetryPolicy(self.radius_timeout, self.radius_max_timeout,
                           self.radius_transmissions, dead_after=self.radius_dead_after,
                           hold_down=self.radius_hold_down, probe=self.radius_probe)

    def radius_shared_secret(self) -> bytes:
        """The RADIUS secret from ``radius.secret`` or the first line of ``radius.secret_file``."""
        if self.radius_secret is not None:
            return self.radius_secret.encode("utf-8")
        try:
            lines = self.radius_secret_file.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"radius.secret_file {self.radius_secret_file}: cannot read "
                              f"({getattr(error, 'strerror', None) or error})") from None
        secret = lines[0].strip() if lines else ""
        if not secret:
            raise ConfigError(f"radius.secret_file {self.radius_secret_file}: empty")
        return secret.encode("utf-8")

    def bootstrap_policy(self) -> BootstrapPolicy:
        agents = tuple(_home_agent(entry, self.ha_port) for entry in self.home_agents)
        return BootstrapPolicy(agents, self.hoa_prefix, self.hoa_pool4,
                               HaSelection(self.ha_selection), self.dns6, self.dns4)


SETTINGS = {spec.metadata["key"]: spec for spec in fields(HacConfig)}
"""Dotted key -> dataclass field, for documentation and flag mapping."""


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        key = prefix + name
        if isinstance(value, dict) and key not in SETTINGS:
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def read_toml(path: Path) -> dict[str, Any]:
    """The settings of a TOML file as dotted keys; ConfigError for a bad file or unknown key."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"config file {path}: cannot read ({error.strerror or error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: not valid TOML ({error})") from None
    flat = _flatten(data)
    for key in flat:
        if key not in SETTINGS:
            raise ConfigError(f"config file {path}: unknown key {key}")
    return flat


def _named(key: str) -> str:
    """``key (--flag)`` as error messages name a setting, or the key alone."""
    flag = SETTINGS[key].metadata["flag"]
    return f"{key} ({flag})" if flag else key


def naming_the_key(error: ConfigError, config: HacConfig, keys: tuple[str, ...]) -> ConfigError:
    """``error`` about a file (``key file /etc/mip6/hac.key: ...``) prefixed with the key and
    flag of the first of ``keys`` whose path it names, so that every message names its key."""
    text = str(error)
    named = [(text.find(str(path)), key) for key in keys
             if (path := getattr(config, SETTINGS[key].name)) is not None and str(path) in text]
    return ConfigError(f"{_named(min(named)[1])}: {text}") if named else error


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None
                ) -> HacConfig:
    """Validate the file's settings with ``overrides`` (dotted key -> flag value) on top."""
    raw = read_toml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if key not in SETTINGS:
            raise ValueError(f"no setting {key}")  # a bug in the caller, not the operator
        if value is not None:
            raw[key] = value
    values = {}
    for key, spec in SETTINGS.items():
        name = _named(key)
        if key not in raw:
            if spec.default is MISSING:
                raise ConfigError(f"{name} is required")
            continue
        try:
            values[spec.name] = spec.metadata["parse"](raw[key])
        except ValueError as error:
            raise ConfigError(f"{name}: {error}") from None
    config = HacConfig(**values)
    _check_together(config)
    return config


def _check_together(config: HacConfig) -> None:
    """Rules that span several keys."""
    if config.hoa_prefix is None and config.hoa_pool4 is None:
        raise ConfigError("bootstrap.hoa_prefix (--hoa-prefix) or bootstrap.hoa_pool4 is required: "
                          "MNs need a home address")
    if config.default_scope not in config.scopes:
        raise ConfigError("sa.default_scope must be one of sa.scopes")
    if config.require_client_cert and config.client_ca is None:
        raise ConfigError("tls.require_client_cert needs tls.client_ca")
    if config.radius_secret is not None and config.radius_secret_file is not None:
        raise ConfigError("radius.secret (--radius-secret) and radius.secret_file "
                          "(--radius-secret-file) are both set; keep one (the file: a flag "
                          "shows in ps)")
    if config.radius_servers and config.radius_secret is None and (
            config.radius_secret_file is None):
        raise ConfigError("radius.servers (--radius-server) needs the shared secret: "
                          "radius.secret_file (--radius-secret-file) or radius.secret "
                          "(--radius-secret)")
    if config.radius_max_timeout < config.radius_timeout:
        raise ConfigError("radius.max_timeout must be at least radius.timeout")
    if AuthMethod.PSK in config.auth_methods and config.psk_file is None:
        raise ConfigError(f"{_named('credentials.psk_file')} is required while auth.methods "
                          "includes psk")
    if config.auth_methods == (AuthMethod.EAP,) and not config.aaa_configured:
        raise ConfigError("auth.methods lists only eap, but no AAA server is configured "
                          "(radius.servers, --radius-server; or aaa.backend = diameter)")
    if config.aaa_backend == "diameter":
        _check_diameter(config)
    elif config.diameter_peers or config.diameter_listen:
        key = "diameter.peers" if config.diameter_peers else "diameter.listen"
        raise ConfigError(f"{_named(key)} is set, but {_named('aaa.backend')} is radius; "
                          "set it to diameter")


_DIAMETER_REQUIRED = ("diameter.origin_host", "diameter.origin_realm",
                      "diameter.destination_realm", "diameter.ca", "diameter.cert",
                      "diameter.key")


def _check_diameter(config: HacConfig) -> None:
    """What ``aaa.backend = "diameter"`` needs (TLS only: the MSK crosses in the DEA)."""
    wanted = "with aaa.backend = diameter"
    if config.radius_servers:
        raise ConfigError(f"{_named('radius.servers')} is set, but {_named('aaa.backend')} "
                          "is diameter")
    for key in _DIAMETER_REQUIRED:
        if getattr(config, SETTINGS[key].name) is None:
            raise ConfigError(f"{_named(key)} is required {wanted}")
    if not config.diameter_peers and config.diameter_listen is None:
        raise ConfigError(f"{_named('diameter.peers')} or {_named('diameter.listen')} is "
                          f"required {wanted}")
    if config.workers != 1:
        raise ConfigError(f"{_named('workers')} must be 1 {wanted}: a Diameter peer takes "
                          "one connection per Origin-Host")
    if (not config.diameter_peers
            and ipaddress.ip_address(config.diameter_listen.host).is_unspecified):
        raise ConfigError(f"{_named('diameter.listen')}: a wildcard address needs "
                          "diameter.peers too; else listen on the address peers reach "
                          "(it is the Host-IP-Address of the CER/CEA)")


def _given(config: HacConfig, key: str) -> bool:
    """Whether ``key`` was set to something other than its default."""
    spec = SETTINGS[key]
    return spec.default is MISSING or getattr(config, spec.name) != spec.default


_EAP_KEYS = ("aaa.backend", "eap.identity_from_mn_id", "limits.aaa_timeout")


def ineffective_settings(config: HacConfig) -> list[str]:
    """Settings given that change nothing, one line per reason, for a warning at start
    (not an error: a table kept ready for later is legitimate)."""
    given = [key for key in SETTINGS if _given(config, key)]
    radius = [key for key in given if key.startswith("radius.")]
    diameter = [key for key in given if key.startswith("diameter.")]
    notes = []
    if AuthMethod.PSK not in config.auth_methods and "credentials.psk_file" in given:
        notes.append(("credentials.psk_file", "auth.methods (--auth-methods) does not include "
                                              "psk"))
    if AuthMethod.EAP not in config.auth_methods:
        eap = [key for key in (*_EAP_KEYS, *radius, *diameter) if key in given]
        notes += [(key, "auth.methods (--auth-methods) does not include eap") for key in eap]
    elif config.aaa_backend == "diameter":
        notes += [(key, "aaa.backend (--aaa-backend) is diameter") for key in radius]
    else:
        notes += [(key, "aaa.backend (--aaa-backend) is radius") for key in diameter]
        if not config.radius_servers:
            notes += [(key, "no radius.servers (--radius-server) is set") for key in radius]
            if "auth.methods" in given:
                notes.append(("auth.methods (eap)", "no AAA server is configured "
                                                     "(radius.servers or aaa.backend)"))
    reasons: dict[str, list[str]] = {}
    for key, reason in notes:
        reasons.setdefault(reason, []).append(_named(key) if key in SETTINGS else key)
    return [f"{', '.join(keys)} {'has' if len(keys) == 1 else 'have'} no effect: {reason}"
            for reason, keys in reasons.items()]


def store_description(url: str) -> str:
    """The store URL as the log shows it: a PostgreSQL URL without password or parameters."""
    if url.startswith("sqlite:"):
        return url
    scheme, _, rest = url.partition("://")
    location, _, path = rest.partition("/")
    user_info, at, host = location.rpartition("@")
    user = user_info.partition(":")[0] + "@" if at else ""
    return f"{scheme}://{user}{host}/{re.split('[?#]', path)[0]}"
