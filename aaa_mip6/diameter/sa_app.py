"""The SA delivery application: HAC -> HA security associations over Diameter, sans-I/O.

RFC 6618 leaves open how an SA gets from the HAC to the HA. This application carries it
(docs/diameter.md, section "SA delivery application", is the reference):

- **SA-Push** (HAC -> HA): a new SA, or the current copy of one.
- **SA-Query** (HA -> HAC): the SA under an SPI the HA does not know (an MN's first
  packet, or any packet after an HA restart); the HAC answers from its durable store.
- **SA-Revoke** (HAC -> HA): the SA is revoked; the HA then answers the MN's Binding
  Updates with 176 (REINIT_SA_WITH_HAC).

The SA travels in RFC 5778 AVPs where their meaning fits: User-Name (the MN's
``mn-id``), MIP-MN-HA-MSA (492) grouping MIP-MN-HA-SPI (491), MIP-Session-Key (343:
the four keys concatenated, MN->HA integrity, HA->MN integrity, MN->HA encryption,
HA->MN encryption, each as long as the suite says) and MIP-MSA-Lifetime (367, seconds
left when sent), MIP-Mobile-Node-Address (333, the home addresses), MIP6-Agent-Info
(486) with MIP-Home-Agent-Address (334, the HA the HAC assigned). What RFC 5778 has no
AVP for goes in vendor AVPs (Vendor-Id 32473, RFC 5612's documentation number, unless
the operator sets its own) inside the MIP-MN-HA-MSA: the RFC 6618 ciphersuite code, the
SA scope (``mip6-sas``), the validity end (authoritative; the lifetime is informative)
and the revoked flag.

The application is vendor-specific: Application-Id 16809689 (16777216, the start of
the vendor-specific range, plus 32473) advertised in a Vendor-Specific-Application-Id
group; commands 8388800-8388802 from the vendor-specific command-code range. Both are
settings of :class:`SaApplication`, so an operator can use IANA-assigned numbers.

Every parser raises only :class:`~aaa_mip6.diameter.codec.DiameterError` (an
:class:`~aaa_mip6.errors.InvalidInput`), whatever the message holds. Keys never appear
in a repr or an error message.
"""

from __future__ import annotations

import ipaddress
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from diameter.message import Avp, Message, constants
from diameter.message.avp import AvpOctetString, AvpTime, AvpUnsigned32
from diameter.message.avp import avp as avp_dictionary

from .. import settings
from ..sa import SCOPE_ALL, SCOPE_SIGNALING, SPI_MAX, SPI_MIN, SecurityAssociation
from ..suites import SUITES
from ..tvheaders import CIPHERSUITE_CODES
from . import codec
from .codec import DiameterError
from .peer import DEFAULT_TW
from .router import DEFAULT_REQUEST_TIMEOUT

DEFAULT_VENDOR_ID = 32473  # RFC 5612: reserved for documentation and examples
VENDOR_SPECIFIC_APPLICATIONS = 16_777_216  # RFC 6733 §11.3: first vendor-specific id
DEFAULT_APPLICATION_ID = VENDOR_SPECIFIC_APPLICATIONS + DEFAULT_VENDOR_ID  # 16809689
SA_PUSH = 8_388_800  # RFC 6733 §11.2.1: 8388608..16777213 are vendor-specific commands
SA_QUERY = 8_388_801
SA_REVOKE = 8_388_802
COMMAND_NAMES = {SA_PUSH: "SA-Push", SA_QUERY: "SA-Query", SA_REVOKE: "SA-Revoke"}

