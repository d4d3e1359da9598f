"""EAP-AKA (RFC 4187) on the MN: AKA-Identity rounds (kept for AT_CHECKCODE), the Challenge
through the USIM's Milenage (AUTN verified, SQN fresh, else AUTS for resynchronisation) and,
through the shared peer, pseudonyms and fast re-authentication. EAP-AKA' (``aka_prime``)
differs only where :class:`AkaPeer` asks ``prime``."""

from __future__ import annotations

from aaa_mip6 import simaka
from aaa_mip6.errors import ConfigError
from aaa_mip6.milenage import MilenageError
from aaa_mip6.simaka import At, Message, Subtype

from . import register
from .simaka_peer import REQUEST, RESPONSE, MethodFailed, SimAkaPeer

# TS 33.102 Annex C.2.2: an SQN more than this far ahead of the USIM's is not accepted.
SQN_DELTA = 1 << 28


@register
class AkaPeer(SimAkaPeer):
    name = "aka"
    type = simaka.EAP_AKA
    prefix = "0"
    prime = False

    def __init__(self, credentials):
        super().__init__(credentials)
        if self.subscriber.milenage is None:
            raise ConfigError(f"--eap {self.name} needs --usim (Milenage); --sim-triplets "
                              "serves --eap sim only")
        self.identity_packets: list[bytes] = []

    def challenge_round(self, identifier: int, message: Message) -> Message:
        if message.subtype == Subtype.AKA_IDENTITY:
            return self._identity(identifier, message)
        if message.subtype == Subtype.AKA_CHALLENGE:
            return self._challenge(identifier, message)
        raise self._fail(f"unexpected EAP-AKA subtype {message.subtype}")

    def _reject(self, text: str) -> MethodFailed:
        return MethodFailed(text, Message(Subtype.AKA_AUTHENTICATION_REJECT))

    def _packet(self, code: int, identifier: int, message: Message) -> bytes:
        data = message.encode()
        return bytes([code, identifier]) + (5 + len(data)).to_bytes(2, "big") + bytes(
            [self.type]) + data

    def _identity(self, identifier: int, message: Message) -> Message:
        identity = self._identity_for(message)
        if identity is None:
            raise self._fail("AKA-Identity request that asks for no identity")
        self.identity_sent = identity
        reply = Message(Subtype.AKA_IDENTITY).add(At.IDENTITY,
                                                  simaka.counted_value(identity.encode()))
        self.identity_packets += [self._packet(REQUEST, identifier, message),
                                  self._packet(RESPONSE, identifier, reply)]
        return reply

    def derive(self, message: Message, ck: bytes, ik: bytes, autn: bytes) -> simaka.Keys:
        identity = (self.identity_sent or self.permanent).encode()
        return simaka.keys_from_mk(simaka.aka_mk(identity, ik, ck))

    def check_bidding(self, message: Message) -> None:
        """RFC 9048 §4: AT_BIDDING with the D bit from a server that also runs EAP-AKA' while
        this peer does too is a bidding-down attack: behave as if AT_MAC failed."""
        bidding = simaka.short(message, At.BIDDING)
        if bidding is not None and bidding & simaka.BIDDING_SUPPORTS_AKA_PRIME \
                and self.credentials.aka_prime_capable:
            raise self._fail("the server supports EAP-AKA' but offered EAP-AKA (bidding down)")

    def _challenge(self, identifier: int, message: Message) -> Message:
        rand = simaka.fixed(message, At.RAND, 16)
        autn = simaka.fixed(message, At.AUTN, 16)
        if rand is None or autn is None:
            raise self._fail("AKA-Challenge without AT_RAND or AT_AUTN")
        milenage = self.subscriber.milenage
        try:
            sqn, vector = milenage.check_autn(rand, autn)
        except MilenageError:
            raise self._reject("AUTN does not verify: not our home network, or another "
                               "subscriber key") from None
        if not self._fresh(sqn):
            auts = milenage.auts(rand, self.state.sqn)
            reply = Message(Subtype.AKA_SYNCHRONIZATION_FAILURE).add(At.AUTS, auts)
            if self.prime:
                reply.add(At.KDF, simaka.short_value(simaka.KDF_AKA_PRIME))
            raise MethodFailed(f"SQN {sqn.hex()} is not fresh (USIM at {self.state.sqn.hex()}):"
                               " resynchronising", reply, reason="resync")
        self.keys = self.derive(message, vector.ck, vector.ik, autn)
        self.verify(identifier, message)
        self.check_bidding(message)
        checkcode = message.get(At.CHECKCODE)
        expected = simaka.checkcode(self.type, self.identity_packets)
        if checkcode is not None and checkcode != expected:
            raise self._fail("AT_CHECKCODE does not match the identity rounds")
        self.state.accept_sqn(sqn)
        self.learn_identities(simaka.decrypt(self.keys.k_encr, message), full_authentication=True)
        reply = Message(Subtype.AKA_CHALLENGE).add(At.RES, simaka.counted_value(
            vector.res, unit_bits=True))
        if checkcode is not None:
            reply.add(At.CHECKCODE, expected)
        if message.has(At.RESULT_IND):
            reply.add(At.RESULT_IND, bytes(2))
        reply = self.sign(identifier, reply)
        self.finish(self.keys.msk)
        return reply

    def _fresh(self, sqn: bytes) -> bool:
        """TS 33.102 Annex C: above the highest SQN accepted, and not too far above it."""
        new, old = int.from_bytes(sqn, "big"), int.from_bytes(self.state.sqn, "big")
        return old < new <= old + SQN_DELTA
