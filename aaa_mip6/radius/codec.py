"""RADIUS packets for EAP relay (RFC 2865, RFC 3579, RFC 2548) and accounting
(RFC 2866, RFC 2869), sans-I/O.

Builds Access-Request, Status-Server and Accounting-Request packets with pyrad and
turns a reply datagram into an :mod:`aaa_mip6.aaa` answer. Every reply is authenticated before
any attribute is read: Response Authenticator and Message-Authenticator, which
is required (BlastRADIUS, CVE-2024-3596), as is putting it first in requests.
"""

from __future__ import annotations

import enum
import ipaddress
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary

from .. import eap
from ..aaa import AaaAnswer, AaaSession, Accept, BootstrapAttributes, Challenge, Reject
from ..errors import AaaLimitError, InvalidInput

EAP_MESSAGE_CHUNK = 253  # the most an attribute value holds (RFC 3579 §3.1)
MAX_VALUE_LENGTH = 253  # RFC 2865 §5: e.g. the User-Name
MAX_PACKET_LENGTH = 4096  # RFC 2865 §3
HEADER_LENGTH = 20
MAX_REPLY_MESSAGE = 300  # characters of an Access-Reject's Reply-Message kept for the log
_ATTRIBUTE_HEADER = 2  # Type, Length
_MESSAGE_AUTHENTICATOR_LENGTH = _ATTRIBUTE_HEADER + 16
_NAS_PORT_TYPE_LENGTH = _ATTRIBUTE_HEADER + 4
MPPE_KEY_LENGTHS = (16, 32)  # EAP-MSCHAPv2: 16, every other keying method: 32
NAS_PORT_TYPE_VIRTUAL = "Virtual"
# Framed-IP-Address values that are instructions, not addresses (RFC 2865 §5.8).
_UNASSIGNED_IPV4 = {ipaddress.IPv4Address("255.255.255.255"), ipaddress.IPv4Address("255.255.255.254")}
_ACCESS_REPLY_CODES = {pyrad_packet.AccessAccept, pyrad_packet.AccessReject,
                       pyrad_packet.AccessChallenge}

# A link to the project's radius_dicts/; a build copies the files into the package.
DICTIONARY_DIR = Path(__file__).resolve().parent / "dicts"


class RadiusError(InvalidInput):
    """A RADIUS reply that is malformed, spoofed or unexpected.

    ``reason`` is one of: ``malformed``, ``unknown-id``, ``no-message-authenticator``,
    ``bad-authenticator``, ``unexpected-code``. A request the MN's input makes too long
    raises :class:`~aaa_mip6.errors.AaaLimitError` instead.
    """


def load_dictionary(directory: Path | None = None) -> Dictionary:
    """The project's RADIUS dictionary from ``directory`` or the shipped radius_dicts/."""
    main = (directory or DICTIONARY_DIR) / "dictionary"
    if not main.is_file():
        raise FileNotFoundError(f"no RADIUS dictionary at {main}")
    return Dictionary(str(main))


def split_eap_message(eap_payload: bytes) -> list[bytes]:
    """Cut one EAP packet into EAP-Message values of at most 253 octets (RFC 3579 §3.1)."""
    return [eap_payload[i:i + EAP_MESSAGE_CHUNK]
            for i in range(0, len(eap_payload), EAP_MESSAGE_CHUNK)]


def reply_identifier(datagram: bytes) -> int:
    """The Identifier of a received datagram, to find its request."""
    if len(datagram) < HEADER_LENGTH:
        raise RadiusError(f"RADIUS datagram of {len(datagram)} octets is shorter than a header")
    return datagram[1]


@dataclass(frozen=True, slots=True)
class Nas:
    """How the HAC names itself to the RADIUS server (RFC 2865 §5.4, §5.32; RFC 3162 §2.1)."""

    identifier: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address


