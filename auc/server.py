"""The AuC's Twisted shell: datagrams in, replies out, SQN changes durable in between."""

from __future__ import annotations

import logging

from twisted.internet.protocol import DatagramProtocol

from .core import AuthenticationCentre
from .db import SqnState

log = logging.getLogger("mip6.auc")
MAX_REQUEST = 1000  # hlr_auc_gw's requests are a few hundred octets at most


class AucProtocol(DatagramProtocol):
    def __init__(self, centre: AuthenticationCentre, state: SqnState | None):
        self.centre = centre
        self.state = state

    def datagramReceived(self, data: bytes, address) -> None:
        if len(data) > MAX_REQUEST:
            log.warning("request of %d octets from %s dropped", len(data), address)
            return
        request = data.decode("ascii", "replace")
        reply = self.centre.handle(request)
        subject = " ".join(request.split()[:2])[:64]
        if reply.reason:
            log.warning("%s: %s", subject, reply.reason)
        else:
            log.info("%s: %s", subject, "answered" if reply.text else "resynchronised")
        if reply.sqn_changes and self.state is not None:
            try:
                self.state.commit(reply.sqn_changes)
            except OSError as error:
                log.error("cannot store SQN (%s): vector withheld", error)
                return
        if reply.text is not None and address:
            self.transport.write(reply.text.encode("ascii"), address)
