"""The HAC's configuration: a TOML file (``--config``) and command-line flags over it.

Every setting has a dotted key (``tls.cert`` is key ``cert`` of table ``[tls]``),
one parser that validates it and a default (or none: required), on the schema every
program shares (:mod:`aaa_mip6.settings`). Flags override the
file. Any problem -- an unknown key, a wrong type, a value out of range, a missing
required setting -- raises :class:`ConfigError` naming the key (and the flag that
sets it), so the operator knows exactly what to fix. docs/configuration.md ("HAC")
documents each key; etc/hac.toml is a commented sample.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from aaa_mip6 import settings as parsers
from aaa_mip6.addresses import format_host_port, parse_host_port, refuse_unbracketed_port
from aaa_mip6.container import MAX_CONTENT
from aaa_mip6.diameter import sa_app
from aaa_mip6.diameter.peer import DEFAULT_TW
from aaa_mip6.diameter.router import DEFAULT_REQUEST_TIMEOUT
from aaa_mip6.errors import ConfigError
from aaa_mip6.iana import MIPV6TLS_PORT, RADIUS_ACCOUNTING_PORT
from aaa_mip6.radius.servers import RadiusServer, RetryPolicy
from aaa_mip6.sa import SCOPE_ALL, HomeAgent, IPAddress
from aaa_mip6.settings import Schema, setting
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod

from .provisioning import DEFAULT_LIFETIME, BootstrapPolicy, HaSelection, SaPolicy

AAA_BACKENDS = ("radius", "diameter")
MIN_WATCHDOG = 6.0  # RFC 3539's smallest Tw
_RETRY = RetryPolicy()  # the RADIUS defaults


# --- value parsers: (raw TOML or flag value) -> typed value, ValueError on a bad one ----


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
    host, port = parse_host_port(parsers.string(value))
    if port is None:
        raise ValueError("must be HOST:PORT ([v6]:PORT for IPv6; port 0 picks a free port)")
    return ListenAddress(str(parsers.ip(host)), port)


def _home_agent(value: Any, default_port: int) -> HomeAgent:
    """An HA: ``"[v6]:port"``, ``"v4:port"``, a bare address, or {ip6, ip4, port}."""
    if isinstance(value, str):
        refuse_unbracketed_port(value)
        host, port = parse_host_port(value, lowest=1)
        address = parsers.ip(host)
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
                              parsers.integer(1, 65_535)(value.get("port", default_port)))
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
        text = parsers.string(value)
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
            return kind(parsers.string(value))
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


def _radius_servers(value: Any) -> tuple[str, ...]:
    """``HOST[:PORT]`` or ``[v6]:PORT`` entries (port 1812 if none); the secret comes apart."""
    entries = [value] if isinstance(value, str) else _list(value)
    for entry in entries:
        try:
            refuse_unbracketed_port(parsers.string(entry))
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
    url = parsers.string(value)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must start with sqlite:/// or postgresql://")
    return url


@dataclass(frozen=True, slots=True)
class DiameterPeer:
    """A Diameter peer the HAC connects to over TLS; ``port`` None means 5658."""

    name: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int | None


def _diameter_peer(text: str) -> DiameterPeer:
    name, host, port = parsers.diameter_peer(text)
    return DiameterPeer(name, ipaddress.ip_address(host), port)


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
    seconds = parsers.positive(value)
    if seconds < MIN_WATCHDOG:
        raise ValueError(f"must be at least {MIN_WATCHDOG:g} seconds (RFC 3539)")
    return seconds


DEFAULT_RETRY_INITIAL = 1.0
DEFAULT_RETRY_MAX = 60.0
DEFAULT_POLL_INTERVAL = 1.0
_DELIVERY_KEYS = frozenset({"home_agents", "control_socket", "retry_initial", "retry_max",
                            "poll_interval"})


@dataclass(frozen=True)
class DeliverySettings:
    """The ``[sa_delivery]`` table: the Diameter node and where each HA is reached."""

    node: sa_app.NodeSettings
    home_agents: dict[IPAddress, str] = field(default_factory=dict)  # address -> Origin-Host
    control_socket: Path | None = None
    retry_initial: float = DEFAULT_RETRY_INITIAL
    retry_max: float = DEFAULT_RETRY_MAX
    poll_interval: float = DEFAULT_POLL_INTERVAL  # seconds between claims from the outbox


def parse_sa_delivery(table: Any) -> DeliverySettings:
    """Validate the ``[sa_delivery]`` table (:mod:`hac.sa_delivery`); ConfigError names
    the key within it."""
    if not isinstance(table, dict):
        raise ConfigError("must be a table")
    node = sa_app.node_settings({k: v for k, v in table.items() if k not in _DELIVERY_KEYS})
    agents = table.get("home_agents", {})
    if not isinstance(agents, dict) or not agents:
        raise ConfigError('home_agents: a table "HA address" = "its Origin-Host"')
    home_agents = {}
    for address, host in agents.items():
        try:
            home_agents[ipaddress.ip_address(address.strip("[]"))] = host
        except ValueError:
            raise ConfigError(f"home_agents: {address!r} is not an IP "
                              f"address") from None
        if not isinstance(host, str) or not host or " " in host:
            raise ConfigError(f"home_agents: {address}: the HA's Origin-Host "
                              f"must be a non-empty string")
    control = table.get("control_socket")
    if control is not None and (not isinstance(control, str) or not control.startswith("/")):
        raise ConfigError("control_socket: must be an absolute path")
    retry = {}
    for key, default in (("retry_initial", DEFAULT_RETRY_INITIAL),
                         ("retry_max", DEFAULT_RETRY_MAX),
                         ("poll_interval", DEFAULT_POLL_INTERVAL)):
        value = table.get(key, default)
        if type(value) not in (int, float) or not 0 < value <= 86_400:
            raise ConfigError(f"{key}: must be a number of seconds in (0, 86400]")
        retry[key] = float(value)
    if retry["retry_max"] < retry["retry_initial"]:
        raise ConfigError("retry_max must be at least retry_initial")
    return DeliverySettings(node, home_agents, None if control is None else Path(control),
                            **retry)


@dataclass(frozen=True)
class HacConfig:
    """Every HAC setting, validated. Build it with :func:`load_config`."""

    listen: ListenAddress = setting("listen", _listen, flag="--listen")
    cert: Path = setting("tls.cert", parsers.path, flag="--cert")
    key: Path = setting("tls.key", parsers.path, flag="--key")
    store_url: str = setting("store.url", _store_url, flag="--store",
                             secret=True)  # a PostgreSQL URL may hold a password
    home_agents: tuple = setting("home_agents.addresses", _home_agents, flag="--ha")
    hoa_prefix: ipaddress.IPv6Network | None = setting(
        "bootstrap.hoa_prefix",
        _network(6, "2001:db8:1::/64", "bootstrap.hoa_pool4 (--hoa-pool4)"), None,
        flag="--hoa-prefix")
    psk_file: Path | None = setting("credentials.psk_file", parsers.optional_path, None,
                                    flag="--psk-file")
    instance: str = setting("instance", parsers.string, socket.gethostname() or "hac",
                            flag="--instance")
    workers: int = setting("workers", parsers.integer(1, 64), 1, flag="--workers")
    client_ca: Path | None = setting("tls.client_ca", parsers.optional_path, None,
                                    flag="--client-ca")
    require_client_cert: bool = setting("tls.require_client_cert", parsers.boolean, False,
                                        flag="--require-client-cert")
    ticket_key_lifetime: float = setting("tls.ticket_key_lifetime", parsers.positive, 3600.0)
    early_data: bool = setting("tls.early_data", parsers.boolean, False, flag="--early-data")
    # SYNs with data the listener holds before their handshake completes; 0 turns it off.
    tcp_fast_open: int = setting("tcp_fast_open", parsers.integer(0, 65_535), 256,
                                 flag="--tcp-fast-open")
    store_threads: int = setting("store.threads", parsers.integer(1, 64), 4)
    purge_interval: float = setting("store.purge_interval", parsers.positive, 3600.0)
    store_timeout: float = setting("store.timeout", parsers.positive, 5.0)
    store_retry_after: int = setting("store.retry_after", parsers.integer(1, 3600), 5)
    suites: frozenset = setting("sa.suites", _suites, frozenset(SUITES.values()))
    scopes: frozenset = setting("sa.scopes", _scopes, frozenset({0, 1}))
    default_scope: int = setting("sa.default_scope", parsers.integer(0, 1), SCOPE_ALL)
    lifetime: int = setting("sa.lifetime", parsers.integer(60, 10 * 365 * 86_400),
                            DEFAULT_LIFETIME)
    ha_selection: str = setting("home_agents.selection", parsers.choice(tuple(HaSelection)),
                                HaSelection.ROUND_ROBIN.value)
    ha_port: int = setting("home_agents.port", parsers.integer(1, 65_535), MIPV6TLS_PORT)
    hoa_pool4: ipaddress.IPv4Network | None = setting(
        "bootstrap.hoa_pool4",
        _network(4, "198.51.100.0/24", "bootstrap.hoa_prefix (--hoa-prefix)"), None,
        flag="--hoa-pool4")
    dns6: ipaddress.IPv6Address | None = setting(
        "bootstrap.dns6", _address(ipaddress.IPv6Address), None, flag="--dns6")
    dns4: ipaddress.IPv4Address | None = setting(
        "bootstrap.dns4", _address(ipaddress.IPv4Address), None, flag="--dns4")
    handshake_timeout: float = setting("limits.handshake_timeout", parsers.positive, 10.0)
    idle_timeout: float = setting("limits.idle_timeout", parsers.positive, 30.0)
    max_connections: int = setting("limits.max_connections", parsers.integer(1, 1_000_000),
                                   1024, flag="--max-connections")
    rate: float = setting("limits.rate", parsers.positive, 20.0)
    burst: int = setting("limits.burst", parsers.integer(1, 1_000_000), 40)
    max_message: int = setting("limits.max_message", parsers.integer(64, MAX_CONTENT),
                               MAX_CONTENT)
    draft01_auth: bool = setting("compat.draft01_auth", parsers.boolean, False)
    log_level: str = setting("log.level", parsers.log_level, "info", flag="--log-level")
    log_format: str = setting("log.format", parsers.log_format, "text", flag="--log-format")
    metrics: tuple[str, int] | None = setting("metrics.listen", parsers.host_port, None,
                                              flag="--metrics")
    auth_methods: tuple = setting("auth.methods", _methods, (AuthMethod.PSK, AuthMethod.EAP),
                                  flag="--auth-methods")
    eap_identity_from_mn_id: bool = setting("eap.identity_from_mn_id", parsers.boolean, False)
    aaa_timeout: float = setting("limits.aaa_timeout", parsers.positive, 60.0)
    radius_servers: tuple = setting("radius.servers", _radius_servers, (),
                                    flag="--radius-server")
    radius_secret: str | None = setting("radius.secret", parsers.string, None,
                                        flag="--radius-secret", secret=True)
    radius_secret_file: Path | None = setting("radius.secret_file", parsers.optional_path, None,
                                              flag="--radius-secret-file")
    radius_nas_identifier: str | None = setting("radius.nas_identifier", parsers.string, None)
    radius_nas_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = setting(
        "radius.nas_address", parsers.optional_ip, None)
    radius_timeout: float = setting("radius.timeout", parsers.positive, _RETRY.initial_timeout)
    radius_max_timeout: float = setting("radius.max_timeout", parsers.positive,
                                        _RETRY.max_timeout)
    radius_transmissions: int = setting("radius.transmissions", parsers.integer(1, 10),
                                        _RETRY.transmissions)
    radius_dead_after: int = setting("radius.dead_after", parsers.integer(1, 1000),
                                     _RETRY.dead_after)
    radius_hold_down: float = setting("radius.hold_down", parsers.positive, _RETRY.hold_down)
    radius_probe: bool = setting("radius.probe", parsers.boolean, _RETRY.probe)
    radius_accounting: bool = setting("radius.accounting", parsers.boolean, False)
    radius_accounting_servers: tuple = setting("radius.accounting_servers", _radius_servers, ())
    aaa_backend: str = setting("aaa.backend", parsers.choice(AAA_BACKENDS), "radius",
                               flag="--aaa-backend")
    diameter_origin_host: str | None = setting("diameter.origin_host",
                                               parsers.diameter_identity, None,
                                               flag="--diameter-origin-host")
    diameter_origin_realm: str | None = setting("diameter.origin_realm", parsers.diameter_identity,
                                                None, flag="--diameter-origin-realm")
    diameter_realm: str | None = setting("diameter.destination_realm",
                                         parsers.diameter_identity, None,
                                         flag="--diameter-realm")
    diameter_peers: tuple = setting("diameter.peers", _diameter_peers, (),
                                    flag="--diameter-peer")
    diameter_listen: ListenAddress | None = setting("diameter.listen", _optional_listen, None,
                                                    flag="--diameter-listen")
    diameter_ca: Path | None = setting("diameter.ca", parsers.optional_path, None,
                                       flag="--diameter-ca")
    diameter_cert: Path | None = setting("diameter.cert", parsers.optional_path, None,
                                         flag="--diameter-cert")
    diameter_key: Path | None = setting("diameter.key", parsers.optional_path, None,
                                        flag="--diameter-key")
    diameter_request_timeout: float = setting("diameter.request_timeout", parsers.positive,
                                              DEFAULT_REQUEST_TIMEOUT)
    diameter_watchdog: float = setting("diameter.watchdog", _watchdog, DEFAULT_TW)
    diameter_retry_after: int = setting("diameter.retry_after", parsers.integer(1, 3600), 5)
    sa_delivery: DeliverySettings | None = setting("sa_delivery", parse_sa_delivery, None)
    control_socket: Path | None = setting("control.socket", parsers.control_socket, None,
                                          flag="--control")

    @property
    def control_path(self) -> Path | None:
        """The control socket: ``control.socket``, else the older
        ``sa_delivery.control_socket`` (the same socket, kept for existing files)."""
        if self.control_socket is not None:
            return self.control_socket
        return None if self.sa_delivery is None else self.sa_delivery.control_socket

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

    def accounting_servers(self, secret: bytes | None = None) -> list[RadiusServer]:
        """Where Accounting-Requests go: ``radius.accounting_servers`` (port 1813 unless
        given), else the authentication servers' addresses on port 1813. With the shared
        secret (read now) unless ``secret`` is given."""
        secret = secret or self.radius_shared_secret()
        if self.radius_accounting_servers:
            return [RadiusServer.parse(text, secret, RADIUS_ACCOUNTING_PORT)
                    for text in self.radius_accounting_servers]
        return [RadiusServer(RadiusServer.parse(text, secret).address, RADIUS_ACCOUNTING_PORT,
                             secret) for text in self.radius_servers]

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


SCHEMA = Schema(HacConfig)
SETTINGS = SCHEMA.settings
"""Dotted key -> dataclass field, for documentation and flag mapping."""
named = SCHEMA.named
read_toml = SCHEMA.read_toml


def naming_the_key(error: ConfigError, config: HacConfig, keys: tuple[str, ...]) -> ConfigError:
    """``error`` about a file (``key file /etc/mip6/hac.key: ...``) prefixed with the key and
    flag of the first of ``keys`` whose path it names, so that every message names its key."""
    text = str(error)
    found = [(text.find(str(path)), key) for key in keys
             if (path := getattr(config, SETTINGS[key].name)) is not None and str(path) in text]
    return ConfigError(f"{named(min(found)[1])}: {text}") if found else error


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None
                ) -> HacConfig:
    """Validate the file's settings with ``overrides`` (dotted key -> flag value) on top."""
    config = SCHEMA.load(path, overrides)
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
    if config.radius_accounting:
        _check_accounting(config)
    _check_control(config)
    _check_metrics(config)
    if config.radius_max_timeout < config.radius_timeout:
        raise ConfigError("radius.max_timeout must be at least radius.timeout")
    if AuthMethod.PSK in config.auth_methods and config.psk_file is None:
        raise ConfigError(f"{named('credentials.psk_file')} is required while auth.methods "
                          "includes psk")
    if config.auth_methods == (AuthMethod.EAP,) and not config.aaa_configured:
        raise ConfigError("auth.methods lists only eap, but no AAA server is configured "
                          "(radius.servers, --radius-server; or aaa.backend = diameter)")
    if config.aaa_backend == "diameter":
        _check_diameter(config)
    elif config.diameter_peers or config.diameter_listen:
        key = "diameter.peers" if config.diameter_peers else "diameter.listen"
        raise ConfigError(f"{named(key)} is set, but {named('aaa.backend')} is radius; "
                          "set it to diameter")


