"""RADIUS accounting of SAs (RFC 2866): Start when the HAC issues an SA, Stop when it is
revoked or, expired, purged from the store.

:func:`start_record` and :func:`stop_record` are pure: an SA record in, the
Accounting-Request's content out. :class:`Accounting` sends them with a
:class:`~aaa_mip6.twisted.radius_client.RadiusClient` on the accounting servers, which
retransmits and fails over as for access requests. A request no server answers is
logged and counted, never more: accounting never delays or fails a bootstrap or a
revocation. The session is the SA: Acct-Session-Id is its SPI in hex, User-Name the
MN-ID, Acct-Session-Time the seconds since the SA was created.
"""

from __future__ import annotations

import logging
from collections import Counter

from twisted.python.failure import Failure

from aaa_mip6.radius.codec import AccountingRecord, AcctStatus, TerminateCause
from aaa_mip6.store import SARecord

log = logging.getLogger(__name__)


def session_id(spi: int) -> str:
    """The Acct-Session-Id of the SA with ``spi``: 8 hex digits."""
    return f"{spi:08x}"


def start_record(record: SARecord, now: int) -> AccountingRecord:
    """Acct-Status-Type Start for the SA just stored; ``now`` in seconds since the epoch."""
    sa = record.sa
    return AccountingRecord(AcctStatus.START, session_id(sa.spi), sa.mn_id, now,
                            sa.home_address6, sa.home_address4)


def stop_record(record: SARecord, now: int, cause: TerminateCause) -> AccountingRecord:
    """Acct-Status-Type Stop for the SA that ends at ``now`` for ``cause``."""
    sa = record.sa
    elapsed = max(0, now - int(record.created.timestamp()))
    return AccountingRecord(AcctStatus.STOP, session_id(sa.spi), sa.mn_id, now,
                            sa.home_address6, sa.home_address4, elapsed, cause)


class Accounting:
    """Sends the Start and Stop of each SA to the accounting servers (``client``)."""

    def __init__(self, client, clock):
        self.client = client
        self._clock = clock  # seconds since the epoch
        self.counters: Counter[str] = Counter()

    def started(self, record: SARecord) -> None:
        self._send(start_record(record, int(self._clock())))

    def revoked(self, record: SARecord) -> None:
        self._send(stop_record(record, int(self._clock()), TerminateCause.ADMIN_RESET))

    def expired(self, record: SARecord) -> None:
        """The purged SA ended at its validity end; a revoked one had its Stop already."""
        if not record.sa.revoked:
            self._send(stop_record(record, int(record.sa.validity_end.timestamp()),
                                   TerminateCause.SESSION_TIMEOUT))

    def _send(self, accounting: AccountingRecord) -> None:
        name = accounting.status.name.lower()
        sent = self.client.account(accounting)
        sent.addCallbacks(lambda _: self._count(f"{name}-answered"),
                          lambda failure: self._failed(failure, accounting, name))

    def _count(self, name: str) -> None:
        self.counters[name] += 1

    def _failed(self, failure: Failure, accounting: AccountingRecord, name: str) -> None:
        self._count(f"{name}-failed")
        log.warning("RADIUS accounting %s of SA %s (mn-id=%s) not answered: %s",
                    accounting.status.name.capitalize(), accounting.session_id,
                    accounting.user_name, failure.getErrorMessage())

    def stop(self):
        """Stop the client: requests still unanswered fail (and are logged)."""
        return self.client.stop()
