"""TLS session-ticket keys shared through the store, so any HAC resumes any MN's ticket.

Time is cut into periods of ``tls.ticket_key_lifetime`` seconds from the POSIX epoch
(:func:`periods`), the same on every host. The first HAC to ask for a period's key
creates it in the store (:meth:`aaa_mip6.store.SAStore.ticket_key`); the others read the
same one. Each HAC process reads the current and the next period's key before it
listens, then again every quarter period in the store's thread, and hands them to its
:class:`~aaa_mip6.twisted.tls.ServerTLS`, which switches at each period's start: a ticket
resumes on every HAC until the period ends, then the MN does one full handshake. With the
store out of reach the last key stays in use. Keys are secrets: never logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from twisted.internet import defer
from twisted.internet.task import LoopingCall

from aaa_mip6.store import SAStore, StoreError
from aaa_mip6.twisted.tls import ServerTLS, ticket_key_setter

log = logging.getLogger(__name__)


def periods(now: float, lifetime: float) -> tuple[int, int]:
    """The start of the period holding ``now`` and of the next one (POSIX seconds)."""
    length = max(1, int(lifetime))
    current = math.floor(now / length) * length
    return current, current + length


class SharedTicketKeys:
    """Keeps ``tls``'s ticket keys those of the store, period after period."""

    def __init__(self, store: SAStore, tls: ServerTLS, lifetime: float, reactor,
                 in_store_thread: Callable[..., defer.Deferred],
                 clock: Callable[[], float]):
        self.store = store
        self.tls = tls
        self.lifetime = max(1, int(lifetime))
        self._in_store_thread = in_store_thread
        self._clock = clock
        self._refresh = LoopingCall(self.fetch)
        self._refresh.clock = reactor

    @staticmethod
    def available() -> bool:
        """Whether this OpenSSL build can take keys (else say once why not)."""
        control, why = ticket_key_setter()
        if control is None:
            log.warning("TLS ticket keys cannot be shared (%s): each HAC process rotates "
                        "its own, so a ticket resumes only on the process that issued it",
                        why)
        return control is not None

    def load(self) -> None:
        """Fetch the keys now, blocking (before the HAC listens, so that its first ticket
        is sealed with the shared key already); a store error is logged, and the
        process's own keys serve until a refresh succeeds."""
        try:
            self._use(self._keys_now())
        except StoreError as error:
            log.warning("TLS ticket keys not read from the store (this process's own serve "
                        "until they are): %s", error)

    def start(self) -> None:
        """Fetch the keys again every quarter period."""
        self._refresh.start(self.lifetime / 4, now=False)

    def stop(self) -> None:
        if self._refresh.running:
            self._refresh.stop()

    def fetch(self) -> defer.Deferred:
        """The current and the next period's keys from the store, given to ``tls``."""
        fetched = self._in_store_thread(self._keys_now)
        fetched.addCallbacks(self._use, lambda failure: log.warning(
            "TLS ticket keys not refreshed from the store (the last stay in use): %s",
            failure.getErrorMessage()))
        return fetched

    def _keys_now(self) -> list[tuple[int, bytes]]:
        """The current and the next period's keys (blocks on the store)."""
        return [(start, self.store.ticket_key(start, self.lifetime))
                for start in periods(self._clock(), self.lifetime)]

    def _use(self, keys: list[tuple[int, bytes]]) -> None:
        for start, key in keys:
            self.tls.use_ticket_key(start, key)