def _check_metrics(config: HacConfig) -> None:
    """Worker N serves its metrics on ``metrics.listen``'s port + N: those must exist."""
    if config.metrics is None or not config.metrics[1]:
        return
    last = config.metrics[1] + config.workers - 1
    if last > 65535:
        raise ConfigError(f"{named('metrics.listen')}: {config.workers} workers serve metrics "
                          f"on ports {config.metrics[1]}..{last}; choose a port up to "
                          f"{65536 - config.workers}")


def _check_control(config: HacConfig) -> None:
    """The control socket is named by one key (each worker derives its own from it)."""
    path = config.control_socket
    older = None if config.sa_delivery is None else config.sa_delivery.control_socket
    if path is not None and older is not None and older != path:
        raise ConfigError(f"{named('control.socket')} and sa_delivery.control_socket name "
                          "two sockets; they are the same socket: keep control.socket")


def _check_accounting(config: HacConfig) -> None:
    """What ``radius.accounting = true`` needs: servers to send to, and their secret."""
    if not (config.radius_accounting_servers or config.radius_servers):
        raise ConfigError(f"{named('radius.accounting')} needs {named('radius.servers')} or "
                          "radius.accounting_servers: the servers to send accounting to")
    if config.radius_secret is None and config.radius_secret_file is None:
        raise ConfigError(f"{named('radius.accounting')} needs the shared secret: "
                          "radius.secret_file (--radius-secret-file) or radius.secret "
                          "(--radius-secret)")


