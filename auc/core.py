"""The AuC's rules, sans-I/O: hostapd's hlr_auc_gw text protocol in, replies and SQN updates out.

Requests (one per datagram; IMSI in ASCII, the rest hex):

- ``SIM-REQ-AUTH <IMSI> <max_chal>`` -> ``SIM-RESP-AUTH <IMSI> Kc:SRES:RAND ...`` (fixed
  triplets in turn, else GSM-Milenage from fresh RANDs) or ``... FAILURE``
- ``GSM-AUTH-REQ <IMSI> RAND:RAND...`` -> ``GSM-AUTH-RESP <IMSI> Kc:SRES:...``
- ``AKA-REQ-AUTH <IMSI>`` -> ``AKA-RESP-AUTH <IMSI> <RAND> <AUTN> <IK> <CK> <RES>`` or FAILURE
- ``AKA-AUTS <IMSI> <AUTS> <RAND>`` -> no reply; the subscriber's SQN follows the USIM's

The IMSI may come with the EAP identity's method digit and realm (``0<IMSI>@realm``); both
are stripped. SQN is issued as SEQ||IND with IND = 0 (TS 33.102 Annex C.3.2), so each vector
moves it on by 32; the caller must make each ``sqn_changes`` durable before it sends the
reply, so a crash never issues an SQN twice. A bad request gets FAILURE (or, unparsable, no
reply) and a ``reason`` for the log; nothing here raises on input.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

from aaa_mip6.milenage import Milenage, MilenageError

SQN_STEP = 32  # SEQ + 1 with a 5-bit IND of 0
SQN_MAX = (1 << 48) - 1
MAX_CHALLENGES = 3
_IMSI = re.compile(r"[0-9]{6,15}\Z")
_IDENTITY_PREFIXES = "0156"  # permanent identities: AKA, SIM, (AKA' 6); 5/7 are pseudonyms


@dataclass
class MilenageSubscriber:
    milenage: Milenage
    amf: bytes
    sqn: int
    res_len: int = 8


@dataclass
class Reply:
    """What one request produced: the datagram to answer with (None: none), SQN updates to
    make durable first, and a short reason when the request failed."""

    text: str | None
    sqn_changes: dict[str, int] = field(default_factory=dict)
    reason: str | None = None


class AuthenticationCentre:
    def __init__(self, milenage: dict[str, MilenageSubscriber],
                 triplets: dict[str, list[tuple[bytes, bytes, bytes]]],
                 random: Callable[[int], bytes] = os.urandom):
        self.milenage = milenage
        self.triplets = triplets
        self._next_triplet = {imsi: 0 for imsi in triplets}
        self._random = random
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def imsi_of(self, text: str) -> str | None:
        """The subscriber an IMSI or permanent identity names, or None."""
        username = text.split("@", 1)[0]
        candidates = [username]
        if username[:1] in _IDENTITY_PREFIXES:
            candidates.append(username[1:])
        for candidate in candidates:
            if _IMSI.match(candidate) and (candidate in self.milenage
                                           or candidate in self.triplets):
                return candidate
        return None

    def handle(self, request: str) -> Reply:
        words = request.strip().split()
        if len(words) < 2:
            self._count("malformed")
            return Reply(None, reason="malformed request")
        command, subject, arguments = words[0], words[1], words[2:]
        handler = {"SIM-REQ-AUTH": self._sim, "GSM-AUTH-REQ": self._gsm,
                   "AKA-REQ-AUTH": self._aka, "AKA-AUTS": self._auts}.get(command)
        if handler is None:
            self._count("unknown-command")
            return Reply(None, reason=f"unknown command {command[:32]!r}")
        reply = handler(subject, arguments)
        self._count(command.lower() + ("-failed" if reply.reason else ""))
        return reply

    # --- EAP-SIM -------------------------------------------------------------------------

    def _sim(self, subject: str, arguments: list[str]) -> Reply:
        failure = Reply(f"SIM-RESP-AUTH {subject} FAILURE")
        imsi = self.imsi_of(subject)
        try:
            wanted = int(arguments[0]) if arguments else MAX_CHALLENGES
        except ValueError:
            wanted = -1
        if imsi is None or not 1 <= wanted <= 16:
            failure.reason = "unknown subscriber" if imsi is None else "bad max_chal"
            return failure
        wanted = min(wanted, MAX_CHALLENGES)
        triplets = []
        for _ in range(wanted):
            triplet = self._triplet(imsi)
            if triplet is None:
                failure.reason = "no triplets and no Milenage key"
                return failure
            triplets.append(triplet)
        body = " ".join(f"{kc.hex()}:{sres.hex()}:{rand.hex()}" for kc, sres, rand in triplets)
        return Reply(f"SIM-RESP-AUTH {subject} {body}")

    def _triplet(self, imsi: str) -> tuple[bytes, bytes, bytes] | None:
        """(Kc, SRES, RAND): the subscriber's fixed triplets in turn, else GSM-Milenage."""
        if self.triplets.get(imsi):
            index = self._next_triplet[imsi]
            self._next_triplet[imsi] = (index + 1) % len(self.triplets[imsi])
            return self.triplets[imsi][index]
        subscriber = self.milenage.get(imsi)
        if subscriber is None:
            return None
        rand = self._random(16)
        sres, kc = subscriber.milenage.gsm_triplet(rand)
        return kc, sres, rand

    def _gsm(self, subject: str, arguments: list[str]) -> Reply:
        failure = Reply(f"GSM-AUTH-RESP {subject} FAILURE")
        imsi = self.imsi_of(subject)
        subscriber = self.milenage.get(imsi) if imsi else None
        try:
            rands = [bytes.fromhex(text) for text in arguments[0].split(":")] if arguments else []
        except ValueError:
            rands = []
        if subscriber is None or not rands or any(len(rand) != 16 for rand in rands):
            failure.reason = "unknown subscriber" if subscriber is None else "bad RAND list"
            return failure
        pairs = [subscriber.milenage.gsm_triplet(rand) for rand in rands]
        return Reply(f"GSM-AUTH-RESP {subject} "
                     + ":".join(f"{kc.hex()}:{sres.hex()}" for sres, kc in pairs))

    # --- EAP-AKA / AKA' ------------------------------------------------------------------

    def _aka(self, subject: str, arguments: list[str]) -> Reply:
        imsi = self.imsi_of(subject)
        subscriber = self.milenage.get(imsi) if imsi else None
        if subscriber is None:
            return Reply(f"AKA-RESP-AUTH {subject} FAILURE", reason="unknown subscriber")
        sqn = subscriber.sqn + SQN_STEP
        if sqn > SQN_MAX:
            return Reply(f"AKA-RESP-AUTH {subject} FAILURE", reason="SQN exhausted")
        rand = self._random(16)
        autn, vector = subscriber.milenage.generate(rand, sqn.to_bytes(6, "big"), subscriber.amf)
        subscriber.sqn = sqn
        res = vector.res[:subscriber.res_len]
        return Reply(f"AKA-RESP-AUTH {subject} {rand.hex()} {autn.hex()} {vector.ik.hex()} "
                     f"{vector.ck.hex()} {res.hex()}", sqn_changes={imsi: sqn})

    def _auts(self, subject: str, arguments: list[str]) -> Reply:
        """TS 33.102 §6.3.5: the USIM's SQN (from AUTS, MAC-S verified) becomes ours."""
        imsi = self.imsi_of(subject)
        subscriber = self.milenage.get(imsi) if imsi else None
        try:
            auts, rand = (bytes.fromhex(arguments[0]), bytes.fromhex(arguments[1])) \
                if len(arguments) == 2 else (b"", b"")
            sqn_ms = int.from_bytes(subscriber.milenage.sqn_from_auts(rand, auts), "big") \
                if subscriber else None
        except (ValueError, MilenageError) as error:
            return Reply(None, reason=f"AUTS refused: {error}")
        if sqn_ms is None:
            return Reply(None, reason="AUTS for an unknown subscriber")
        subscriber.sqn = max(subscriber.sqn, sqn_ms)
        return Reply(None, sqn_changes={imsi: subscriber.sqn})
