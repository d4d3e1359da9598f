"""Test doubles for the RADIUS client: reply builders, a fake server, and a UDP network in
memory on a virtual clock (so retransmission timers race nothing)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Callable

from pyrad import packet as pyrad_packet
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock

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


class VirtualUdpNetwork:
    """A reactor for a RADIUS client and its fake servers: UDP in memory, time on a Clock.

    A datagram arrives at the same virtual instant it is sent (after the sender's call
    returns), so a reply always beats a retransmission timer, however loaded the machine
    is; only :meth:`run_until` and :meth:`advance` move time.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self._bound: dict[tuple[str, int], _VirtualPort] = {}
        self._next_port = 30000

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay, function, *args, **kwargs):
        return self.clock.callLater(delay, function, *args, **kwargs)

    def listenUDP(self, port: int, protocol: DatagramProtocol,
                  interface: str = "127.0.0.1", maxPacketSize: int = 8192):
        if port == 0:
            self._next_port += 1
            port = self._next_port
        bound = _VirtualPort(self, protocol, (interface, port))
        self._bound[bound.address] = bound
        protocol.makeConnection(bound)
        return bound

    def send(self, datagram: bytes, source: tuple[str, int], destination: tuple[str, int]):
        self.clock.callLater(0, self._arrive, datagram, source, destination)

    def _arrive(self, datagram: bytes, source, destination) -> None:
        port = self._bound.get((destination[0], destination[1]))
        if port is not None:  # nobody listening: dropped, as on a real network
            port.protocol.datagramReceived(datagram, source)

    def close(self, port: _VirtualPort) -> bool:
        """Unbind ``port``; False if it was not bound."""
        return self._bound.pop(port.address, None) is not None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing each timer at its own instant."""
        end = self.clock.seconds() + seconds
        while due := [call.getTime() for call in self.clock.getDelayedCalls()
                      if call.getTime() <= end]:
            self.clock.advance(max(0.0, min(due) - self.clock.seconds()))
        self.clock.advance(end - self.clock.seconds())

    def run_until(self, deferred: defer.Deferred, limit: float = 120.0) -> defer.Deferred:
        """Run timers and datagrams until ``deferred`` fires; it, fired (AssertionError if
        nothing is left to run, or after ``limit`` virtual seconds)."""
        end = self.clock.seconds() + limit
        while not deferred.called:
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            if not due:
                raise AssertionError("the call has not finished and nothing is scheduled")
            if min(due) > end:
                raise AssertionError(f"the call has not finished within {limit} virtual s")
            self.clock.advance(max(0.0, min(due) - self.clock.seconds()))
        return deferred


class _VirtualPort:
    """One bound UDP port of a :class:`VirtualUdpNetwork`."""

    def __init__(self, network: VirtualUdpNetwork, protocol: DatagramProtocol,
                 address: tuple[str, int]):
        self.network = network
        self.protocol = protocol
        self.address = address

    def write(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.network.send(datagram, self.address, addr)

    def getHost(self):
        host, port = self.address
        kind = IPv6Address if ":" in host else IPv4Address
        return kind("UDP", host, port)

    def stopListening(self) -> None:
        if self.network.close(self):
            self.protocol.doStop()
