"""The HA's binding cache (RFC 6275 §9.1, §10.3), sans-I/O: expiry runs on a clock passed in.

A binding maps a home address to where the MN is now. RFC 6618 carries everything in
UDP and allows NAT between MN and HA, so the care-of "address" kept here is the
outer source address *and* source port of the MN's last accepted Binding Update.

Lookups are by the packed octets of an address (16 for IPv6, 4 for IPv4), so the
data plane can look up the destination of a packet read from the TUN device without
building ``ipaddress`` objects. An MN may own one IPv6 and one IPv4 home address
(RFC 5555); both index the same binding. An IPv4-only MN's IPv6 home address is the
IPv4-mapped form ``::ffff:a.b.c.d``; it is indexed by its IPv4 octets.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

STALE_DEADLINES_KEPT = 64  # beyond twice the bindings, before the expiry heap is rebuilt


def address_key(address: IPv4Address | IPv6Address) -> bytes:
    """The lookup key of an address: IPv4 octets for IPv4 and IPv4-mapped IPv6, else 16 octets."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.packed
    return address.packed


class Binding:
    """One MN's registration: home addresses, care-of (host, port), BU sequence, lifetime, SPI."""

    __slots__ = ("home_address", "home_address4", "care_of", "sequence", "expires", "spi")

    def __init__(
        self,
        home_address: IPv6Address,
        care_of: tuple[str, int],
        sequence: int,
        expires: float,
        spi: int,
        home_address4: IPv4Address | None = None,
    ):
        self.home_address = home_address
        self.home_address4 = home_address4
        self.care_of = care_of
        self.sequence = sequence
        self.expires = expires
        self.spi = spi

    def __repr__(self) -> str:
        return (
            f"Binding({self.home_address}, ipv4={self.home_address4}, care_of={self.care_of}, "
            f"sequence={self.sequence}, expires={self.expires}, spi={self.spi})"
        )

    def keys(self) -> Iterator[bytes]:
        """Every address key this binding is found under."""
        yield address_key(self.home_address)
        if self.home_address4 is not None and self.home_address4 != self.home_address.ipv4_mapped:
            yield self.home_address4.packed


class BindingCache:
    """Bindings by home address and by care-of (host, port), with lifetime expiry.

    The care-of index serves PType 0 packets, which carry no SPI: the binding whose
    care-of address and port sent the packet tells whose it is. Expiry uses a heap
    of (expires, home key) entries; entries made stale by a refresh are skipped, and
    the heap is rebuilt from the live bindings once stale entries outnumber them (an
    MN refreshing every second would otherwise leave a lifetime's worth behind it).
    """

    def __init__(self):
        self._by_address: dict[bytes, Binding] = {}
        self._by_care_of: dict[tuple[str, int], Binding] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        # get_by_key(key) -> Binding | None: the binding of a home address given as its
        # packed octets (4 or 16). The index's own dict.get, so the per-packet lookups
        # cost no Python call.
        self.get_by_key = self._by_address.get

    def __len__(self) -> int:
        return len(self._by_care_of)  # one care-of entry per binding

    def __iter__(self) -> Iterator[Binding]:
        return iter(list(self._by_care_of.values()))

    def get(self, address: IPv4Address | IPv6Address) -> Binding | None:
        """The binding of a home address (IPv6, IPv4 or IPv4-mapped)."""
        return self._by_address.get(address_key(address))

    def get_by_care_of(self, care_of: tuple[str, int]) -> Binding | None:
        """The binding whose MN last registered from this (host, port)."""
        return self._by_care_of.get(care_of)

    def put(self, binding: Binding) -> None:
        """Add or replace the binding of ``binding.home_address``.

        A binding holding one of its home addresses, or its care-of (host, port) — one
        UDP socket belongs to one MN, so the other binding is stale — is removed.
        """
        holders = [self._by_address.get(key) for key in binding.keys()]
        holders.append(self._by_care_of.get(binding.care_of))
        for other in holders:
            if other is not None:
                self._unlink(other)
        for key in binding.keys():
            self._by_address[key] = binding
        self._by_care_of[binding.care_of] = binding
        if len(self._deadlines) >= 2 * len(self._by_care_of) + STALE_DEADLINES_KEPT:
            self._deadlines = [(live.expires, address_key(live.home_address))
                               for live in self._by_care_of.values() if live is not binding]
            heapq.heapify(self._deadlines)
        heapq.heappush(self._deadlines, (binding.expires, address_key(binding.home_address)))

    def remove(self, binding: Binding) -> None:
        """Delete ``binding`` if it is still in the cache."""
        self._unlink(binding)

    def expire(self, now: float) -> list[Binding]:
        """Remove and return every binding whose lifetime ended at or before ``now``."""
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, key = heapq.heappop(self._deadlines)
            binding = self._by_address.get(key)
            if binding is not None and binding.expires == deadline:
                self._unlink(binding)
                expired.append(binding)
        return expired

    def _unlink(self, binding: Binding) -> None:
        """Remove a binding from both indexes; a binding no longer linked is left alone."""
        if self._by_address.get(address_key(binding.home_address)) is not binding:
            return
        for key in binding.keys():
            if self._by_address.get(key) is binding:
                del self._by_address[key]
        if self._by_care_of.get(binding.care_of) is binding:
            del self._by_care_of[binding.care_of]
