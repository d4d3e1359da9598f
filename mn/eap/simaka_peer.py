"""The peer side that EAP-SIM (RFC 4186), EAP-AKA (RFC 4187) and EAP-AKA' (RFC 5448, RFC
9048) share: identity selection (re-authentication identity, pseudonym, permanent), AT_MAC
and AT_ENCR_DATA, fast re-authentication, notifications, and the error responses.

A malformed or unverifiable request is answered as the RFCs say (Client-Error, or for AKA an
Authentication-Reject or Synchronization-Failure) and the method ends failed; the EAP
server then sends EAP-Failure, and the HAC answers the MN 401. The method modules
(``sim``, ``aka``, ``aka_prime``) add what differs: the challenge.
"""

from __future__ import annotations

import logging
import os

from aaa_mip6 import simaka
from aaa_mip6.eap import EapError
from aaa_mip6.errors import ConfigError
from aaa_mip6.simaka import At, ClientError, Message, SimAkaError, Subtype

from . import EapCredentials, EapMethod
from .subscriber import PeerState, Subscriber, load_triplets, load_usim

log = logging.getLogger(__name__)

REQUEST, RESPONSE = 1, 2
NOTIFICATION_SUCCESS = 32768
NOTIFICATION_S_BIT, NOTIFICATION_P_BIT = 0x8000, 0x4000


class MethodFailed(EapError):
    """The method refused the server's request; the response to send is ``answer``."""

    def __init__(self, message: str, answer: Message, reason: str = "refused"):
        super().__init__(message, reason=reason)
        self.answer = answer


