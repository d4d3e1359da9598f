"""One recipe for a HAC from its settings, shared by ``mip6-hac`` and ``mip6-lab``.

:func:`assemble_hac` opens what one HAC process uses (the MN-facing TLS, the PSK table,
the AAA backend of the EAP flow, the SA store) and wires them into a
:class:`~hac.server.HacServer`; the caller decides where it listens and when it stops.
The factories of each part live here too, so that ``--check-config``
(:mod:`hac.process`) builds exactly what the server will run with.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import replace

from twisted.internet.error import CannotListenError

from aaa_mip6.diameter.eap import EAP_APPLICATION_ID
from aaa_mip6.diameter.peer import LocalNode, WatchdogTimers
from aaa_mip6.errors import ConfigError
from aaa_mip6.program import EXIT_RUNTIME
from aaa_mip6.radius.codec import Nas
from aaa_mip6.radius.servers import RadiusServer
from aaa_mip6.store import SAStore, StoreError, open_store
from aaa_mip6.twisted.aaa import AaaBackend
from aaa_mip6.twisted.diameter_eap import DiameterEapBackend
from aaa_mip6.twisted.diameter_node import open_node
from aaa_mip6.twisted.radius_client import RadiusClient
from aaa_mip6.twisted.routes import source_address_towards
from aaa_mip6.twisted.tls import ServerTLS

from .accounting import Accounting
from .config import HacConfig
from .credentials import Credentials
from .server import HacServer


def assemble_hac(config: HacConfig, reactor, *, tls: ServerTLS | None = None,
                 credentials: Credentials | None = None,
                 server_secret: bytes | None = None, delivers: bool = True) -> HacServer:
    """The HAC for ``config``, not yet listening: TLS, PSK table, AAA backend, store, server.

    ``tls`` and ``credentials`` are the ones :func:`hac.process.check` already loaded, if
    any; else they are loaded here. ``delivers``: this process runs SA delivery (worker 0
    of a host); the others only owe their SAs in the store's outbox.
    """
    tls = tls or server_tls(config)
    if credentials is None and config.psk_file is not None:
        credentials = Credentials(config.psk_file)
    return HacServer(config, reactor, tls=tls, credentials=credentials,
                     aaa=aaa_backend(config, reactor), store=open_configured_store(config),
                     server_secret=server_secret, accounting=accounting(config, reactor),
                     delivers=delivers)


def aaa_backend(config: HacConfig, reactor) -> AaaBackend | None:
    """The AAA backend the EAP flow relays to (RADIUS or Diameter), or None without one."""
    if config.aaa_backend == "diameter":
        return diameter_backend(config, reactor)
    if not config.radius_servers:
        return None
    secret = config.radius_shared_secret()
    servers = [RadiusServer.parse(text, secret) for text in config.radius_servers]
    return RadiusClient(servers, radius_nas(config, servers[0]), policy=config.radius_policy(),
                        reactor=reactor)


def accounting(config: HacConfig, reactor) -> Accounting | None:
    """RADIUS accounting of SAs with ``radius.accounting``, else None.

    Its client never probes with Status-Server: to an accounting port that is answered
    with an Accounting-Response, which only an authentication client's probe cannot take.
    A dead accounting server is retried after ``radius.hold_down``.
    """
    if not config.radius_accounting:
        return None
    servers = config.accounting_servers()
    policy = replace(config.radius_policy(), probe=False)
    client = RadiusClient(servers, radius_nas(config, servers[0]), policy=policy,
                          reactor=reactor)
    return Accounting(client, time.time)


def radius_nas(config: HacConfig, first: RadiusServer) -> Nas:
    """How the HAC names itself to RADIUS servers: ``radius.nas_identifier`` (else the
    instance name) and ``radius.nas_address`` (else its address towards ``first``)."""
    address = config.radius_nas_address or local_address_towards(
        first.address, "RADIUS server", "radius.nas_address")
    return Nas(config.radius_nas_identifier or config.instance, address)


def diameter_backend(config: HacConfig, reactor) -> DiameterEapBackend:
    """A Diameter node (application 5) with its TLS peers and listener, and the backend on it.

    The HAC connects to each of ``diameter.peers`` and, with ``diameter.listen``, accepts
    peers (e.g. a Diameter agent configured to connect to it) whose certificate is signed
    by ``diameter.ca`` and names their Origin-Host.
    """
    local = LocalNode(config.diameter_origin_host, config.diameter_origin_realm,
                      host_ip_addresses=diameter_host_addresses(config),
                      auth_applications=frozenset({EAP_APPLICATION_ID}))
    listen = config.diameter_listen
    try:
        node = open_node(local, reactor,
                         peers=[(peer.name, str(peer.address), peer.port)
                                for peer in config.diameter_peers],
                         listen=None if listen is None else (listen.host, listen.port),
                         cert=config.diameter_cert, key=config.diameter_key,
                         ca=config.diameter_ca,
                         watchdog=WatchdogTimers(tw=config.diameter_watchdog),
                         request_timeout=config.diameter_request_timeout)
    except CannotListenError as failure:
        raise ConfigError(f"diameter.listen {listen}: cannot listen "
                          f"({failure.socketError})") from None
    return DiameterEapBackend(node, config.diameter_realm, nas_identifier=config.instance,
                              retry_after=config.diameter_retry_after)


def diameter_host_addresses(config: HacConfig) -> tuple[str, ...]:
    """Host-IP-Address for CER/CEA: the listening address unless it is a wildcard, and
    the local address towards each peer."""
    addresses = []
    if config.diameter_listen is not None:
        listening = ipaddress.ip_address(config.diameter_listen.host)
        if not listening.is_unspecified:
            addresses.append(listening)
    addresses += [local_address_towards(peer.address, "Diameter peer")
                  for peer in config.diameter_peers]
    return tuple(dict.fromkeys(str(address) for address in addresses))


def local_address_towards(remote: ipaddress.IPv4Address | ipaddress.IPv6Address,
                          what: str, setting: str | None = None
                          ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The local address the kernel routes to ``remote`` from.

    ``what`` names the remote and ``setting`` a key that avoids the lookup, for the
    error when there is no route.
    """
    try:
        return source_address_towards(remote)
    except OSError as failure:
        hint = f"; set {setting}" if setting else ""
        raise ConfigError(f"no route to {what} {remote} "
                          f"({failure.strerror or failure}){hint}") from None