# Our vendor AVPs (inside MIP-MN-HA-MSA), Vendor-Id = SaApplication.vendor_id.
AVP_CIPHERSUITE = 1  # OctetString, 2 octets: the RFC 6618 §5.6.5 suite code, e.g. 00 2F
AVP_SA_SCOPE = 2  # Unsigned32: 0 signaling only, 1 signaling and data (mip6-sas)
AVP_SA_VALIDITY_END = 3  # Time: the SA's validity end (whole seconds, UTC)
AVP_SA_REVOKED = 4  # Unsigned32: 1 if the HAC revoked the SA
VENDOR_AVPS = {
    AVP_CIPHERSUITE: ("MIP6-TLS-Ciphersuite", AvpOctetString),
    AVP_SA_SCOPE: ("MIP6-TLS-SA-Scope", AvpUnsigned32),
    AVP_SA_VALIDITY_END: ("MIP6-TLS-SA-Validity-End", AvpTime),
    AVP_SA_REVOKED: ("MIP6-TLS-SA-Revoked", AvpUnsigned32),
}

NO_STATE_MAINTAINED = constants.E_AUTH_SESSION_STATE_NO_STATE_MAINTAINED
USER_UNKNOWN = 5030  # RFC 4006 DIAMETER_USER_UNKNOWN: the HAC has no SA under that SPI
MISSING_AVP = codec.MISSING_AVP  # 5005

_CODE_TO_SUITE = {code: name for name, code in CIPHERSUITE_CODES.items()}
_NTP_TO_UNIX = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_NTP_ERA1_TO_UNIX = (1 << 32) - _NTP_TO_UNIX  # RFC 2030: values below 2**31 are after 2036
_registered: set[int] = set()
_register_lock = threading.Lock()


def register_vendor_avps(vendor_id: int) -> None:
    """Teach python-diameter our vendor AVPs under ``vendor_id`` (once per id)."""
    with _register_lock:
        if vendor_id in _registered:
            return
        for code, (name, kind) in VENDOR_AVPS.items():
            avp_dictionary.register(code, name, kind, vendor=vendor_id, mandatory=True)
        _registered.add(vendor_id)


def _time_payload(moment: datetime) -> bytes:
    """RFC 6733 Time (NTP seconds, RFC 2030 eras). python-diameter's own codec is an hour
    off after 2036 and reads naive local time, so this module does it itself."""
    return struct.pack("!I", (int(moment.timestamp()) + _NTP_TO_UNIX) & 0xFFFFFFFF)


def _time_value(avp: Avp) -> datetime:
    """A Time AVP as aware UTC."""
    if len(avp.payload) != 4:
        raise DiameterError("a Time AVP has four octets", reason="bad-avp-value")
    (seconds,) = struct.unpack("!I", avp.payload)
    unix = seconds + _NTP_ERA1_TO_UNIX if seconds < 1 << 31 else seconds - _NTP_TO_UNIX
    return datetime.fromtimestamp(unix, timezone.utc)


@dataclass(frozen=True, slots=True)
class SaMessage:
    """An SA as a push or a query answer carries it, with the HA the HAC assigned."""

    sa: SecurityAssociation
    home_agents: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """What any request of the application says beyond its SA data."""

    command: int
    session_id: str
    origin_host: str
    origin_realm: str
    spi: int
    mn_id: str | None = None
    sa: SaMessage | None = field(default=None)


