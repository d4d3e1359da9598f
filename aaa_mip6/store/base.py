"""The SA store interface: what the HAC keeps so an acknowledged SA survives a crash.

RFC 6618 §4.3 asks the HAC to keep SAs in non-volatile storage. A store also hands
out the two things that must be unique across every HAC instance sharing it: SPIs
(1..268435455, never reused while the SA holding one is still valid) and home
addresses (one per MN and prefix, stable for a returning MN). With several HACs it also
holds what they share besides SAs: the outbox of SA deliveries owed to HAs (claimed by
one HAC at a time, see :meth:`SAStore.claim_outbox`), the TLS session-ticket keys, and
which HAC can reach which HA.

Every method may block: on disk I/O with an fsync for SQLite, on the network for
PostgreSQL. The Twisted shells call the PostgreSQL store from a thread pool; the
SQLite store is fast enough (about a millisecond per commit) to call directly.
A store object is safe to share between threads.
"""

from __future__ import annotations

import contextlib
import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from aaa_mip6.errors import (  # noqa: F401 (the store's error tree, re-exported)
    AddressPoolExhausted, SPIExhausted, StoreError, StoreUnavailable,
)
from aaa_mip6.sa import HomeAgent, IPAddress, SecurityAssociation

UNALLOCATED_SPI = 0  # the spi of an SA template passed to SAStore.create
TICKET_KEY_SIZE = 80  # OpenSSL's ticket key: 16 octets name, 32 HMAC key, 32 AES key

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Outbox:
    """An SA-Push or SA-Revoke owed to the HA ``destination`` (its Diameter Origin-Host),
    written in the same transaction as the SA (or its revocation). ``claimed_by`` (a
    delivering HAC's Origin-Host) takes it at once until ``claimed_until`` (POSIX
    seconds); unclaimed, any HAC with a route to ``destination`` claims it."""

    destination: str
    claimed_by: str | None = None
    claimed_until: int = 0


