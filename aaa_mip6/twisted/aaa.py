"""The AAA-backend interface the HAC relays EAP through, on Twisted Deferreds.

Its answers and errors are sans-I/O values of :mod:`aaa_mip6.aaa`; the backends are
:class:`~aaa_mip6.twisted.radius_client.RadiusClient` and
:class:`~aaa_mip6.twisted.diameter_eap.DiameterEapBackend`.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from ..aaa import AaaAnswer, AaaSession


class AaaBackend(Protocol):
    """What the HAC needs from an AAA client, whatever the protocol."""

    def authenticate(self, session: AaaSession, eap_payload: bytes) -> Deferred[AaaAnswer]:
        """Send one EAP-Response of ``session``; fire with the answer or fail with AaaError,
        or at once, having sent nothing, with :class:`~aaa_mip6.errors.AaaLimitError` when
        no request of the protocol can carry it (the MN's fault: the HAC answers 400).

        Updates ``session.state`` for the next round.
        """

    def stop(self) -> Deferred[None]:
        """Fail outstanding calls with AaaUnavailable and release sockets and timers."""
