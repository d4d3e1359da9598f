"""The AAA-backend interface the HAC relays EAP through (RFC 6618 §5.9, spec notes §4).

The HAC makes one :meth:`~aaa_mip6.twisted.aaa.AaaBackend.authenticate` call per EAP
round trip and gets a :class:`Challenge`, :class:`Accept` or :class:`Reject` back, or an
:class:`AaaError` it maps to a status code. Nothing here is RADIUS-specific, so a
Diameter EAP backend (RFC 4072) fits behind the same interface. The interface itself
returns Deferreds, so it is in :mod:`aaa_mip6.twisted.aaa`; these are its values.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import TypedDict

from .addresses import format_host_port

# The EAP MSK is 64 octets (RFC 3748 §7.10); EAP-MSCHAPv2 derives only 32.
MSK_LENGTHS = (32, 64)


@dataclass(slots=True)
class AaaSession:
    """One MN's EAP conversation with the AAA server, kept by the HAC across rounds.

    ``state`` belongs to the backend: what it must carry from one round to the
    next (for RADIUS the State attribute and the server that issued it; for
    Diameter the State AVP). The backend sets it from each answer; the HAC keeps
    it with the session and never looks inside. ``session_id`` names the
    conversation in logs and can serve as the Diameter Session-Id.
    """

    user_name: str  # the MN's mn-id (RFC 4282 NAI): RADIUS User-Name
    mn_address: ipaddress.IPv4Address | ipaddress.IPv6Address  # MN's TLS source address
    mn_port: int  # MN's TLS source port
    state: object | None = field(default=None, repr=False)
    session_id: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def calling_station_id(self) -> str:
        """The MN's TLS source as text: ``192.0.2.1:4433`` or ``[2001:db8::1]:4433``."""
        return format_host_port(self.mn_address, self.mn_port)


class BootstrapAttributes(TypedDict, total=False):
    """AAA-driven bootstrap values; a key is present only if the AAA sent it.

    They override the HAC's local policy (issue 5 item 3).
    """

    home_address_ip6: ipaddress.IPv6Address  # Framed-IPv6-Address (RFC 6911) -> mip6-ip6-hoa
    home_address_ip4: ipaddress.IPv4Address  # Framed-IP-Address (RFC 2865) -> mip6-ip4-hoa
    home_link_prefix: ipaddress.IPv6Network  # MIP6-Home-Link-Prefix (RFC 5447) -> mip6-ip6-hnp
    home_agent_ip6: ipaddress.IPv6Address  # assigned HA -> mip6-haa-ip6
    home_agent_ip4: ipaddress.IPv4Address  # assigned HA -> mip6-haa-ip4
    dns_ip6: ipaddress.IPv6Address  # DNS-Server-IPv6-Address (RFC 6911) -> dns-ip6
    session_timeout: int  # seconds (Session-Timeout): caps the SA lifetime


@dataclass(frozen=True, slots=True)
class Challenge:
    """The AAA wants another round: relay ``eap_payload`` (an EAP-Request) to the MN."""

    eap_payload: bytes


@dataclass(frozen=True, slots=True)
class Accept:
    """Authentication succeeded.

    ``eap_payload`` is the EAP-Success for the MN. ``msk`` is the EAP MSK (64
    octets; 32 for EAP-MSCHAPv2), or None if the method derives none (e.g.
    MD5-Challenge, GTC).
    """

    eap_payload: bytes
    msk: bytes | None = field(repr=False)
    attributes: BootstrapAttributes = field(default_factory=BootstrapAttributes)

    def __post_init__(self):
        if self.msk is not None and len(self.msk) not in MSK_LENGTHS:
            raise ValueError(f"an MSK has {' or '.join(map(str, MSK_LENGTHS))} octets, "
                             f"not {len(self.msk)}")


@dataclass(frozen=True, slots=True)
class Reject:
    """Authentication failed (HAC: 401); ``eap_payload`` is the EAP-Failure if the AAA sent one.

    ``reply_message`` is the AAA's text about it (RADIUS Reply-Message, RFC 2865 §5.18),
    for the HAC's log: RFC 6618 has no field to pass it on to the MN.
    """

    eap_payload: bytes | None = None
    reply_message: str | None = None

    @property
    def reason(self) -> str:
        """What the AAA said, in one log-safe line: its text (quoted) and the EAP-Failure."""
        said = [] if self.reply_message is None else [f"Reply-Message {self.reply_message!r}"]
        said.append("EAP-Failure" if self.eap_payload is not None else "no EAP-Failure")
        return f"the AAA rejected the MN: {', '.join(said)}"


AaaAnswer = Challenge | Accept | Reject


class AaaError(Exception):
    """The AAA round trip could not be completed; no answer about the MN."""


class AaaTimeout(AaaError):
    """No server answered in time (HAC: 504 Gateway Time-out)."""


class AaaUnavailable(AaaError):
    """Every AAA server is marked down (HAC: 503 with ``retry-after``)."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after  # seconds until a server may be back, >= 1
