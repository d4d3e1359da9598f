"""Test doubles for the RADIUS client: reply builders and a fake server on loopback UDP."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Callable

from pyrad import packet as pyrad_packet
from twisted.internet.protocol import DatagramProtocol

from aaa_mip6 import eap
from aaa_mip6.aaa import AaaSession
from aaa_mip6.radius import codec

SECRET = b"xyzzy5461"
DICTIONARY = codec.load_dictionary()
NAS = codec.Nas("hac.example.org", ipaddress.IPv4Address("127.0.0.1"))

EAP_IDENTITY_RESPONSE = eap.EapPacket(eap.Code.RESPONSE, 1, eap.Type.IDENTITY,
                                      b"mn1@example.org").encode()
EAP_MD5_REQUEST = eap.EapPacket(eap.Code.REQUEST, 2, eap.Type.MD5_CHALLENGE,
                                bytes([16]) + bytes(16)).encode()
EAP_SUCCESS = eap.EapPacket(eap.Code.SUCCESS, 2).encode()
EAP_FAILURE = eap.EapPacket(eap.Code.FAILURE, 2).encode()


def session(user: str = "mn1@example.org") -> AaaSession:
    return AaaSession(user, ipaddress.ip_address("2001:db8::7"), 40001)


def decode_request(datagram: bytes, secret: bytes = SECRET) -> pyrad_packet.AuthPacket:
    return pyrad_packet.AuthPacket(packet=datagram, secret=secret, dict=DICTIONARY)


def reply_to(request: pyrad_packet.AuthPacket, code: int, eap_payload: bytes | None = None,
             **attributes) -> pyrad_packet.AuthPacket:
    """A signed reply (with Message-Authenticator) as a well-behaved server builds it."""
    reply = request.CreateReply()
    reply.code = code
    if eap_payload is not None:
        reply[79] = codec.split_eap_message(eap_payload)
    for name, value in attributes.items():
        reply[name.replace("_", "-")] = value
    return reply


def sign_reply(code: int, identifier: int, request_authenticator: bytes, attributes: bytes,
               secret: bytes = SECRET, *, message_authenticator: bool = True) -> bytes:
    """A reply with arbitrary attribute octets, correctly signed (RFC 2865 §3, RFC 3579 §3.2)."""
    if message_authenticator:
        attributes = bytes([80, 18]) + bytes(16) + attributes
    header = struct.pack("!BBH", code, identifier, 20 + len(attributes))
    if message_authenticator:
        mac = hmac.new(secret, header + request_authenticator + attributes, "md5").digest()
        attributes = attributes[:2] + mac + attributes[18:]
    response = hashlib.md5(header + request_authenticator + attributes + secret).digest()
    return header + response + attributes


Reply = pyrad_packet.Packet | bytes
Handler = Callable[[pyrad_packet.AuthPacket], "Reply | list[Reply] | None"]


class FakeRadiusServer(DatagramProtocol):
    """Decodes each request, records it and its source, and sends what ``handler`` returns.

    The handler returns a reply packet, raw bytes, a list of them (sent in order),
    or None to stay silent.
    """

    def __init__(self, handler: Handler, secret: bytes = SECRET):
        self.handler = handler
        self.secret = secret
        self.received: list[pyrad_packet.AuthPacket] = []
        self.sources: list[tuple[str, int]] = []

    def datagramReceived(self, datagram: bytes, addr) -> None:
        request = decode_request(datagram, self.secret)
        self.received.append(request)
        self.sources.append(addr)
        replies = self.handler(request)
        for reply in replies if isinstance(replies, list) else [replies]:
            if isinstance(reply, pyrad_packet.Packet):
                reply = reply.ReplyPacket()
            if reply is not None:
                self.transport.write(reply, addr)
