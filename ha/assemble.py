"""One recipe for a home agent from its settings, shared by ``mip6-ha`` and ``mip6-lab``.

:func:`assemble_home_agent` opens what the HA reads and writes (sequence ledger, SA
source, home-network device) and wires a :class:`~ha.core.HomeAgentCore` into a
:class:`~ha.server.HomeAgentServer`; the caller decides where it listens and when it
stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core import HomeAgentCore
from .sasource import SASource, SequenceLedger, StoreSASource
from .server import HomeAgentServer

if TYPE_CHECKING:
    from .config import HaConfig


def open_sa_source(config: HaConfig, reactor) -> SASource:
    """Where the HA gets SAs: the HAC's Diameter pushes and queries, or the HAC's store.

    A PostgreSQL store is read in the reactor's thread pool; SQLite on the reactor thread.
    """
    if config.diameter is not None:
        from aaa_mip6.twisted.sa_node import start_node

        from .diameter_source import DiameterSASource

        return DiameterSASource(start_node(config.diameter, reactor), config.diameter,
                                home_agents=(config.policy.home_agent,))
    from aaa_mip6.store import open_store

    return StoreSASource(open_store(config.store),
                         in_thread=not config.store.startswith("sqlite:"))


def assemble_home_agent(config: HaConfig, reactor, *, tun=None) -> HomeAgentServer:
    """The HA for ``config``, not yet listening: ledger, SA source, core and server.

    ``tun`` is the home-network device; without one, the TUN device ``config.tun``
    names is opened (if any). The server holds ``source``, ``ledger`` and ``tun``;
    closing them is the caller's. If something cannot be opened, what was opened
    here is closed again and the error propagates.
    """
    ledger = SequenceLedger(config.state)
    opened_tun = None
    try:
        if tun is None and config.tun:
            from .tun import HomeNetworkTun

            tun = opened_tun = HomeNetworkTun.open(config.tun, config.tun_routes)
        source = open_sa_source(config, reactor)
    except BaseException:
        ledger.close()
        if opened_tun is not None:
            opened_tun.close()
        raise
    return HomeAgentServer(
        HomeAgentCore(config.policy), source, ledger, reactor=reactor, tun=tun,
        sa_refresh=config.sa_refresh, stats_interval=config.stats_interval,
        ledger_purge_interval=config.ledger_purge_interval, status_path=config.status_file)