@dataclass(frozen=True, slots=True)
class SARecord:
    """An SA as stored: the SA plus who assigned it and which HA serves it."""

    sa: SecurityAssociation
    hac_instance: str  # name of the HAC instance that provisioned the SA
    home_agent: HomeAgent | None  # the HA the MN was told to use
    created: datetime  # timezone-aware UTC, whole seconds


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An owed message as claimed: a push or a revocation of ``record``."""

    record: SARecord
    revoke: bool


class SAStore(ABC):
    """Durable SAs, SPI allocation and home-address allocation."""

    @abstractmethod
    def create(self, template: SecurityAssociation, *, hac_instance: str,
               home_agent: HomeAgent | None, outbox: Outbox | None = None) -> SARecord:
        """Store ``template`` under a freshly allocated SPI and return the record.

        With ``outbox``, an SA-Push of it is owed (:meth:`claim_outbox`), committed with
        the SA in one transaction: an SA the HAC acknowledged is pushed or still owed.

        ``template.spi`` must be :data:`UNALLOCATED_SPI`. The SPI is unique among all
        SAs that are still valid (revoked ones included); an expired SA's SPI may be
        taken over. The row is durably committed before this returns (inside
        :meth:`group_commit`, once that exits), so the SA may then be sent to the MN. Raises :class:`SPIExhausted` when no free SPI
        is found.
        """

    @abstractmethod
    def get(self, spi: int) -> SARecord | None:
        """The SA stored under ``spi`` (expired and revoked ones too), or None."""

    @abstractmethod
    def revoke(self, spi: int, *, outbox: Outbox | None = None) -> bool:
        """Mark the SA revoked; False if there is none. Its SPI stays held until it expires.
        With ``outbox``, an SA-Revoke is owed in the same transaction (replacing a push
        still owed), so it survives a HAC restart until its HA acknowledges it."""

    @abstractmethod
    def claim_outbox(self, claimer: str, destinations: Iterable[str], until: int,
                     limit: int) -> list[OutboxEntry]:
        """Claim up to ``limit`` owed messages to ``destinations`` that nobody holds (or
        whose claim lapsed) for ``claimer`` until ``until``; on PostgreSQL with
        ``FOR UPDATE SKIP LOCKED``, so HACs claiming at once never wait for or take each
        other's rows. An owed message that no longer applies (a push of a revoked SA,
        the SA purged) is dropped instead."""

    @abstractmethod
    def renew_outbox(self, claimer: str, spis: Iterable[int], until: int) -> int:
        """Extend ``claimer``'s claims on ``spis`` (what it still holds) to ``until``; how
        many it renewed. A claim it forgot (a store error at the wrong time) lapses."""

    @abstractmethod
    def release_outbox(self, claimer: str, spi: int | None = None) -> None:
        """Give back ``claimer``'s claim on ``spi`` (all its claims: None) to any HAC."""

    @abstractmethod
    def outbox_done(self, claimer: str, done: Iterable[tuple[int, bool]]) -> int:
        """The HAs acknowledged (or the SAs expired): forget what ``claimer`` owed, each
        ``(spi, revoke)`` of ``done`` in one statement, except what a newer message
        replaced or another HAC took over; how many were forgotten."""

    @abstractmethod
    def outbox_size(self) -> int:
        """Messages still owed to HAs."""

    @abstractmethod
    def ticket_key(self, started: int, lifetime: int) -> bytes:
        """The TLS session-ticket key of the ``lifetime``-second period starting at
        ``started`` (POSIX seconds), created by the first HAC to ask: every HAC sharing
        the store gets the same :data:`TICKET_KEY_SIZE` bytes, so any of them resumes any
        MN's ticket. Keys of periods that ended a period ago are deleted. A secret: never
        logged."""

    @abstractmethod
    def report_routes(self, reporter: str, reachable: dict[str, bool], until: int) -> None:
        """``reporter`` (a delivering HAC) can reach (True) or not (False) each HA of
        ``reachable`` (by Origin-Host); the report holds until ``until`` (POSIX seconds)."""

    @abstractmethod
    def unreachable(self) -> set[str]:
        """The HAs that some live report names and none can reach: no HAC could deliver
        their SAs now."""

    @abstractmethod
    def home_agent_load(self) -> dict[HomeAgent, int]:
        """Active (unrevoked, unexpired) SAs per HA they were assigned to."""

    @abstractmethod
    def active(self) -> list[SARecord]:
        """Every SA that is neither revoked nor expired, ordered by SPI."""

    @abstractmethod
    def count_active(self) -> int:
        """How many SAs are neither revoked nor expired (for the metrics: cheaper than
        :meth:`active`)."""

    @abstractmethod
    def purge_expired(self) -> list[SARecord]:
        """Delete expired SAs (revoked or not); return the records deleted (for the HAC's
        accounting Stop of each; with several HACs on one store, each row goes to one)."""

    @abstractmethod
    def home_address(self, mn_id: str, prefix: IPNetwork | str, *,
                     exclude: Iterable[IPAddress] = ()) -> IPAddress:
        """The home address of ``mn_id`` in ``prefix``, assigned on first request.

        A returning MN gets the same address; no address is ever given to two MNs.
        Never assigned: the subnet-router anycast address of an IPv6 prefix, the
        network and broadcast addresses of an IPv4 subnet, and ``exclude`` (e.g. the
        HA's own address). Raises :class:`AddressPoolExhausted` when no address is left
        and :class:`aaa_mip6.errors.ConfigError` for a prefix without host addresses.
        """

    @contextlib.contextmanager
    def group_commit(self) -> Iterator[Callable[[], contextlib.AbstractContextManager]]:
        """Writes made inside are durable together once it exits (one transaction: one
        commit, one fsync, for several SAs); nothing is durable if it raises. It yields
        ``each``: wrap one SA's writes in ``with each():`` so that if they raise, only
        they are undone. This default commits every write on its own."""
        yield contextlib.nullcontext

    @abstractmethod
    def close(self) -> None:
        """Release the database connection."""

    def __enter__(self) -> SAStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
