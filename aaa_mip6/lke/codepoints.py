"""The code points of the Local Key Exchange messages and options (docs/lke.md, "Code points").

draft-liu-mobileip-lke-01 (2003) numbered its Mobility Header types 8/9/10, its mobility
options 3-6 and its Neighbor Discovery options 6-8 from the registries' next free values;
every one of them has since been assigned to another protocol (MH 8-10 are FMIPv6's,
RFC 5568; mobility options 3 and 4 are RFC 6275's Alternate Care-of Address and Nonce
Indices, 6 is RFC 3963's Mobile Network Prefix; ND option 6 is RFC 2491's, 7 and 8 are
RFC 6275's Advertisement Interval and Home Agent Information). So the profile's default,
:data:`EXPERIMENTAL`, uses code points no standard protocol sends:

- ND options: RFC 4727 sets 253 and 254 aside for experiments. The DAD Authentication
  Request only ever rides in a Neighbor Solicitation and the Reply only in a Neighbor
  Advertisement, with the same layout, so both share 254 and the ICMPv6 type tells them
  apart; 253 is the LKE Capability option.
- MH types and mobility options: RFC 5096 reserves ONE experimental MH type (11) and ONE
  experimental mobility option (18), too few for three messages and four options
  without a sub-type octet the draft's layouts lack. The profile takes values from the
  unassigned top of both registries instead (MH types 252-254, options 250-253), far
  from where IANA assigns next; the draft's HMAC option (type 5) is read as RFC 6275's
  Binding Authorization Data option, so it keeps 5.

:data:`DRAFT` is the draft's own numbering, for talking to another implementation of
the draft; the care-of address option it lacks (docs/lke.md) keeps its experimental value.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

BINDING_AUTHORIZATION_DATA = 5  # RFC 6275 §6.2.7 mobility option


@dataclass(frozen=True, slots=True)
class CodePoints:
    """Which number each LKE message and option goes by on the wire."""

    ke_request: int = 253  # MH type: Key Exchange Request (draft §3.2.1: 8)
    ke_ack: int = 254  # MH type: Key Exchange Acknowledgement (draft §3.2.2: 9)
    finished: int = 252  # MH type: Finished (draft §3.2.4: 10)
    requested_lifetime: int = 250  # mobility option in the KE Request (draft: 3)
    ar_address: int = 251  # mobility option: AR global address, in the KE Ack (draft: 4)
    ke_hmac: int = BINDING_AUTHORIZATION_DATA  # mobility option: HMAC of the KE Ack (draft: 5)
    finished_request: int = 252  # mobility option in the BA (draft §3.2.3: 6)
    care_of_address: int = 253  # mobility option: the LBSA's care-of address (not in the draft)
    capability: int = 253  # ND option in the RA: LKE Capability (draft §3.1.1: 6)
    dad_request: int = 254  # ND option in the NS: DAD Authentication Request (draft §3.1.2: 7)
    dad_reply: int = 254  # ND option in the NA: DAD Authentication Reply (draft §3.1.3: 8)

    def __post_init__(self):
        for value in astuple(self):
            if not 0 <= value <= 255:
                raise ValueError(f"a code point must be 0..255, got {value}")
        mh_types = {self.ke_request, self.ke_ack, self.finished}
        if len(mh_types) != 3 or mh_types & {5, 6, 7}:
            raise ValueError("the three LKE MH types must differ from each other and from 5-7")
        options = [self.requested_lifetime, self.ar_address, self.ke_hmac,
                   self.finished_request, self.care_of_address]
        if len(set(options)) != len(options) or {0, 1} & set(options):
            raise ValueError("the LKE mobility options must differ and not be Pad1/PadN")
        if self.capability in (self.dad_request, self.dad_reply):
            raise ValueError("the LKE Capability option must differ from the DAD options")


EXPERIMENTAL = CodePoints()
DRAFT = CodePoints(ke_request=8, ke_ack=9, finished=10, requested_lifetime=3, ar_address=4,
                   ke_hmac=5, finished_request=6, capability=6, dad_request=7, dad_reply=8)
