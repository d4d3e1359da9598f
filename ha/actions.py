"""What the HA core asks its shell to do (:class:`SendDatagram`, :class:`WriteTun`,
:class:`FetchSA`, :class:`PersistSequences`) and to know (:class:`Drop`,
:class:`Registered`, :class:`Deregistered`).

NamedTuples rather than frozen dataclasses: the per-packet ones are built once per
packet, and cost a fifth as much.
"""

from __future__ import annotations

from typing import NamedTuple

from aaa_mip6.actions import Action

from .bindings import Binding


@Action.register
class SendDatagram(NamedTuple):
    """Send ``data`` in one UDP datagram to ``host``:``port``."""

    host: str
    port: int
    data: bytes


@Action.register
class WriteTun(NamedTuple):
    """Write one IP packet to the home network's TUN device."""

    packet: bytes


@Action.register
class FetchSA(NamedTuple):
    """Look the SPI up in the SA source and the ledger; answer with sa_found()."""

    spi: int


@Action.register
class PersistSequences(NamedTuple):
    """Durably save the SA's sequence marks before carrying out the next action."""

    spi: int
    validity_end: float
    inbound_floor: int
    outbound_next: int


@Action.register
class Drop(NamedTuple):
    """A packet was silently dropped (already counted under ``reason``)."""

    reason: str


@Action.register
class Registered(NamedTuple):
    """A binding was created or refreshed (for the log)."""

    binding: Binding


@Action.register
class Deregistered(NamedTuple):
    """A binding went away: ``why`` is "deregistered", "expired" or "revoked"."""

    binding: Binding
    why: str