_DIAMETER_REQUIRED = ("diameter.origin_host", "diameter.origin_realm",
                      "diameter.destination_realm", "diameter.ca", "diameter.cert",
                      "diameter.key")


def _check_diameter(config: HacConfig) -> None:
    """What ``aaa.backend = "diameter"`` needs (TLS only: the MSK crosses in the DEA)."""
    wanted = "with aaa.backend = diameter"
    if config.radius_servers:
        raise ConfigError(f"{named('radius.servers')} is set, but {named('aaa.backend')} "
                          "is diameter")
    for key in _DIAMETER_REQUIRED:
        if getattr(config, SETTINGS[key].name) is None:
            raise ConfigError(f"{named(key)} is required {wanted}")
    if not config.diameter_peers and config.diameter_listen is None:
        raise ConfigError(f"{named('diameter.peers')} or {named('diameter.listen')} is "
                          f"required {wanted}")
    if config.workers != 1:
        raise ConfigError(f"{named('workers')} must be 1 {wanted}: a Diameter peer takes "
                          "one connection per Origin-Host")
    if (not config.diameter_peers
            and ipaddress.ip_address(config.diameter_listen.host).is_unspecified):
        raise ConfigError(f"{named('diameter.listen')}: a wildcard address needs "
                          "diameter.peers too; else listen on the address peers reach "
                          "(it is the Host-IP-Address of the CER/CEA)")