def server_tls(config: HacConfig) -> ServerTLS:
    """The MN-facing TLS of ``config`` (certificate, key, client CAs, ticket key lifetime)."""
    return ServerTLS(config.cert, config.key, client_ca_file=config.client_ca,
                     require_client_cert=config.require_client_cert,
                     ticket_key_lifetime=config.ticket_key_lifetime,
                     early_data=config.early_data)


class StartFailed(RuntimeError):
    """The HAC could not start for a reason outside its configuration (exit status 1):
    the store does not answer, a worker failed as it started."""

    def __init__(self, message: str, status: int = EXIT_RUNTIME):
        super().__init__(message)
        self.status = status


def open_configured_store(config: HacConfig) -> SAStore:
    """The store of ``store.url``; errors name the key (never the URL: it may hold a
    password). Unreachable is a run-time failure, a bad URL or path a configuration one."""
    try:
        return open_store(config.store_url, timeout=config.store_timeout)
    except ConfigError as error:
        raise ConfigError(f"store.url (--store): {_detail(error)}") from None
    except StoreError as error:
        raise StartFailed(f"store.url (--store): {_detail(error)}") from None


def _detail(error: Exception) -> str:
    """The store's message without its own ``store:`` prefix (the caller names the key)."""
    return str(error).removeprefix("SA store: ").removeprefix("store: ")
