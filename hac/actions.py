"""What the HAC session core (:mod:`hac.core`) asks its shell to do (:class:`Send`,
:class:`AskAaa`, :class:`ProvisionSA`, :class:`Close`) and to know (:class:`Succeeded`,
:class:`Failed`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aaa_mip6.actions import Action
from aaa_mip6.suites import CipherSuite


@dataclass(frozen=True, slots=True)
class Send(Action):
    """Write ``data`` (one framed response) to the MN."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AskAaa(Action):
    """Relay ``eap_payload`` (an EAP-Response of the MN) to the AAA under ``user_name``;
    answer with aaa_answered() or aaa_failed()."""

    user_name: str
    eap_payload: bytes = field(repr=False)  # e.g. an EAP-GTC response is the password


@dataclass(frozen=True, slots=True)
class ProvisionSA(Action):
    """Create an SA for an authenticated MN; answer with provisioned() or provisioning_failed().

    ``attributes`` are the AAA's bootstrap values (EAP flow), which override local policy.
    """

    mn_id: str
    suite: CipherSuite
    requested_scope: int
    attributes: Mapping = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Succeeded(Action):
    """The MN received its SA."""

    spi: int
    suite: str


@dataclass(frozen=True, slots=True)
class Failed(Action):
    """The session ended with ``status``; ``reason`` is for the HAC's log only, never sent."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Close(Action):
    """Close the connection; nothing more will be sent."""