@dataclass(frozen=True, slots=True)
class SaApplication:
    """The numbers of the application and how to build and read its messages.

    ``vendor_id`` is our vendor AVPs' Vendor-Id; ``application_id`` the Auth-Application-Id
    advertised (in a Vendor-Specific-Application-Id group) and put in each header.
    """

    vendor_id: int = DEFAULT_VENDOR_ID
    application_id: int = DEFAULT_APPLICATION_ID

    def __post_init__(self):
        if not 1 <= self.vendor_id <= 0xFFFFFFFF:
            raise ValueError("the Vendor-Id must be 1..4294967295")
        if not 1 <= self.application_id < codec.RELAY_APPLICATION_ID:
            raise ValueError("the Application-Id must be 1..4294967294")
        register_vendor_avps(self.vendor_id)

    @property
    def vendor_application(self) -> tuple[int, int]:
        """For ``LocalNode.vendor_applications``."""
        return (self.vendor_id, self.application_id)

    # --- building ---------------------------------------------------------------

    def _vendor_avp(self, code: int, value) -> Avp:
        if code == AVP_SA_VALIDITY_END:
            avp = Avp.new(code, self.vendor_id)
            avp.payload = _time_payload(value)
            return avp
        return codec.new_avp(code, value, self.vendor_id)

    def sa_avps(self, message: SaMessage, now: float | None = None) -> list[Avp]:
        """User-Name, MIP-MN-HA-MSA, MIP-Mobile-Node-Address and MIP6-Agent-Info of an SA."""
        sa = message.sa
        now = time.time() if now is None else now
        keys = sa.mn_to_ha_ikey + sa.ha_to_mn_ikey + sa.mn_to_ha_ekey + sa.ha_to_mn_ekey
        lifetime = max(0, min(0xFFFFFFFF, int(sa.validity_end.timestamp() - now)))
        msa = [codec.new_avp(constants.AVP_MIP_MN_HA_SPI, sa.spi),
               codec.new_avp(constants.AVP_MIP_SESSION_KEY, keys),
               codec.new_avp(constants.AVP_MIP_MSA_LIFETIME, lifetime),
               self._vendor_avp(AVP_CIPHERSUITE, CIPHERSUITE_CODES[sa.suite]),
               self._vendor_avp(AVP_SA_SCOPE, sa.scope),
               self._vendor_avp(AVP_SA_VALIDITY_END, sa.validity_end),
               self._vendor_avp(AVP_SA_REVOKED, int(sa.revoked))]
        avps = [codec.new_avp(constants.AVP_USER_NAME, sa.mn_id),
                codec.new_avp(constants.AVP_MIP_MN_HA_MSA, msa)]
        avps += [codec.new_avp(constants.AVP_MIP_MOBILE_NODE_ADDRESS, str(address))
                 for address in (sa.home_address6, sa.home_address4) if address is not None]
        if message.home_agents:
            avps.append(codec.new_avp(constants.AVP_MIP6_AGENT_INFO, [
                codec.new_avp(constants.AVP_MIP_HOME_AGENT_ADDRESS, str(address))
                for address in message.home_agents]))
        return avps

    def _request(self, command: int, session_id: str, origin_host: str, origin_realm: str,
                 destination_realm: str, destination_host: str | None,
                 body: list[Avp]) -> Message:
        avps = [codec.new_avp(constants.AVP_SESSION_ID, session_id),
                codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, self.application_id),
                codec.new_avp(constants.AVP_AUTH_SESSION_STATE, NO_STATE_MAINTAINED),
                codec.new_avp(constants.AVP_ORIGIN_HOST, origin_host.encode()),
                codec.new_avp(constants.AVP_ORIGIN_REALM, origin_realm.encode()),
                codec.new_avp(constants.AVP_DESTINATION_REALM, destination_realm.encode())]
        if destination_host is not None:
            avps.append(codec.new_avp(constants.AVP_DESTINATION_HOST, destination_host.encode()))
        return codec.new_request(command, self.application_id, avps + body)

    def push_request(self, session_id: str, origin_host: str, origin_realm: str,
                     destination_realm: str, destination_host: str | None,
                     message: SaMessage, now: float | None = None) -> Message:
        """SA-Push-Request: the whole SA for the HA ``destination_host``."""
        return self._request(SA_PUSH, session_id, origin_host, origin_realm, destination_realm,
                             destination_host, self.sa_avps(message, now))

    def query_request(self, session_id: str, origin_host: str, origin_realm: str,
                      destination_realm: str, destination_host: str | None,
                      spi: int) -> Message:
        """SA-Query-Request: the HA asks for the SA under ``spi``."""
        return self._request(SA_QUERY, session_id, origin_host, origin_realm, destination_realm,
                             destination_host, [self._spi_msa(spi)])

    def revoke_request(self, session_id: str, origin_host: str, origin_realm: str,
                       destination_realm: str, destination_host: str | None,
                       spi: int, mn_id: str) -> Message:
        """SA-Revoke-Request: the SA under ``spi`` (of ``mn_id``) is revoked."""
        return self._request(SA_REVOKE, session_id, origin_host, origin_realm, destination_realm,
                             destination_host, [codec.new_avp(constants.AVP_USER_NAME, mn_id),
                                                self._spi_msa(spi)])

    @staticmethod
    def _spi_msa(spi: int) -> Avp:
        """A MIP-MN-HA-MSA naming an SA by its SPI only (queries and revocations)."""
        return codec.new_avp(constants.AVP_MIP_MN_HA_MSA,
                             [codec.new_avp(constants.AVP_MIP_MN_HA_SPI, spi)])

    def application_avps(self) -> list[Avp]:
        """The AVPs every answer of the application carries after Origin-Realm."""
        return [codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, self.application_id),
                codec.new_avp(constants.AVP_AUTH_SESSION_STATE, NO_STATE_MAINTAINED)]

    # --- reading ----------------------------------------------------------------

    def check_command(self, message: Message, command: int, *, request: bool) -> None:
        """DiameterError unless ``message`` is a request (or answer) of ``command``."""
        header = message.header
        if header.application_id != self.application_id or header.command_code != command:
            raise DiameterError(f"command {header.command_code} of application "
                                f"{header.application_id} is not {COMMAND_NAMES[command]}")
        if bool(header.is_request) != request:
            raise DiameterError(f"a {COMMAND_NAMES[command]} "
                                + ("answer" if request else "request")
                                + " where the other was expected")

    def decode_request(self, message: Message) -> Request:
        """Read any request of the application; a push must carry a whole SA."""
        command = message.header.command_code
        if command not in COMMAND_NAMES:
            raise DiameterError(f"command {command} is not one of the SA delivery application")
        self.check_command(message, command, request=True)
        spi = self._spi(message)
        sa = self.decode_sa(message) if command == SA_PUSH else None
        return Request(
            command=command,
            session_id=_required(message, constants.AVP_SESSION_ID, "Session-Id"),
            origin_host=codec.as_text(_required(message, constants.AVP_ORIGIN_HOST,
                                                "Origin-Host")),
            origin_realm=codec.as_text(_required(message, constants.AVP_ORIGIN_REALM,
                                                 "Origin-Realm")),
            spi=spi,
            mn_id=codec.avp_value(message, constants.AVP_USER_NAME),
            sa=sa)

    def decode_query_answer(self, message: Message) -> SaMessage | None:
        """An SA-Query-Answer: the SA (2001), None (5030: no SA under that SPI).

        Any other Result-Code is a DiameterError with reason ``unexpected-result``.
        """
        self.check_command(message, SA_QUERY, request=False)
        result = _result(message)
        if result == USER_UNKNOWN:
            return None
        if result != codec.SUCCESS:
            raise DiameterError(f"SA-Query answered {result}", reason="unexpected-result")
        return self.decode_sa(message)

    def check_answer(self, message: Message, command: int) -> None:
        """An SA-Push or SA-Revoke answer: DiameterError unless it says 2001."""
        self.check_command(message, command, request=False)
        result = _result(message)
        if result != codec.SUCCESS:
            raise DiameterError(f"{COMMAND_NAMES[command]} answered {result}",
                                reason="unexpected-result")

    def _msa(self, message: Message) -> list[Avp]:
        groups = codec.avp_values(message, constants.AVP_MIP_MN_HA_MSA)
        if not groups:
            raise DiameterError("no MIP-MN-HA-MSA", reason="missing-avp")
        return groups[0]

    def _spi(self, message: Message) -> int:
        spis = codec.group_values(self._msa(message), constants.AVP_MIP_MN_HA_SPI)
        if not spis:
            raise DiameterError("MIP-MN-HA-MSA without MIP-MN-HA-SPI", reason="missing-avp")
        if not SPI_MIN <= spis[0] <= SPI_MAX:
            raise DiameterError(f"MIP-MN-HA-SPI {spis[0]} is outside {SPI_MIN}..{SPI_MAX}",
                                reason="bad-avp-value")
        return spis[0]

    def _vendor(self, msa: list[Avp], code: int) -> Avp:
        for avp in msa:
            if avp.code == code and avp.vendor_id == self.vendor_id:
                return avp
        raise DiameterError(f"MIP-MN-HA-MSA without {VENDOR_AVPS[code][0]}",
                            reason="missing-avp")

    def _vendor_number(self, msa: list[Avp], code: int, allowed: tuple[int, ...]) -> int:
        value = codec.group_values([self._vendor(msa, code)], code, vendor_id=self.vendor_id)[0]
        if value not in allowed:
            raise DiameterError(f"{VENDOR_AVPS[code][0]} {value} is not one of {allowed}",
                                reason="bad-avp-value")
        return value

    def decode_sa(self, message: Message) -> SaMessage:
        """The SA of a push or a query answer (see the module docstring for the AVPs)."""
        msa = self._msa(message)
        spi = self._spi(message)
        suite_code = codec.group_values([self._vendor(msa, AVP_CIPHERSUITE)], AVP_CIPHERSUITE,
                                        vendor_id=self.vendor_id)[0]
        suite_name = _CODE_TO_SUITE.get(bytes(suite_code))
        if suite_name is None:
            raise DiameterError("MIP6-TLS-Ciphersuite is not an RFC 6618 suite",
                                reason="bad-avp-value")
        suite = SUITES[suite_name]
        keys = codec.group_values(msa, constants.AVP_MIP_SESSION_KEY)
        sizes = (suite.ikey_length, suite.ikey_length, suite.ekey_length, suite.ekey_length)
        if not keys or len(keys[0]) != sum(sizes):
            raise DiameterError(f"MIP-Session-Key must hold {sum(sizes)} octets for "
                                f"{suite_name}", reason="bad-avp-value")
        split, offset = [], 0
        for size in sizes:
            split.append(bytes(keys[0][offset:offset + size]))
            offset += size
        mn_id = codec.avp_value(message, constants.AVP_USER_NAME)
        if not mn_id:
            raise DiameterError("an SA without User-Name", reason="missing-avp")
        home6 = home4 = None
        for value in codec.avp_values(message, constants.AVP_MIP_MOBILE_NODE_ADDRESS):
            address = codec.as_address(value)
            if address.version == 6:
                home6 = home6 or address
            else:
                home4 = home4 or address
        agents = []
        for group in codec.avp_values(message, constants.AVP_MIP6_AGENT_INFO):
            agents += [codec.as_address(value) for value in
                       codec.group_values(group, constants.AVP_MIP_HOME_AGENT_ADDRESS)]
        sa = SecurityAssociation(
            spi=spi, suite=suite_name, mn_to_ha_ikey=split[0], ha_to_mn_ikey=split[1],
            mn_to_ha_ekey=split[2], ha_to_mn_ekey=split[3],
            validity_end=_time_value(self._vendor(msa, AVP_SA_VALIDITY_END)),
            scope=self._vendor_number(msa, AVP_SA_SCOPE, (SCOPE_SIGNALING, SCOPE_ALL)),
            mn_id=mn_id, home_address6=home6, home_address4=home4,
            revoked=bool(self._vendor_number(msa, AVP_SA_REVOKED, (0, 1))))
        return SaMessage(sa, tuple(agents))


