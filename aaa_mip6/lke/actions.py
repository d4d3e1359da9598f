"""What the LKE cores (:mod:`aaa_mip6.lke.ar`, :mod:`aaa_mip6.lke.mn`) ask their shells to
do (send, bind, store) and to know (an LBSA ready or lost, a binding answered, a drop).

Both programs' shells (``mip6-ar``, the LKE part of ``mip6-mn``) share them, so they live
beside the cores in the library, as the Diameter peer's events do.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from ..actions import Action
from .lbsa import Lbsa


@dataclass(frozen=True, slots=True)
class SendIcmp(Action):
    """Send an ICMPv6 message (RA, NS, NA; checksum filled in) from ``source`` to
    ``destination`` on the core's link, hop limit 255. ``source`` may be ``::`` (a DAD probe)."""

    source: IPv6Address
    destination: IPv6Address
    data: bytes


@dataclass(frozen=True, slots=True)
class SendMobility(Action):
    """Send a Mobility Header (checksum filled in) from ``source`` to ``destination``,
    hop limit 255 (KE messages on the link; BU, BA and Finished routed)."""

    source: IPv6Address
    destination: IPv6Address
    data: bytes


@dataclass(frozen=True, slots=True)
class Drop(Action):
    """An input was refused or ignored (already counted under ``reason``)."""

    reason: str


# ------------------------------------------------------------------ the AR's


@dataclass(frozen=True, slots=True)
class StoreLbsa(Action):
    """Save this LBSA durably (replacing any saved one for its care-of address) before
    carrying out the actions after it."""

    lbsa: Lbsa


@dataclass(frozen=True, slots=True)
class ForgetLbsa(Action):
    """Delete the saved LBSA of ``care_of``: ``why`` is "expired", "replaced",
    "dad-failed" (and its reason in the counters) or "deregistered"."""

    care_of: IPv6Address
    why: str


@dataclass(frozen=True, slots=True)
class BindPrevious(Action):
    """Act as temporary home agent: tunnel packets addressed to ``previous`` (the MN's
    previous care-of address) to ``care_of`` until ``expires`` (the clock's scale), and
    accept packets the MN reverse-tunnels from ``care_of`` with source ``previous``.
    Replaces any binding of ``previous`` (a refresh, or a BU from yet another address)."""

    previous: IPv6Address
    care_of: IPv6Address
    expires: float


@dataclass(frozen=True, slots=True)
class UnbindPrevious(Action):
    """Stop tunneling for ``previous``: ``why`` is "deregistered", "expired" or "lbsa-gone"."""

    previous: IPv6Address
    why: str


# ------------------------------------------------------------------ the MN's


@dataclass(frozen=True, slots=True)
class LbsaReady(Action):
    """The MN holds a verified LBSA with the AR ``router`` (link-local address)."""

    router: IPv6Address
    lbsa: Lbsa


@dataclass(frozen=True, slots=True)
class LbsaLost(Action):
    """The MN dropped its LBSA (or gave up setting one up) with ``router``: ``why`` is a
    counter reason ("expired", "ke-timeout", "bad-ack", "ke-refused", "dad-impostor")."""

    router: IPv6Address
    why: str


@dataclass(frozen=True, slots=True)
class PreviousBound(Action):
    """The previous AR accepted the BU: it forwards ``previous`` to ``care_of`` for
    ``lifetime`` seconds (0: the binding was removed)."""

    router: IPv6Address
    previous: IPv6Address
    care_of: IPv6Address
    lifetime: int


@dataclass(frozen=True, slots=True)
class PreviousRefused(Action):
    """The previous AR refused the BU with BA status ``status`` (>= 128), or never answered
    (``status`` None)."""

    router: IPv6Address
    previous: IPv6Address
    status: int | None
