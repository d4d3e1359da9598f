"""The verbs of the HA's control socket (``control.socket``): ``bindings``, ``sas``,
``stats`` and ``flush``; the CLI side is :mod:`ha.verbs`. SA keys never leave the HA."""

from __future__ import annotations

from aaa_mip6.addresses import format_host_port
from aaa_mip6.control import ControlError, integer_argument, ok


def handlers(server) -> dict:
    """verb -> handler for the HA ``server`` (:class:`ha.server.HomeAgentServer`)."""

    def bindings(_request: dict) -> dict:
        now = server.clock()
        return ok(bindings=sorted((
            {"home_address": str(binding.home_address),
             "home_address4": None if binding.home_address4 is None
             else str(binding.home_address4),
             "care_of": format_host_port(*binding.care_of), "spi": binding.spi,
             "sequence": binding.sequence, "expires_in": max(0, int(binding.expires - now))}
            for binding in server.core.bindings), key=lambda row: row["home_address"]))

    def sas(request: dict) -> dict:
        spi = integer_argument(request, "spi")
        return ok(sas=sorted((
            {"spi": sa.spi, "mn_id": sa.mn_id, "suite": sa.suite, "scope": sa.scope,
             "home_address6": None if sa.home_address6 is None else str(sa.home_address6),
             "home_address4": None if sa.home_address4 is None else str(sa.home_address4),
             "valid_until": sa.validity_end.isoformat().replace("+00:00", "Z"),
             "revoked": sa.revoked}
            for sa in server.core.sas if spi is None or sa.spi == spi),
            key=lambda row: row["spi"]))

    def stats(_request: dict) -> dict:
        return ok(**server.status())

    def flush(request: dict) -> dict:
        spi = integer_argument(request, "spi", required=True)
        if not server.flush(spi):
            raise ControlError(f"SA {spi} is not held by this HA")
        return ok(spi=spi, flushed=True)

    return {"bindings": bindings, "sas": sas, "stats": stats, "flush": flush}
