"""A Twisted Diameter node for the SA delivery application (:mod:`aaa_mip6.diameter.sa_app`).

The HAC's SA delivery and the HA's Diameter SA source both start their node here, from the
validated :class:`~aaa_mip6.diameter.sa_app.NodeSettings`.
"""

from __future__ import annotations

from ..diameter.peer import LocalNode, WatchdogTimers
from ..diameter.sa_app import NodeSettings
from .diameter_node import open_node


def start_node(settings: NodeSettings, reactor, *, watchdog_jitter: float | None = None):
    """A DiameterNode advertising the application, listening and connecting as configured
    (:func:`~aaa_mip6.twisted.diameter_node.open_node`). Returns the node (not yet open)."""
    application = settings.application
    jitter = min(2.0, settings.watchdog / 10) if watchdog_jitter is None else watchdog_jitter
    return open_node(
        LocalNode(settings.origin_host, settings.origin_realm,
                  vendor_applications=frozenset({application.vendor_application})),
        reactor, peers=settings.peers, listen=settings.listen, cert=settings.cert,
        key=settings.key, ca=settings.ca, insecure_tcp=settings.insecure_tcp,
        watchdog=WatchdogTimers(settings.watchdog, jitter),
        request_timeout=settings.request_timeout)