def _required(message: Message, code: int, name: str):
    value = codec.avp_value(message, code)
    if value is None:
        raise DiameterError(f"SA delivery message without {name}", reason="missing-avp")
    return value


def _result(message: Message) -> int:
    result = codec.result_code(message)
    if result is None:
        raise DiameterError("an SA delivery answer without Result-Code", reason="missing-avp")
    return result


# --- the Diameter node both ends run (Twisted; imported only here) ---------------------


@dataclass(frozen=True)
class NodeSettings:
    """Where an SA-delivery node is, whom it talks to, and its TLS credentials.

    ``destination_realm`` (and optionally ``destination_host``) is where this end's requests go: the
    HAs' realm for the HAC, the HAC's realm for an HA. ``listen`` accepts peers (TLS),
    ``peers`` are kept connected: ``(Origin-Host, address, port)``. ``cert``/``key``
    name ``origin_host``; ``ca`` verifies peers. ``insecure_tcp`` (tests and captures
    only) makes every transport plain TCP: SA keys then cross the wire in clear.
    """

    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: str | None = None
    listen: tuple[str, int] | None = None
    peers: tuple[tuple[str, str, int], ...] = ()
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    insecure_tcp: bool = False
    vendor_id: int = DEFAULT_VENDOR_ID
    application_id: int = DEFAULT_APPLICATION_ID
    watchdog: float = DEFAULT_TW
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    @property
    def application(self) -> SaApplication:
        return SaApplication(self.vendor_id, self.application_id)


