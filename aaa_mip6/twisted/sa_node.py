"""A Twisted Diameter node for the SA delivery application (:mod:`aaa_mip6.diameter.sa_app`).

The HAC's SA delivery and the HA's Diameter SA source both start their node here, from the
validated :class:`~aaa_mip6.diameter.sa_app.NodeSettings`.
"""

from __future__ import annotations

from pathlib import Path

from ..diameter.peer import LocalNode, WatchdogTimers
from ..diameter.sa_app import NodeSettings
from . import tls
from .diameter_node import DiameterNode


def start_node(settings: NodeSettings, reactor, *, watchdog_jitter: float | None = None):
    """A DiameterNode advertising the application, listening and connecting as configured.

    TLS everywhere unless ``settings.insecure_tcp``; a peer's certificate must name its
    Origin-Host, ours names ``origin_host``. Returns the node (not yet open).
    """
    application = settings.application
    jitter = min(2.0, settings.watchdog / 10) if watchdog_jitter is None else watchdog_jitter
    node = DiameterNode(
        LocalNode(settings.origin_host, settings.origin_realm,
                  vendor_applications=frozenset({application.vendor_application})),
        reactor=reactor, watchdog=WatchdogTimers(settings.watchdog, jitter),
        request_timeout=settings.request_timeout)
    server_tls = None
    if not settings.insecure_tcp:
        cert, key, ca = Path(settings.cert), Path(settings.key), Path(settings.ca)
        server_tls = tls.ServerTLS(cert, key, client_ca_file=ca, require_client_cert=True)
    if settings.listen is not None:
        host, port = settings.listen
        if server_tls is None:
            node.listen_tcp(port, host)
        else:
            node.listen_tls(server_tls, port, host)
    for name, host, port in settings.peers:
        node.connect(name, host, port, client_tls=None if server_tls is None else tls.ClientTLS(
            name, ca, cert_file=cert, key_file=key))
    return node