def _given(config: HacConfig, key: str) -> bool:
    """Whether ``key`` was set to something other than its default."""
    spec = SETTINGS[key]
    return spec.default is MISSING or getattr(config, spec.name) != spec.default


# What RADIUS accounting uses, whatever the EAP flow does.
_ACCOUNTING_KEYS = ("radius.secret",
                    "radius.secret_file", "radius.nas_identifier", "radius.nas_address",
                    "radius.timeout", "radius.max_timeout", "radius.transmissions",
                    "radius.dead_after", "radius.hold_down")
_EAP_KEYS = ("aaa.backend", "eap.identity_from_mn_id", "limits.aaa_timeout")


def ineffective_settings(config: HacConfig) -> list[str]:
    """Settings given that change nothing, one line per reason, for a warning at start
    (not an error: a table kept ready for later is legitimate)."""
    given = [key for key in SETTINGS if _given(config, key)]
    used_by_accounting = _ACCOUNTING_KEYS if config.radius_accounting else ()
    if config.radius_accounting and not config.radius_accounting_servers:
        used_by_accounting += ("radius.servers",)
    radius = [key for key in given if key.startswith("radius.")
              and key not in used_by_accounting
              and key not in ("radius.accounting", "radius.accounting_servers")]
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
    if not config.radius_accounting and "radius.accounting_servers" in given:
        notes.append(("radius.accounting_servers", "radius.accounting is false"))
    reasons: dict[str, list[str]] = {}
    for key, reason in notes:
        reasons.setdefault(reason, []).append(named(key) if key in SETTINGS else key)
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
