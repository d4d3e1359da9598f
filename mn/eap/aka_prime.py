"""EAP-AKA' (RFC 5448 as updated by RFC 9048) on the MN: EAP-AKA with CK'/IK' bound to the
access network name (AT_KDF_INPUT), PRF' keys, HMAC-SHA-256 AT_MAC and SHA-256 AT_CHECKCODE.
Only KDF 1 exists; a server that offers another first gets it refused by asking for 1."""

from __future__ import annotations

from aaa_mip6 import simaka
from aaa_mip6.simaka import At, Message, Subtype

from . import register
from .aka import AkaPeer
from .simaka_peer import MethodFailed


@register
class AkaPrimePeer(AkaPeer):
    name = "aka-prime"
    type = simaka.EAP_AKA_PRIME
    prefix = "6"
    prime = True

    def check_bidding(self, message: Message) -> None:
        """AT_BIDDING belongs to EAP-AKA; EAP-AKA' ignores it."""

    def derive(self, message: Message, ck: bytes, ik: bytes, autn: bytes) -> simaka.Keys:
        kdfs = [simaka.short(Message(0, [attribute]), At.KDF)
                for attribute in message.attributes if attribute[0] == At.KDF]
        if not kdfs:
            raise self._fail("AKA'-Challenge without AT_KDF")
        if kdfs[0] != simaka.KDF_AKA_PRIME:
            # RFC 5448 §3.2: answer with the KDF we support if the server offered it.
            if simaka.KDF_AKA_PRIME not in kdfs:
                raise self._reject(f"the server offers key derivations {kdfs}, not 1")
            raise MethodFailed("the server's first key derivation is not 1: asking for 1",
                               Message(Subtype.AKA_CHALLENGE).add(
                                   At.KDF, simaka.short_value(simaka.KDF_AKA_PRIME)),
                               reason="kdf-negotiation")
        name_value = message.get(At.KDF_INPUT)
        if name_value is None:
            raise self._fail("AKA'-Challenge without AT_KDF_INPUT")
        network = simaka.counted(name_value, At.KDF_INPUT)
        if not network:
            raise self._reject("AT_KDF_INPUT with an empty network name")
        expected = self.credentials.network_name
        if expected is not None and network != expected.encode():
            raise self._reject(f"network name {network.decode('utf-8', 'replace')!r} is not "
                               f"{expected!r} (--aka-network-name)")
        ck_prime, ik_prime = simaka.ck_ik_prime(ck, ik, network, autn[:6])
        identity = (self.identity_sent or self.permanent).encode()
        return simaka.aka_prime_keys(ck_prime, ik_prime, identity)
