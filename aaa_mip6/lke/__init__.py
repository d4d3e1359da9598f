"""Local Key Exchange (draft-liu-mobileip-lke-01; the profile is docs/lke.md), sans-I/O.

An MN and its access router (AR) set up a Local Binding Security Association (LBSA)
while both are on one link; after the MN moves, a Binding Update under the LBSA makes the
previous AR a temporary home agent for the MN's previous care-of address. This package
holds the codecs and both sides' rules; the shells (``ar/`` for ``mip6-ar``, ``mn/lke*.py``)
move the bytes and keep the timers.

Public API (stable; changes are noted at the end of this docstring):

:mod:`.codepoints` -- ``CodePoints`` (frozen dataclass: ``ke_request``, ``ke_ack``,
``finished`` MH types; ``requested_lifetime``, ``ar_address``, ``ke_hmac``,
``finished_request``, ``care_of_address`` mobility options; ``capability``,
``dad_request``, ``dad_reply`` ND options), ``EXPERIMENTAL`` (the default) and
``DRAFT`` (the draft's 8/9/10, 3-6, 6-8). Every codec takes ``codes=EXPERIMENTAL``.

:mod:`.messages` -- the Mobility Header messages. Addresses are carried inside the MH in a
Care-of Address mobility option (Linux drops the draft's Home Address option / type 2
Routing header without an xfrm state); every MH is given to ``decode`` without the IPv6
header, with its source and destination (checksum pseudo-header, HMAC input):

- ``KeyExchangeRequest(sequence, care_of, requested_lifetime, key_exchange_data)``:
  ``.encode(source, destination, codes)``; ``.decode(data, source, destination, codes,
  key_octets)`` (``key_octets``: the AR key's modulus length in octets).
- ``KeyExchangeAck(status, sequence, lifetime, care_of, ar_address)``,
  ``LkeBindingUpdate(sequence, lifetime, previous, flags=A|H)``,
  ``LkeBindingAck(status, sequence, lifetime, previous, finished_nonce=None)``,
  ``Finished(status, sequence, lifetime, nonce, previous)``: each ``.encode(source,
  destination, kbm, codes) -> bytes`` (HMAC/authenticator computed) and
  ``Cls.decode(data, source, destination, codes) -> Cls`` (format and checksum only);
  then ``decoded.verify(kbm)`` raises :class:`~aaa_mip6.errors.LkeAuthenticationError`.
  Lifetimes are in 4-second units (``*_seconds`` properties); ``decode_mobility(data,
  source, destination, codes, key_octets=None)`` dispatches on the MH type.
- ``KeAckStatus`` (IntEnum), ``mh_type(data)``.

:mod:`.nd` -- ICMPv6 Neighbor Discovery: ``RouterAdvertisement``, ``NeighborSolicitation``,
``NeighborAdvertisement`` (``.encode(source, destination, codes, kbm=None)``: a
``DadAuthentication`` option among the options gets its HMAC from ``kbm``), options
``PrefixInformation``, ``LinkLayerAddress(option_type, address)``, ``LkeCapability(
max_lifetime, public_key)``, ``DadAuthentication(nonce, ar_address)``, ``UnknownNdOption``;
``decode_nd(data, source, destination, codes)``; ``verify_dad(message, kbm)``.

:mod:`.crypto` -- ``generate_key(bits)``, ``encode_public_key(key)`` (SubjectPublicKeyInfo
DER), ``decode_public_key(der, min_bits, max_bits)``, ``encode_private_key`` /
``decode_private_key`` (PKCS#8 PEM), ``wrap_kbm(public_key, kbm, care_of)`` /
``unwrap_kbm(private_key, data, care_of)`` (RSA-OAEP SHA-256, label = the care-of address),
``hmac_sha1(key, data)``.

:mod:`.lbsa` -- ``Lbsa`` (frozen record; ``encode()``/``decode()`` for the AR's store).

:mod:`.actions` -- ``SendIcmp(source, destination, data)``, ``SendMobility(source,
destination, data)``, ``Drop(reason)``; the AR's ``StoreLbsa(lbsa)``,
``ForgetLbsa(care_of, why)``, ``BindPrevious(previous, care_of, expires)``,
``UnbindPrevious(previous, why)``; the MN's ``LbsaReady(router, lbsa)``,
``LbsaLost(router, why)``, ``PreviousBound(router, previous, care_of, lifetime)``,
``PreviousRefused(router, previous, status)``.

:mod:`.ar` -- ``ArPolicy`` (settings of one link) and ``ArCore(policy, private_key, *,
random=os.urandom)``, one per link. Inputs, each returning a list of actions:
``router_advertisement(now)`` (the RA to send, periodically and on a Router
Solicitation), ``icmp_received(data, source, destination, hop_limit, now)`` (NS, NA, RS),
``mobility_received(data, source, destination, hop_limit, now)`` (KE Request, BU,
Finished), ``restore(lbsas, now)`` (saved LBSAs at start), ``handle_timer(now)``;
``timer()``; ``lbsas``, ``bindings``, ``counters`` (reasons in docs/lke.md).

:mod:`.mn` -- ``MnPolicy`` and ``MnCore(policy, *, random=os.urandom)``. Inputs:
``icmp_received(data, source, destination, hop_limit, now)`` (RAs: learn LKE-capable
ARs; DAD NS/NA for the MN's care-of address), ``mobility_received(...)`` (KE Ack, BA),
``key_exchange(care_of, link_local, now, *, router=None)`` (after the home registration:
start the LKE from ``link_local`` with the chosen AR), ``moved(care_of, now)`` (BUs to the previous AR(s)),
``handle_timer(now)``; ``timer()``; ``routers``, ``lbsas``, ``counters``.

Changes: ``MnCore.key_exchange`` takes the MN's link-local address (the KE Request's
source) after ``care_of`` (05:15 UTC). ``MnPolicy(link_layer_address=...)`` is the MN's
Target Link-Layer Address; ``ArPolicy(link_local, ar_address, prefixes, ...)``.
``MnPolicy.link_layer_address`` may also be a callable care-of address -> bytes | None
(05:17 UTC). ``ArCore.lbsas`` lists only DAD-confirmed (valid) LBSAs.
"""
