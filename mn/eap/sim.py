"""EAP-SIM (RFC 4186) on the MN: Start rounds (version, NONCE_MT, the identity asked for), the
Challenge (2 or 3 RANDs through the SIM, MK, AT_MAC both ways) and, through the shared peer,
pseudonyms and fast re-authentication."""

from __future__ import annotations

import os

from aaa_mip6 import simaka
from aaa_mip6.simaka import At, ClientError, Message, Subtype

from . import register
from .simaka_peer import SimAkaPeer

VERSION = b"\x00\x01"  # RFC 4186 §10.2: the only version


@register
class SimPeer(SimAkaPeer):
    name = "sim"
    type = simaka.EAP_SIM
    prefix = "1"

    def __init__(self, credentials):
        super().__init__(credentials)
        self.nonce_mt: bytes | None = None
        self.version_list: bytes | None = None

    def challenge_round(self, identifier: int, message: Message) -> Message:
        if message.subtype == Subtype.SIM_START:
            return self._start(message)
        if message.subtype == Subtype.SIM_CHALLENGE:
            return self._challenge(identifier, message)
        raise self._fail(f"unexpected EAP-SIM subtype {message.subtype}")

    def _start(self, message: Message) -> Message:
        versions = message.get(At.VERSION_LIST)
        if versions is None:
            raise self._fail("SIM/Start without AT_VERSION_LIST")
        listed = simaka.counted(versions, At.VERSION_LIST)
        if VERSION not in [listed[i:i + 2] for i in range(0, len(listed) - 1, 2)]:
            raise self._fail("the server offers no EAP-SIM version 1",
                             ClientError.UNSUPPORTED_VERSION)
        self.version_list = listed
        reply = Message(Subtype.SIM_START)
        identity = self._identity_for(message)
        if identity is not None:
            self.identity_sent = identity
            reply.add(At.IDENTITY, simaka.counted_value(identity.encode()))
            if identity == self.saved.get("reauth_id"):
                return reply  # RFC 4186 §10.2: no NONCE_MT with a re-authentication identity
        self.nonce_mt = os.urandom(simaka.NONCE_SIZE)
        reply.add(At.NONCE_MT, simaka.fixed_value(self.nonce_mt))
        return reply.add(At.SELECTED_VERSION, VERSION)

    def _challenge(self, identifier: int, message: Message) -> Message:
        if self.nonce_mt is None:
            raise self._fail("SIM/Challenge before a full-authentication Start")
        rand_value = message.get(At.RAND)
        if rand_value is None or (len(rand_value) - 2) % 16:
            raise self._fail("SIM/Challenge without a whole AT_RAND")
        rands = [rand_value[i:i + 16] for i in range(2, len(rand_value), 16)]
        if len(rands) < 2 or len(set(rands)) != len(rands):
            code = (ClientError.INSUFFICIENT_CHALLENGES if len(rands) < 2
                    else ClientError.RANDS_NOT_FRESH)
            raise self._fail(f"SIM/Challenge with {len(rands)} RANDs, "
                             f"{len(set(rands))} distinct", code)
        triplets = [self.subscriber.gsm(rand) for rand in rands]
        if None in triplets:
            raise self._fail("the SIM has no triplet for a RAND the server sent")
        identity = (self.identity_sent or self.permanent).encode()
        mk = simaka.sim_mk(identity, [kc for _, kc in triplets], self.nonce_mt,
                           self.version_list, VERSION)
        self.keys = simaka.keys_from_mk(mk)
        self.verify(identifier, message, self.nonce_mt)
        self.learn_identities(simaka.decrypt(self.keys.k_encr, message), full_authentication=True)
        reply = self.sign(identifier, Message(Subtype.SIM_CHALLENGE),
                          b"".join(sres for sres, _ in triplets))
        self.finish(self.keys.msk)
        return reply