def access_request_length(nas: Nas, session: AaaSession, eap_payload: bytes,
                          state: bytes | None = None) -> int:
    """The octets of the Access-Request :meth:`RadiusCodec.encode_access_request` builds for
    these, counted from its attributes without building it."""
    chunks = -(-len(eap_payload) // EAP_MESSAGE_CHUNK)
    return (HEADER_LENGTH + _MESSAGE_AUTHENTICATOR_LENGTH
            + _ATTRIBUTE_HEADER + len(nas.identifier.encode("utf-8"))
            + _ATTRIBUTE_HEADER + len(nas.address.packed) + _NAS_PORT_TYPE_LENGTH
            + _ATTRIBUTE_HEADER + len(session.user_name.encode("utf-8"))
            + _ATTRIBUTE_HEADER + len(session.calling_station_id.encode("ascii"))
            + (0 if state is None else _ATTRIBUTE_HEADER + len(state))
            + chunks * _ATTRIBUTE_HEADER + len(eap_payload))


def check_access_request(nas: Nas, session: AaaSession, eap_payload: bytes,
                         state: bytes | None = None) -> None:
    """Raise AaaLimitError unless an Access-Request can carry these: a User-Name of at
    most 253 octets, 4096 octets in all (RFC 2865 §3, §5.1).

    Pure arithmetic, so a client refuses the MN's input before it picks a server.
    """
    user_name = len(session.user_name.encode("utf-8"))
    if user_name > MAX_VALUE_LENGTH:
        raise AaaLimitError(f"User-Name of {user_name} octets exceeds {MAX_VALUE_LENGTH}")
    length = access_request_length(nas, session, eap_payload, state)
    if length > MAX_PACKET_LENGTH:
        raise AaaLimitError(f"Access-Request of {length} octets (an EAP packet of "
                            f"{len(eap_payload)}) exceeds {MAX_PACKET_LENGTH}")


@dataclass(frozen=True, slots=True)
class SentRequest:
    """A request as sent, kept to verify its reply and to retransmit it unchanged."""

    identifier: int
    datagram: bytes = field(repr=False)
    packet: pyrad_packet.Packet = field(repr=False)


class AcctStatus(enum.IntEnum):
    """Acct-Status-Type (RFC 2866 §5.1)."""

    START = 1
    STOP = 2


class TerminateCause(enum.IntEnum):
    """The Acct-Terminate-Cause values the HAC sends (RFC 2866 §5.10)."""

    SESSION_TIMEOUT = 5  # the SA expired
    ADMIN_RESET = 6  # the operator revoked the SA


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    """One Accounting-Request's content: the start or stop of one SA's session."""

    status: AcctStatus
    session_id: str  # the SPI in hex: unique among the HAC's valid SAs
    user_name: str
    event_timestamp: int  # seconds since the epoch (RFC 2869 §5.3)
    home_address6: ipaddress.IPv6Address | None = None
    home_address4: ipaddress.IPv4Address | None = None
    session_time: int | None = None  # Stop only: seconds the SA was valid
    terminate_cause: TerminateCause | None = None  # Stop only


@dataclass(frozen=True, slots=True)
class AccessReply:
    """A verified reply to an Access-Request: the answer and the State to echo next."""

    answer: AaaAnswer
    state: bytes | None = field(repr=False)


class RadiusCodec:
    """Packets to and from one RADIUS server, signed with its shared secret."""

    def __init__(self, secret: bytes, nas: Nas, dictionary: Dictionary):
        self._secret = secret
        self._nas = nas
        self._dictionary = dictionary

    def __repr__(self) -> str:
        return f"RadiusCodec(nas={self._nas!r})"

    def encode_access_request(self, identifier: int, session: AaaSession, eap_payload: bytes,
                              state: bytes | None = None) -> SentRequest:
        """An Access-Request carrying one EAP packet of ``session`` (RFC 3579 §2.1).

        ``state`` is the State of the previous Access-Challenge, echoed verbatim.
        """
        eap.decode(eap_payload)  # relay only whole, well-formed EAP packets
        check_access_request(self._nas, session, eap_payload, state)
        request = self._new_request(pyrad_packet.AccessRequest, identifier)
        request["User-Name"] = session.user_name
        request["Calling-Station-Id"] = session.calling_station_id
        # Octet values go in by key: pyrad would hex-decode a value starting with "0x".
        if state is not None:
            request[self._key("State")] = [state]
        request[self._key("EAP-Message")] = split_eap_message(eap_payload)
        return self._sent(request)

    def encode_status_server(self, identifier: int) -> SentRequest:
        """A Status-Server probe (RFC 5997 §3) to ask whether the server is alive."""
        return self._sent(self._new_request(pyrad_packet.StatusServer, identifier))

    def encode_accounting_request(self, identifier: int,
                                  record: AccountingRecord) -> SentRequest:
        """An Accounting-Request (RFC 2866 §4.1) for ``record``.

        Its Request Authenticator is MD5(Code + Identifier + Length + 16 zero octets +
        Attributes + secret) (RFC 2866 §3); it needs no Message-Authenticator.
        """
        user_name = len(record.user_name.encode("utf-8"))
        if user_name > MAX_VALUE_LENGTH:
            raise AaaLimitError(f"User-Name of {user_name} octets exceeds {MAX_VALUE_LENGTH}")
        request = pyrad_packet.AcctPacket(pyrad_packet.AccountingRequest, identifier,
                                          self._secret, dict=self._dictionary)
        request["Acct-Status-Type"] = int(record.status)
        request["Acct-Session-Id"] = record.session_id
        request["User-Name"] = record.user_name
        self._add_nas(request)
        if record.home_address6 is not None:
            request["Framed-IPv6-Address"] = str(record.home_address6)
        if record.home_address4 is not None:
            request["Framed-IP-Address"] = str(record.home_address4)
        request["Event-Timestamp"] = record.event_timestamp
        if record.session_time is not None:
            request["Acct-Session-Time"] = record.session_time
        if record.terminate_cause is not None:
            request["Acct-Terminate-Cause"] = int(record.terminate_cause)
        return self._sent(request)

    def check_accounting_response(self, request: SentRequest, datagram: bytes) -> None:
        """Return if ``datagram`` is a genuine Accounting-Response to ``request``
        (RFC 2866 §3: its Response Authenticator proves it)."""
        self._verified(request, datagram, {pyrad_packet.AccountingResponse},
                       require_message_authenticator=False)

    def check_status_reply(self, request: SentRequest, datagram: bytes) -> None:
        """Return if ``datagram`` is a genuine Access-Accept to the Status-Server ``request``.

        Unlike other replies it may lack a Message-Authenticator (FreeRADIUS 3.2 sends
        none): its Response Authenticator still proves it, and a forgery could only
        make the client try a server early.
        """
        self._verified(request, datagram, {pyrad_packet.AccessAccept},
                       require_message_authenticator=False)

    def decode_access_reply(self, request: SentRequest, datagram: bytes) -> AccessReply:
        """The answer in a genuine reply to the Access-Request ``request``."""
        reply = self._verified(request, datagram, _ACCESS_REPLY_CODES)
        eap_payload = b"".join(self._raw(reply, "EAP-Message"))
        if reply.code == pyrad_packet.AccessChallenge:
            _require_eap(eap_payload, eap.Code.REQUEST, "Access-Challenge")
            state = self._raw(reply, "State")
            return AccessReply(Challenge(eap_payload), state[0] if state else None)
        if reply.code == pyrad_packet.AccessReject:
            if eap_payload:
                _require_eap(eap_payload, eap.Code.FAILURE, "Access-Reject")
            return AccessReply(Reject(eap_payload or None, self._reply_message(reply)), None)
        _require_eap(eap_payload, eap.Code.SUCCESS, "Access-Accept")
        accept = Accept(eap_payload, self._msk(reply), self._bootstrap(reply))
        return AccessReply(accept, None)

    def _new_request(self, code: int, identifier: int) -> pyrad_packet.AuthPacket:
        # The Request Authenticator from one CSPRNG call: pyrad would draw its 16 octets
        # one by one (16 calls into os.urandom), a tenth of the time an Access-Request takes.
        request = pyrad_packet.AuthPacket(code, identifier, self._secret,
                                          authenticator=secrets.token_bytes(16),
                                          dict=self._dictionary)
        request.add_message_authenticator()  # first attribute
        self._add_nas(request)
        return request

    def _add_nas(self, request: pyrad_packet.Packet) -> None:
        request["NAS-Identifier"] = self._nas.identifier
        if self._nas.address.version == 6:
            request["NAS-IPv6-Address"] = str(self._nas.address)
        else:
            request["NAS-IP-Address"] = str(self._nas.address)
        request["NAS-Port-Type"] = NAS_PORT_TYPE_VIRTUAL

    @staticmethod
    def _sent(request: pyrad_packet.AuthPacket) -> SentRequest:
        return SentRequest(request.id, request.RequestPacket(), request)

    def _verified(self, request: SentRequest, datagram: bytes, codes: set[int], *,
                  require_message_authenticator: bool = True) -> pyrad_packet.Packet:
        """Decode ``datagram`` only as far as needed to prove it answers ``request``."""
        if reply_identifier(datagram) != request.identifier:
            raise RadiusError("reply Identifier matches no request", reason="unknown-id")
        if datagram[0] not in codes:
            raise RadiusError(f"RADIUS code {datagram[0]} does not answer code "
                              f"{request.packet.code}", reason="unexpected-code")
        (length,) = struct.unpack_from("!H", datagram, 2)
        if not HEADER_LENGTH <= length <= min(len(datagram), MAX_PACKET_LENGTH):
            raise RadiusError(f"RADIUS Length {length} for a datagram of {len(datagram)} octets")
        kind = (pyrad_packet.AcctPacket if request.packet.code == pyrad_packet.AccountingRequest
                else pyrad_packet.AuthPacket)
        try:
            reply = kind(packet=datagram, secret=self._secret, dict=self._dictionary)
        except pyrad_packet.PacketError as err:
            raise RadiusError(f"undecodable RADIUS reply: {err}") from None
        authenticators = len(reply.get(self._key("Message-Authenticator"), []))
        if authenticators > 1 or (require_message_authenticator and not authenticators):
            raise RadiusError("reply without exactly one Message-Authenticator",
                              reason="no-message-authenticator")
        if not request.packet.VerifyReply(reply, datagram,
                                          enforce_ma=require_message_authenticator):
            raise RadiusError("reply authenticator or Message-Authenticator does not verify",
                              reason="bad-authenticator")
        reply.request_authenticator = request.packet.authenticator  # for MPPE key salts
        return reply

    def _key(self, name: str) -> int | tuple[int, int]:
        """The key pyrad files the raw values of attribute ``name`` under."""
        attribute = self._dictionary[name]
        if attribute.vendor:
            return (self._dictionary.vendors.GetForward(attribute.vendor), attribute.code)
        return attribute.code

    def _raw(self, reply: pyrad_packet.AuthPacket, name: str) -> list[bytes]:
        return reply.get(self._key(name), [])

    def _first(self, reply: pyrad_packet.AuthPacket, name: str, size: int) -> bytes | None:
        """The first value of ``name``, which must have ``size`` octets; None if absent."""
        values = self._raw(reply, name)
        if not values:
            return None
        if len(values[0]) != size:
            raise RadiusError(f"{name} of {len(values[0])} octets, expected {size}")
        return values[0]

    def _msk(self, reply: pyrad_packet.AuthPacket) -> bytes | None:
        """MSK = MS-MPPE-Recv-Key || MS-MPPE-Send-Key (spec notes §4), or None if absent."""
        fields = [self._raw(reply, name) for name in ("MS-MPPE-Recv-Key", "MS-MPPE-Send-Key")]
        if not any(fields):
            return None
        if not all(len(values) == 1 for values in fields):
            raise RadiusError("Access-Accept needs exactly one MS-MPPE-Recv-Key and Send-Key")
        recv_key, send_key = (_mppe_key(reply, values[0]) for values in fields)
        if len(recv_key) != len(send_key):
            raise RadiusError(f"MS-MPPE keys of {len(recv_key)} and {len(send_key)} octets")
        return recv_key + send_key

    def _reply_message(self, reply: pyrad_packet.AuthPacket) -> str | None:
        """The Reply-Message text (RFC 2865 §5.18: several are shown in order), or None.

        Cut at MAX_REPLY_MESSAGE characters: it is for one log line.
        """
        values = self._raw(reply, "Reply-Message")
        if not values:
            return None
        text = " ".join(value.decode("utf-8", "replace") for value in values)
        return text if len(text) <= MAX_REPLY_MESSAGE else text[:MAX_REPLY_MESSAGE] + "..."

    def _bootstrap(self, reply: pyrad_packet.AuthPacket) -> BootstrapAttributes:
        """The bootstrap values of an Access-Accept; the first instance of each counts."""
        found = BootstrapAttributes()
        ipv6 = {"home_address_ip6": "Framed-IPv6-Address",
                "home_agent_ip6": "AAA-MIP6-HA-IPv6-Address",
                "dns_ip6": "DNS-Server-IPv6-Address"}
        for key, name in ipv6.items():
            if (raw := self._first(reply, name, 16)) is not None:
                found[key] = ipaddress.IPv6Address(raw)
        if (raw := self._first(reply, "AAA-MIP6-HA-IPv4-Address", 4)) is not None:
            found["home_agent_ip4"] = ipaddress.IPv4Address(raw)
        if (raw := self._first(reply, "Framed-IP-Address", 4)) is not None:
            if ipaddress.IPv4Address(raw) not in _UNASSIGNED_IPV4:
                found["home_address_ip4"] = ipaddress.IPv4Address(raw)
        if (raw := self._first(reply, "MIP6-Home-Link-Prefix", 17)) is not None:
            found["home_link_prefix"] = _home_link_prefix(raw)
        if (raw := self._first(reply, "Session-Timeout", 4)) is not None:
            found["session_timeout"] = int.from_bytes(raw, "big")
        return found


def _require_eap(payload: bytes, code: eap.Code, where: str) -> None:
    if not payload:
        raise RadiusError(f"{where} without EAP-Message")
    try:
        actual = eap.decode(payload).code
    except eap.EapError as err:
        raise RadiusError(f"{where} carries a malformed EAP packet: {err}") from None
    if actual != code:
        raise RadiusError(f"{where} carries EAP {actual.name}, expected {code.name}")


def _mppe_key(reply: pyrad_packet.AuthPacket, value: bytes) -> bytes:
    """Decrypt one MS-MPPE key (RFC 2548 §2.4.2-2.4.3) with pyrad's salt decryption."""
    if len(value) < 2 or not value[0] & 0x80:
        raise RadiusError("MS-MPPE key without a salt whose high bit is set")
    try:
        key = reply.SaltDecrypt(value)
    except pyrad_packet.PacketError:
        raise RadiusError(f"MS-MPPE key field of {len(value)} octets is not salt + n*16") from None
    if len(key) not in MPPE_KEY_LENGTHS:
        raise RadiusError(f"MS-MPPE key of {len(key)} octets, expected 16 or 32")
    return key


def _home_link_prefix(raw: bytes) -> ipaddress.IPv6Network:
    """RFC 5447 §4.2.4: prefix length octet, then 128 bits; host bits are cleared."""
    if raw[0] > 128:
        raise RadiusError(f"MIP6-Home-Link-Prefix length {raw[0]} exceeds 128")
    return ipaddress.IPv6Network((ipaddress.IPv6Address(raw[1:]), raw[0]), strict=False)