class SimAkaPeer(EapMethod):
    """Common peer logic; subclasses set ``type``, ``prefix`` and handle their challenge."""

    prefix = ""

    def __init__(self, credentials: EapCredentials):
        super().__init__(credentials)
        if credentials.usim is not None:
            self.subscriber: Subscriber = load_usim(credentials.usim)
        elif credentials.sim_triplets is not None:
            self.subscriber = load_triplets(credentials.sim_triplets)
        else:
            raise ConfigError(f"--eap {self.name} needs --usim"
                              + (" or --sim-triplets" if self.name == "sim" else ""))
        self.state = PeerState(credentials.eap_state, self.subscriber.sqn)
        self.saved = self.state.method(self.name)
        self.keys: simaka.Keys | None = None
        self.identity_sent: str | None = None  # the identity MK / the keys are bound to
        self.reauthenticating = False
        self.failed_reason: str | None = None

    # --- identities --------------------------------------------------------------------

    @property
    def permanent(self) -> str:
        return self.subscriber.permanent_identity(self.prefix, self.credentials.realm)

    def identity(self) -> str:
        """EAP-Response/Identity: the re-authentication identity, else the pseudonym, else
        the permanent identity (RFC 4186 §4.2.1)."""
        chosen = (self.saved.get("reauth_id") or self.saved.get("pseudonym")
                  or self.permanent)
        self.identity_sent = chosen
        return chosen

    def _identity_for(self, message: Message) -> str | None:
        """The AT_IDENTITY an identity request asks for (RFC 4186 §4.2.5), None if none."""
        if message.has(At.PERMANENT_ID_REQ):
            return self.permanent
        if message.has(At.FULLAUTH_ID_REQ):
            return self.saved.get("pseudonym") or self.permanent
        if message.has(At.ANY_ID_REQ):
            return (self.saved.get("reauth_id") or self.saved.get("pseudonym")
                    or self.permanent)
        return None

    # --- one request -------------------------------------------------------------------

    def process(self, identifier: int, type_data: bytes) -> bytes:
        try:
            message = simaka.decode(type_data)
            return self.handle(identifier, message).encode()
        except MethodFailed as failure:
            self.failed_reason = str(failure)
            log.info("EAP-%s: %s", self.name.upper(), failure)
            return failure.answer.encode()
        except SimAkaError as error:
            self.failed_reason = str(error)
            log.info("EAP-%s: malformed request: %s", self.name.upper(), error)
            return self.client_error(ClientError.UNABLE_TO_PROCESS).encode()

    def process_after_done(self, identifier: int, type_data: bytes) -> bytes:
        """A success or failure notification after the challenge (AT_RESULT_IND)."""
        return self.process(identifier, type_data)

    def handle(self, identifier: int, message: Message) -> Message:
        if message.subtype == Subtype.NOTIFICATION:
            return self._notification(identifier, message)
        if message.subtype == Subtype.REAUTHENTICATION:
            return self._reauthentication(identifier, message)
        return self.challenge_round(identifier, message)

    def challenge_round(self, identifier: int, message: Message) -> Message:
        raise NotImplementedError

    def client_error(self, code: ClientError) -> Message:
        return Message(Subtype.CLIENT_ERROR).add(At.CLIENT_ERROR_CODE, simaka.short_value(code))

    def _fail(self, text: str, code: ClientError = ClientError.UNABLE_TO_PROCESS) -> MethodFailed:
        return MethodFailed(text, self.client_error(code))

    # --- after the keys are known ------------------------------------------------------

    def verify(self, identifier: int, message: Message, extra: bytes = b"") -> None:
        try:
            simaka.verify(self.keys.k_aut, self.type, REQUEST, identifier, message, extra)
        except SimAkaError as error:
            raise self._fail(f"request {error}") from None

    def sign(self, identifier: int, message: Message, extra: bytes = b"") -> Message:
        return simaka.sign(self.keys.k_aut, self.type, RESPONSE, identifier, message, extra)

    def learn_identities(self, inner: Message | None, full_authentication: bool) -> None:
        """AT_NEXT_PSEUDONYM / AT_NEXT_REAUTH_ID (from AT_ENCR_DATA), kept for the next
        bootstrap. Without a new re-authentication identity the old one and its keys are
        forgotten (RFC 4186 §5.4); after a full authentication the new one starts at counter
        0 with this authentication's keys."""
        found = {}
        for name, kind in (("pseudonym", At.NEXT_PSEUDONYM), ("reauth_id", At.NEXT_REAUTH_ID)):
            value = inner.get(kind) if inner is not None else None
            if value is not None:
                found[name] = simaka.counted(value, kind).decode("utf-8", "replace")
        if "pseudonym" in found:
            self.saved["pseudonym"] = found["pseudonym"]
        if "reauth_id" not in found:
            for stale in ("reauth_id", "counter", "keys"):
                self.saved.pop(stale, None)
            return
        self.saved["reauth_id"] = found["reauth_id"]
        if full_authentication:
            self.saved["counter"] = 0
            self.saved["keys"] = {"k_encr": self.keys.k_encr.hex(),
                                  "k_aut": self.keys.k_aut.hex(),
                                  "mk": self.keys.mk.hex(), "k_re": self.keys.k_re.hex()}

    def finish(self, msk: bytes) -> None:
        self.msk = msk
        self.done = True
        self.state.save()

    # --- fast re-authentication (RFC 4186 §5, RFC 4187 §5, RFC 5448 §3.3) -------------

    def _reauthentication(self, identifier: int, message: Message) -> Message:
        saved_keys = self.saved.get("keys")
        if not saved_keys or self.done:
            raise self._fail("re-authentication without a re-authentication identity")
        self.keys = simaka.Keys(k_encr=bytes.fromhex(saved_keys["k_encr"]),
                                k_aut=bytes.fromhex(saved_keys["k_aut"]), msk=b"", emsk=b"",
                                mk=bytes.fromhex(saved_keys["mk"]),
                                k_re=bytes.fromhex(saved_keys["k_re"]))
        self.verify(identifier, message)
        inner = simaka.decrypt(self.keys.k_encr, message)
        if inner is None:
            raise self._fail("re-authentication request without AT_ENCR_DATA")
        counter = simaka.short(inner, At.COUNTER)
        nonce_s = simaka.fixed(inner, At.NONCE_S, simaka.NONCE_SIZE)
        if counter is None or nonce_s is None:
            raise self._fail("re-authentication request without AT_COUNTER or AT_NONCE_S")
        reply_inner = Message(0).add(At.COUNTER, simaka.short_value(counter))
        identity = self.saved["reauth_id"]
        if counter <= self.saved.get("counter", 0):
            # RFC 4186 §5.5: a counter not above ours is refused; the keys are not derived.
            reply_inner.add(At.COUNTER_TOO_SMALL, bytes(2))
            reply = simaka.encrypt(self.keys.k_encr, os.urandom(16), reply_inner,
                                   Message(Subtype.REAUTHENTICATION))
            raise MethodFailed(f"re-authentication counter {counter} is not above "
                               f"{self.saved.get('counter', 0)}",
                               self.sign(identifier, reply, nonce_s))
        self.saved["counter"] = counter
        self.learn_identities(inner, full_authentication=False)
        if self.type == simaka.EAP_AKA_PRIME:
            msk, _ = simaka.aka_prime_reauth_keys(self.keys.k_re, identity.encode(), counter,
                                                  nonce_s)
        else:
            _, msk, _ = simaka.reauth_keys(identity.encode(), counter, nonce_s, self.keys.mk)
        reply = simaka.encrypt(self.keys.k_encr, os.urandom(16), reply_inner,
                               Message(Subtype.REAUTHENTICATION))
        self.reauthenticating = True
        self.finish(msk)
        return self.sign(identifier, reply, nonce_s)

    # --- notifications (RFC 4186 §6) ---------------------------------------------------

    def _notification(self, identifier: int, message: Message) -> Message:
        code = simaka.short(message, At.NOTIFICATION)
        if code is None:
            raise SimAkaError("notification without AT_NOTIFICATION")
        reply = Message(Subtype.NOTIFICATION)
        if not code & NOTIFICATION_P_BIT:  # after the challenge: protected both ways
            if self.keys is None:
                raise self._fail("protected notification before any keys")
            self.verify(identifier, message)
            reply = self.sign(identifier, reply)
        if not code & NOTIFICATION_S_BIT:
            self.failed_reason = f"the server notified failure (code {code})"
            self.done = False
            self.msk = None
        return reply
