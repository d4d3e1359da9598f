"""The MN's EAP peer (RFC 4137 style): one module per method behind one interface.

A method module defines a subclass of :class:`EapMethod` and registers it with
:func:`register`. The peer state machine (``mn.eap.peer``) answers Identity and
Notification itself, Naks methods it was not configured for, and hands the
rest to the configured method.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

from aaa_mip6.eap import EapError

METHODS: dict[str, type["EapMethod"]] = {}


@dataclass(frozen=True)
class EapCredentials:
    """What a user configures for EAP; secrets are kept out of repr."""

    identity: str  # the inner (real) identity
    password: str | None = field(default=None, repr=False)
    anonymous_identity: str | None = None  # outer identity for TTLS/PEAP
    client_cert: Path | None = None  # EAP-TLS
    client_key: Path | None = None
    ca_cert: Path | None = None  # verifies the EAP server certificate (TLS/TTLS/PEAP)
    phase2: str | None = None  # TTLS inner method: "pap" or "mschapv2"
    tls_max_version: str = "1.3"  # "1.2" or "1.3"
    usim: Path | None = None  # SIM/AKA/AKA': hlr_auc_gw Milenage line (IMSI Ki OPc AMF SQN)
    sim_triplets: Path | None = None  # SIM: hlr_auc_gw triplets (IMSI:Kc:SRES:RAND)
    eap_state: Path | None = None  # SIM/AKA/AKA': SQN, pseudonym, re-authentication state
    realm: str | None = None  # SIM/AKA/AKA': the realm of the permanent identity
    network_name: str | None = None  # AKA': the access network name AT_KDF_INPUT must carry
    aka_prime_capable: bool = True  # AKA: refuse a bidding-down (AT_BIDDING) to plain AKA


class EapMethod(abc.ABC):
    """One EAP method on the peer side.

    ``process`` takes the Type-Data of an EAP-Request of this method's type and
    returns the Type-Data of the EAP-Response. ``done`` becomes true once the
    method has finished on the peer side (RFC 4137 methodState DONE); ``msk``
    is then the 64-octet MSK if the method derives one.
    """

    name: str
    type: int

    def __init__(self, credentials: EapCredentials):
        self.credentials = credentials
        self.done = False
        self.msk: bytes | None = None

    @abc.abstractmethod
    def process(self, identifier: int, type_data: bytes) -> bytes:
        """Answer one request; raise aaa_mip6.eap.EapError on a malformed or failed request."""

    def identity(self) -> str:
        """The EAP-Response/Identity (RFC 3748 §5.1): the outer identity if configured."""
        return self.credentials.anonymous_identity or self.credentials.identity

    def process_after_done(self, identifier: int, type_data: bytes) -> bytes:
        """Answer a request of this method that comes after it is done; most methods refuse."""
        raise EapError("EAP method request after the method finished", reason="unexpected")


def register(cls: type[EapMethod]) -> type[EapMethod]:
    METHODS[cls.name] = cls
    return cls