def _peers(value) -> tuple[tuple[str, str, int], ...]:
    """``["NAME=ADDRESS:PORT", ...]``: each peer's Origin-Host and where it listens."""
    if not isinstance(value, list):
        raise ValueError('must be a list of "NAME=ADDRESS:PORT"')
    return tuple(settings.diameter_peer(entry, port_required=True) for entry in value)


def _file(value) -> str:
    text = settings.string(value)
    if " " in text:
        raise ValueError("must be a file name without spaces")
    return text


_NODE_PARSERS = {
    "origin_host": settings.diameter_identity,
    "origin_realm": settings.diameter_identity,
    "destination_realm": settings.diameter_identity,
    "destination_host": settings.diameter_identity,
    "listen": settings.host_port,
    "peers": _peers,
    "cert": _file,
    "key": _file,
    "ca": _file,
    "insecure_tcp": settings.boolean,
    "vendor_id": settings.integer(1, 0xFFFFFFFF),
    "application_id": settings.integer(1, 0xFFFFFFFE),
    "watchdog": settings.seconds(6.0),
    "request_timeout": settings.seconds(0.1),
}
NODE_KEYS = frozenset(_NODE_PARSERS)


def node_settings(table, where: str = "") -> NodeSettings:
    """Validate a settings table (keys :data:`NODE_KEYS`, parsed as every program's
    settings are, :mod:`aaa_mip6.settings`); ConfigError names the key (as ``where.key``
    when ``where`` is given)."""
    from ..errors import ConfigError

    def fail(key: str, problem: str):
        raise ConfigError(f"{where}.{key}: {problem}" if where else f"{key}: {problem}")

    if not isinstance(table, dict):
        raise ConfigError(f"{where or 'the Diameter settings'}: must be a table")
    unknown = set(table) - NODE_KEYS
    if unknown:
        fail(sorted(unknown)[0], "unknown setting")
    values = {}
    for key, parse in _NODE_PARSERS.items():
        if key in table:
            try:
                values[key] = parse(table[key])
            except ValueError as error:
                fail(key, str(error))
    for key in ("origin_host", "origin_realm", "destination_realm"):
        if key not in values:
            fail(key, "required")
    if not values.get("insecure_tcp") and not all(k in values for k in ("cert", "key", "ca")):
        fail("cert", "cert, key and ca are required (SA keys cross Diameter only inside TLS)")
    if "listen" not in values and not values.get("peers"):
        fail("peers", "give peers to connect to, listen, or both")
    return NodeSettings(**values)


