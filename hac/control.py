"""The verbs of the HAC's control socket (``control.socket``): ``sas``, ``stats``, ``revoke``.

With ``workers = N`` each worker listens on its own socket (:func:`worker_socket`):
``sas`` and ``revoke`` work on any of them (they act on the shared store), ``stats``
answers for its worker, and ``mip6-hac stats`` asks every one.

:func:`handlers` gives :func:`aaa_mip6.twisted.control.listen_control` one callable per
verb; the CLI side is :mod:`hac.verbs`. An SA's keys leave the HAC only when the request
asks for them (``mip6-hac sas --keys``): the socket is local and 0600, but a listing is
for reading, and keys on a screen are keys in a terminal's scroll-back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aaa_mip6.addresses import format_host_port
from aaa_mip6.keylog import esp_sa_records
from aaa_mip6.control import ControlError, integer_argument, ok
from aaa_mip6.store.base import SARecord


def worker_socket(path: Path, worker: int) -> Path:
    """Worker ``worker``'s control socket: ``path`` for worker 0 (so a single-worker HAC
    and the verbs that act on the store use ``control.socket`` as it is), ``path.N`` for
    worker N."""
    return path if worker == 0 else path.with_name(f"{path.name}.{worker}")


def sa_row(record: SARecord, *, keys: bool = False) -> dict[str, Any]:
    """One SA as the ``sas`` verb lists it (keys in hex only with ``keys``, and then also
    as Wireshark ``esp_sa`` records when its HA is known: :mod:`aaa_mip6.keylog`)."""
    sa = record.sa
    agent = record.home_agent
    row = {
        "spi": sa.spi, "mn_id": sa.mn_id, "suite": sa.suite, "scope": sa.scope,
        "home_agent": None if agent is None else " + ".join(
            format_host_port(address, agent.port)
            for address in (agent.address6, agent.address4) if address is not None),
        "home_address6": None if sa.home_address6 is None else str(sa.home_address6),
        "home_address4": None if sa.home_address4 is None else str(sa.home_address4),
        "valid_until": sa.validity_end.isoformat().replace("+00:00", "Z"),
        "revoked": sa.revoked, "hac_instance": record.hac_instance,
    }
    if keys:
        row["keys"] = {name: getattr(sa, name).hex() for name in
                       ("mn_to_ha_ikey", "ha_to_mn_ikey", "mn_to_ha_ekey", "ha_to_mn_ekey")}
        row["esp_sa"] = [] if agent is None else esp_sa_records(sa, agent)
    return row


def select(records: list[SARecord], *, mn_id: str | None, spi: int | None) -> list[SARecord]:
    return sorted((record for record in records
                   if (mn_id is None or record.sa.mn_id == mn_id)
                   and (spi is None or record.sa.spi == spi)),
                  key=lambda record: record.sa.spi)


def handlers(server) -> dict:
    """verb -> handler for the HAC ``server`` (:class:`hac.server.HacServer`)."""

    def sas(request: dict) -> Any:
        spi = integer_argument(request, "spi")
        mn_id = request.get("mn_id")
        if mn_id is not None and not isinstance(mn_id, str):
            raise ControlError('"mn_id" must be a string')
        keys = request.get("keys") is True
        if spi is not None:
            found = server.in_store_thread(server.store.get, spi)
            found.addCallback(lambda record: [] if record is None else [record])
        else:
            found = server.in_store_thread(server.store.active)
        found.addCallback(lambda records: ok(sas=[
            sa_row(record, keys=keys) for record in select(records, mn_id=mn_id, spi=spi)]))
        return found

    def stats(_request: dict) -> dict:
        status = server.status()
        if server.config.workers > 1:
            status.update(worker=server.worker, workers=server.config.workers)
        if server.delivery is not None:
            status["sa_delivery"] = {"pending": server.delivery.pending,
                                     **dict(sorted(server.delivery.counters.items()))}
        return ok(**status)

    def revoke(request: dict) -> Any:
        spi = integer_argument(request, "spi", required=True)
        if server.config.sa_delivery is None:
            raise ControlError("revoke needs SA delivery ([sa_delivery] in the HAC's "
                               "config): without it no HA could be told")
        done = server.revoke(spi)
        done.addCallback(lambda known: ok(spi=spi, revoked=bool(known)))
        return done

    return {"sas": sas, "stats": stats, "revoke": revoke}
