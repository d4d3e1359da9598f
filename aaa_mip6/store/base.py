"""The SA store interface: what the HAC keeps so an acknowledged SA survives a crash.

RFC 6618 §4.3 asks the HAC to keep SAs in non-volatile storage. A store also hands
out the two things that must be unique across every HAC instance sharing it: SPIs
(1..268435455, never reused while the SA holding one is still valid) and home
addresses (one per MN and prefix, stable for a returning MN).

Every method may block: on disk I/O with an fsync for SQLite, on the network for
PostgreSQL. The Twisted shells call the PostgreSQL store from a thread pool; the
SQLite store is fast enough (about a millisecond per commit) to call directly.
A store object is safe to share between threads.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from aaa_mip6.errors import (  # noqa: F401 (the store's error tree, re-exported)
    AddressPoolExhausted, SPIExhausted, StoreError, StoreUnavailable,
)
from aaa_mip6.sa import HomeAgent, IPAddress, SecurityAssociation

UNALLOCATED_SPI = 0  # the spi of an SA template passed to SAStore.create

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SARecord:
    """An SA as stored: the SA plus who assigned it and which HA serves it."""

    sa: SecurityAssociation
    hac_instance: str  # name of the HAC instance that provisioned the SA
    home_agent: HomeAgent | None  # the HA the MN was told to use
    created: datetime  # timezone-aware UTC, whole seconds


class SAStore(ABC):
    """Durable SAs, SPI allocation and home-address allocation."""

    @abstractmethod
    def create(self, template: SecurityAssociation, *, hac_instance: str,
               home_agent: HomeAgent | None) -> SARecord:
        """Store ``template`` under a freshly allocated SPI and return the record.

        ``template.spi`` must be :data:`UNALLOCATED_SPI`. The SPI is unique among all
        SAs that are still valid (revoked ones included); an expired SA's SPI may be
        taken over. The row is durably committed before this returns, so the SA may be
        sent to the MN as soon as it does. Raises :class:`SPIExhausted` when no free SPI
        is found.
        """

    @abstractmethod
    def get(self, spi: int) -> SARecord | None:
        """The SA stored under ``spi`` (expired and revoked ones too), or None."""

    @abstractmethod
    def revoke(self, spi: int) -> bool:
        """Mark the SA revoked; False if there is none. Its SPI stays held until it expires."""

    @abstractmethod
    def active(self) -> list[SARecord]:
        """Every SA that is neither revoked nor expired, ordered by SPI."""

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

    @abstractmethod
    def close(self) -> None:
        """Release the database connection."""

    def __enter__(self) -> SAStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
