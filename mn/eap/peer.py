"""The MN's EAP peer state machine, after RFC 4137 §4 (peer side), without timers or I/O.

One :class:`EapPeer` runs one conversation with one configured method. It answers
Identity and Notification itself, Naks a method it was not configured for while
no method has been chosen, hands requests of the configured method to that
method, repeats its last response for a retransmitted request, and accepts
Success only once the method is done (RFC 4137 decision != FAIL). Everything
RFC 4137 would silently discard raises :class:`aaa_mip6.eap.EapError` instead:
RFC 6618 runs EAP lock-step over TLS, where a discarded request is a dead end.
"""

from __future__ import annotations

import importlib
import re

from aaa_mip6.eap import Code, EapError, EapPacket, Type, decode
from aaa_mip6.errors import ConfigError

from . import METHODS, EapCredentials, EapMethod

EXPANDED_TYPE = 254
_METHOD_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")


def method_class(name: str) -> type[EapMethod]:
    """The registered method ``name``; its module ``mn.eap.<name>`` is imported on first use."""
    if not _METHOD_NAME.match(name):
        raise ConfigError(f"EAP method name {name!r} is not a method name")
    if name not in METHODS:
        module = f"{__package__}.{name.replace('-', '_')}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as missing:
            if missing.name != module:
                raise  # the method exists but one of its imports does not
    if name not in METHODS:
        raise ConfigError(f"unknown EAP method {name!r}")
    return METHODS[name]


class EapPeer:
    """One EAP conversation on the MN side: EAP packets in, EAP-Responses out."""

    def __init__(self, method_name: str, credentials: EapCredentials):
        self.method = method_class(method_name)(credentials)
        self.credentials = credentials
        self.method_selected = False
        self.notifications: list[str] = []
        self._last_id: int | None = None
        self._last_response: bytes | None = None
        self._result: Code | None = None

    @property
    def method_done(self) -> bool:
        """RFC 4137 methodState DONE: the method has finished successfully on the peer side."""
        return self.method.done

    @property
    def msk(self) -> bytes | None:
        """The method's MSK once it is done, if the method derives one."""
        return self.method.msk if self.method.done else None

    @property
    def success(self) -> bool:
        return self._result is Code.SUCCESS

    @property
    def failure(self) -> bool:
        return self._result is Code.FAILURE

    def receive(self, eap_packet: bytes) -> bytes | None:
        """Process one EAP packet from the authenticator.

        Returns the EAP-Response to send, or None after Success or Failure.
        Raises EapError for malformed or unexpected packets.
        """
        if self._result is not None:
            raise EapError("EAP conversation already ended", reason="unexpected")
        packet = decode(eap_packet)
        if packet.code is Code.REQUEST:
            return self._request(packet)
        if packet.code is Code.RESPONSE:
            raise EapError("an EAP peer does not accept EAP-Response", reason="unexpected")
        if packet.code is Code.SUCCESS:
            self._success(packet)
        else:
            self._result = Code.FAILURE
        return None

    def _success(self, packet: EapPacket) -> None:
        if not self.method.done:
            raise EapError("EAP-Success before the method finished", reason="unexpected")
        # RFC 3748 §4.2: the Identifier of the last Response. FreeRADIUS's EAP-SIM sends it
        # one higher; wpa_supplicant accepts that too (its default eap_workaround).
        if packet.identifier not in (self._last_id, (self._last_id + 1) % 256):
            raise EapError("EAP-Success does not match the last response identifier",
                           reason="unexpected")
        self._result = Code.SUCCESS

    def _request(self, packet: EapPacket) -> bytes:
        if packet.identifier == self._last_id:
            return self._last_response  # RFC 4137 RETRANSMIT
        response_type, data = self._answer(packet)
        response = EapPacket(Code.RESPONSE, packet.identifier, response_type, data).encode()
        self._last_id, self._last_response = packet.identifier, response
        return response

    def _answer(self, packet: EapPacket) -> tuple[int, bytes]:
        """The (type, type-data) of the response, per RFC 4137's RECEIVED transitions."""
        if packet.type == Type.NOTIFICATION:
            self.notifications.append(packet.data.decode("utf-8", "replace"))
            return Type.NOTIFICATION, b""
        if packet.type == Type.NAK or packet.type == EXPANDED_TYPE:
            raise EapError(f"EAP-Request of type {packet.type} is not supported",
                           reason="unexpected")
        if packet.type == self.method.type:
            if self.method.done:
                return self.method.type, self.method.process_after_done(packet.identifier,
                                                                        packet.data)
            self.method_selected = True
            return self.method.type, self.method.process(packet.identifier, packet.data)
        if self.method_selected:
            raise EapError(f"EAP-Request of type {packet.type} during another method",
                           reason="unexpected")
        if packet.type == Type.IDENTITY:
            return Type.IDENTITY, self.method.identity().encode("utf-8")
        return Type.NAK, bytes([self.method.type])
