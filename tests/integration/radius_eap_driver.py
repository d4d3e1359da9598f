"""A small blocking RADIUS driver that runs an :class:`mn.eap.peer.EapPeer` against a server.

Test-only: it stands in for the HAC's relay (RFC 3579) so the MN's EAP methods can
be checked against real FreeRADIUS before the product RADIUS client exists.
Message-Authenticator is sent first and required in every reply; EAP-Message is
split and joined at 253 octets; State is echoed; the MSK is taken from the
Access-Accept as MS-MPPE-Recv-Key || MS-MPPE-Send-Key (RFC 2548, decrypted by pyrad).
"""

from __future__ import annotations

import io
import socket
from typing import NamedTuple

from pyrad import packet
from pyrad.dictionary import Dictionary

from aaa_mip6 import eap
from mn.eap.peer import EapPeer

EAP_MESSAGE_CHUNK = 253
TIMEOUT = 5.0
RETRIES = 3
MAX_ROUNDS = 100

# Just the attributes this driver touches, so it does not depend on other dictionaries.
_DICTIONARY = """\
ATTRIBUTE User-Name 1 string
ATTRIBUTE Framed-IP-Address 8 ipaddr
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE State 24 octets
ATTRIBUTE NAS-Identifier 32 string
ATTRIBUTE EAP-Message 79 octets
ATTRIBUTE Message-Authenticator 80 octets
ATTRIBUTE MIP6-Home-Link-Prefix 125 octets
ATTRIBUTE Framed-IPv6-Address 168 ipv6addr
VENDOR Microsoft 311
BEGIN-VENDOR Microsoft
ATTRIBUTE MS-MPPE-Send-Key 16 octets encrypt=2
ATTRIBUTE MS-MPPE-Recv-Key 17 octets encrypt=2
END-VENDOR Microsoft
"""


def dictionary() -> Dictionary:
    return Dictionary(io.StringIO(_DICTIONARY))


class EapRun(NamedTuple):
    """The outcome of one authentication."""

    accepted: bool
    msk: bytes | None  # MS-MPPE-Recv-Key || MS-MPPE-Send-Key from the Access-Accept
    peer: EapPeer
    reply: packet.AuthPacket  # the final Access-Accept or Access-Reject


def split_eap_message(eap_packet: bytes) -> list[bytes]:
    """Cut one EAP packet into EAP-Message attribute values (RFC 3579 §3.1)."""
    return [eap_packet[i:i + EAP_MESSAGE_CHUNK]
            for i in range(0, len(eap_packet), EAP_MESSAGE_CHUNK)]


class RadiusEapDriver:
    """Relays one EAP conversation between a peer and a RADIUS server over UDP."""

    def __init__(self, host: str, port: int, secret: bytes, *, nas_identifier: str = "aaa-mip6-test"):
        self.address = (host, port)
        self.secret = secret
        self.nas_identifier = nas_identifier
        self.dict = dictionary()

    def authenticate(self, peer: EapPeer, user_name: str) -> EapRun:
        """Run ``peer`` to the end: the first EAP-Request/Identity is made locally, like the HAC does."""
        response = peer.receive(eap.EapPacket(eap.Code.REQUEST, 0, eap.Type.IDENTITY).encode())
        state = None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(self.address)
            for _ in range(MAX_ROUNDS):
                reply = self._exchange(sock, user_name, response, state)
                eap_packet = b"".join(reply.get("EAP-Message", []))
                if reply.code == packet.AccessChallenge:
                    state = reply.get("State", [None])[0]
                    response = peer.receive(eap_packet)
                    continue
                if eap_packet:
                    peer.receive(eap_packet)
                accepted = reply.code == packet.AccessAccept
                return EapRun(accepted, self._msk(reply) if accepted else None, peer, reply)
        raise RuntimeError(f"no end after {MAX_ROUNDS} RADIUS round trips")

    def _exchange(self, sock: socket.socket, user_name: str, eap_packet: bytes,
                  state: bytes | None) -> packet.AuthPacket:
        request = packet.AuthPacket(packet.AccessRequest, secret=self.secret, dict=self.dict)
        request.add_message_authenticator()
        request["User-Name"] = user_name
        request["NAS-Identifier"] = self.nas_identifier
        for chunk in split_eap_message(eap_packet):
            request.AddAttribute("EAP-Message", chunk)
        if state is not None:
            request["State"] = state
        raw = request.RequestPacket()
        sock.settimeout(TIMEOUT)
        for _ in range(RETRIES):
            sock.send(raw)
            try:
                while True:
                    reply = self._decode_reply(request, sock.recv(4096))
                    if reply is not None:
                        return reply
            except socket.timeout:
                continue
        raise TimeoutError(f"no valid RADIUS reply from {self.address} after {RETRIES} tries")

    def _decode_reply(self, request: packet.AuthPacket, raw: bytes) -> packet.AuthPacket | None:
        """The reply if it belongs to ``request`` and verifies, else None (ignored)."""
        try:
            reply = packet.AuthPacket(packet=raw, secret=self.secret, dict=self.dict)
        except packet.PacketError:
            return None
        reply.request_authenticator = request.authenticator
        if not request.VerifyReply(reply, raw, enforce_ma=True):
            return None
        return reply

    @staticmethod
    def _msk(reply: packet.AuthPacket) -> bytes | None:
        if "MS-MPPE-Recv-Key" not in reply or "MS-MPPE-Send-Key" not in reply:
            return None
        return reply["MS-MPPE-Recv-Key"][0] + reply["MS-MPPE-Send-Key"][0]
