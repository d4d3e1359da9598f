"""Diameter EAP (RFC 4072): DER/DEA messages, sans-I/O.

The HAC relays each EAP-Response of an MN in a Diameter-EAP-Request (application 5,
command 268, Auth-Request-Type AUTHORIZE_AUTHENTICATE) under one Session-Id per MN
conversation, echoing the State of the previous answer. The Diameter-EAP-Answer's
Result-Code gives the outcome: 1001 DIAMETER_MULTI_ROUND_AUTH is another round
(:class:`~aaa_mip6.aaa.Challenge`), 2001 success (:class:`~aaa_mip6.aaa.Accept` with
EAP-Master-Session-Key as the MSK and the bootstrap AVPs below), 4001
DIAMETER_AUTHENTICATION_REJECTED (:class:`~aaa_mip6.aaa.Reject`).

The building and reading of messages is pure code shared with ``mip6-aaa-gw``
(:mod:`gateway.relay`) and the HAC's backend
(:class:`~aaa_mip6.twisted.diameter_eap.DiameterEapBackend`), which only hands them to a
:class:`~aaa_mip6.twisted.diameter_node.DiameterNode`.

Bootstrap attributes (:class:`~aaa_mip6.aaa.BootstrapAttributes`) in a successful DEA:

================== ==========================================================================
home_address_ip6/4 MIP-Mobile-Node-Address (333, RFC 4004), one per address family
home_address_ip4   also Framed-IP-Address (8, RFC 7155) if no IPv4 MIP-Mobile-Node-Address
home_agent_ip6/4   MIP-Home-Agent-Address (334) inside MIP6-Agent-Info (486, RFC 5447)
home_link_prefix   MIP6-Home-Link-Prefix (125, RFC 5447) inside MIP6-Agent-Info (also
                   read at the top level)
session_timeout    Session-Timeout (27)
dns_ip6            not carried: Diameter has no standard AVP for it
================== ==========================================================================
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from diameter.message import Avp, Message, constants

from .. import eap
from ..aaa import AaaAnswer, Accept, BootstrapAttributes, Challenge, Reject
from . import codec
from .codec import DiameterError

EAP_APPLICATION_ID = constants.APP_EAP_APPLICATION  # 5
DIAMETER_EAP_COMMAND = constants.CMD_DIAMETER_EAP  # 268: DER and DEA
AUTHORIZE_AUTHENTICATE = constants.E_AUTH_REQUEST_TYPE_AUTHORIZE_AUTHENTICATE
MULTI_ROUND_AUTH = constants.E_RESULT_CODE_DIAMETER_MULTI_ROUND_AUTH  # 1001
AUTHENTICATION_REJECTED = constants.E_RESULT_CODE_DIAMETER_AUTHENTICATION_REJECTED  # 4001
TOO_BUSY = constants.E_RESULT_CODE_DIAMETER_TOO_BUSY  # 3004
MISSING_AVP = codec.MISSING_AVP  # 5005
UNKNOWN_SESSION_ID = constants.E_RESULT_CODE_DIAMETER_UNKNOWN_SESSION_ID  # 5002

_MIP6_HOME_LINK_PREFIX_LENGTH = 17  # prefix length octet + 128 bits (RFC 5447 §4.2.4)
_UNASSIGNED_IPV4 = {ipaddress.IPv4Address("255.255.255.255"),
                    ipaddress.IPv4Address("255.255.255.254")}  # instructions (RFC 2865 §5.8)


# --- bootstrap attributes <-> AVPs ----------------------------------------------------


def bootstrap_avps(attributes: BootstrapAttributes) -> list[Avp]:
    """The DEA AVPs for ``attributes`` (see the module docstring); ``dns_ip6`` is dropped."""
    avps = [codec.new_avp(constants.AVP_MIP_MOBILE_NODE_ADDRESS, str(attributes[key]))
            for key in ("home_address_ip6", "home_address_ip4") if key in attributes]
    agent = [codec.new_avp(constants.AVP_MIP_HOME_AGENT_ADDRESS, str(attributes[key]))
             for key in ("home_agent_ip6", "home_agent_ip4") if key in attributes]
    if "home_link_prefix" in attributes:
        prefix = attributes["home_link_prefix"]
        agent.append(codec.new_avp(constants.AVP_MIP6_HOME_LINK_PREFIX,
                                   bytes([prefix.prefixlen]) + prefix.network_address.packed))
    if agent:
        avps.append(codec.new_avp(constants.AVP_MIP6_AGENT_INFO, agent))
    if "session_timeout" in attributes:
        avps.append(codec.new_avp(constants.AVP_SESSION_TIMEOUT, attributes["session_timeout"]))
    return avps


def _home_link_prefix(raw: bytes) -> ipaddress.IPv6Network:
    if len(raw) != _MIP6_HOME_LINK_PREFIX_LENGTH or raw[0] > 128:
        raise DiameterError("MIP6-Home-Link-Prefix must be a length octet up to 128 and "
                            "16 address octets", reason="bad-avp-value")
    return ipaddress.IPv6Network((ipaddress.IPv6Address(raw[1:]), raw[0]), strict=False)


def _first_of_each_family(values, keys: tuple[str, str], found: BootstrapAttributes) -> None:
    """Put the first IPv6 and the first IPv4 address of ``values`` under ``keys``."""
    for address in map(codec.as_address, values):
        found.setdefault(keys[0] if address.version == 6 else keys[1], address)


def bootstrap_from_avps(message: Message) -> BootstrapAttributes:
    """The bootstrap attributes of a successful DEA; the first instance of each counts."""
    found = BootstrapAttributes()
    _first_of_each_family(codec.avp_values(message, constants.AVP_MIP_MOBILE_NODE_ADDRESS),
                          ("home_address_ip6", "home_address_ip4"), found)
    framed = codec.avp_value(message, constants.AVP_FRAMED_IP_ADDRESS)
    if framed is not None and "home_address_ip4" not in found:
        if len(framed) != 4:
            raise DiameterError("Framed-IP-Address must have 4 octets", reason="bad-avp-value")
        if ipaddress.IPv4Address(framed) not in _UNASSIGNED_IPV4:
            found["home_address_ip4"] = ipaddress.IPv4Address(framed)
    prefixes = []
    for agent in codec.avp_values(message, constants.AVP_MIP6_AGENT_INFO):
        _first_of_each_family(codec.group_values(agent, constants.AVP_MIP_HOME_AGENT_ADDRESS),
                              ("home_agent_ip6", "home_agent_ip4"), found)
        prefixes += codec.group_values(agent, constants.AVP_MIP6_HOME_LINK_PREFIX)
    prefixes += codec.avp_values(message, constants.AVP_MIP6_HOME_LINK_PREFIX)
    if prefixes:
        found["home_link_prefix"] = _home_link_prefix(prefixes[0])
    timeout = codec.avp_value(message, constants.AVP_SESSION_TIMEOUT)
    if timeout is not None:
        found["session_timeout"] = timeout
    return found


# --- DER ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EapRequest:
    """What a Diameter-EAP-Request says: one EAP-Response of one conversation."""

    session_id: str
    origin_host: str
    user_name: str
    eap_payload: bytes = field(repr=False)  # an EAP-GTC response is the password
    state: bytes | None = field(default=None, repr=False)
    calling_station_id: str | None = None


def encode_der(origin_host: str, origin_realm: str, destination_realm: str,
               request: EapRequest, *, destination_host: str | None = None,
               nas_identifier: str | None = None) -> Message:
    """A DER carrying ``request`` (its ``origin_host`` is ignored: this node sends it)."""
    avps = [codec.new_avp(constants.AVP_SESSION_ID, request.session_id),
            codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, EAP_APPLICATION_ID),
            codec.new_avp(constants.AVP_ORIGIN_HOST, origin_host.encode()),
            codec.new_avp(constants.AVP_ORIGIN_REALM, origin_realm.encode()),
            codec.new_avp(constants.AVP_DESTINATION_REALM, destination_realm.encode())]
    if destination_host is not None:
        avps.append(codec.new_avp(constants.AVP_DESTINATION_HOST, destination_host.encode()))
    avps += [codec.new_avp(constants.AVP_AUTH_REQUEST_TYPE, AUTHORIZE_AUTHENTICATE),
             codec.new_avp(constants.AVP_USER_NAME, request.user_name)]
    if nas_identifier is not None:
        avps.append(codec.new_avp(constants.AVP_NAS_IDENTIFIER, nas_identifier))
    if request.calling_station_id is not None:
        avps.append(codec.new_avp(constants.AVP_CALLING_STATION_ID, request.calling_station_id))
    avps.append(codec.new_avp(constants.AVP_EAP_PAYLOAD, request.eap_payload, mandatory=True))
    if request.state is not None:
        avps.append(codec.new_avp(constants.AVP_STATE, request.state))
    return codec.new_request(DIAMETER_EAP_COMMAND, EAP_APPLICATION_ID, avps)


def _required(message: Message, code: int, name: str):
    value = codec.avp_value(message, code)
    if value is None:
        raise DiameterError(f"Diameter-EAP message without {name}", reason="missing-avp")
    return value


def _check_command(message: Message, request: bool) -> None:
    header = message.header
    if (header.application_id, header.command_code) != (EAP_APPLICATION_ID,
                                                        DIAMETER_EAP_COMMAND):
        raise DiameterError(f"command {header.command_code} of application "
                            f"{header.application_id} is not Diameter-EAP")
    if bool(header.is_request) != request:
        raise DiameterError("a Diameter-EAP " + ("answer" if request else "request")
                            + " where the other was expected")


def decode_der(message: Message) -> EapRequest:
    """Read a DER; DiameterError (reason ``missing-avp`` for an absent one) if it is unusable."""
    _check_command(message, request=True)
    payload = _required(message, constants.AVP_EAP_PAYLOAD, "EAP-Payload")
    try:
        eap.decode(payload)
    except eap.EapError as error:
        raise DiameterError(f"EAP-Payload: {error}", reason="bad-avp-value") from None
    return EapRequest(
        session_id=_required(message, constants.AVP_SESSION_ID, "Session-Id"),
        origin_host=codec.as_text(_required(message, constants.AVP_ORIGIN_HOST, "Origin-Host")),
        user_name=_required(message, constants.AVP_USER_NAME, "User-Name"),
        eap_payload=payload,
        state=codec.avp_value(message, constants.AVP_STATE),
        calling_station_id=codec.avp_value(message, constants.AVP_CALLING_STATION_ID))


# --- DEA ---------------------------------------------------------------------------


def application_avps() -> list[Avp]:
    """Auth-Application-Id 5 and Auth-Request-Type, which every DEA carries (RFC 4072 §3.2)."""
    return [codec.new_avp(constants.AVP_AUTH_APPLICATION_ID, EAP_APPLICATION_ID),
            codec.new_avp(constants.AVP_AUTH_REQUEST_TYPE, AUTHORIZE_AUTHENTICATE)]


def dea_avps(answer: AaaAnswer, *, state: bytes | None = None,
             multi_round_time_out: int | None = None) -> tuple[int, list[Avp]]:
    """(Result-Code, AVPs after Origin-Realm) of the DEA that carries ``answer``.

    ``state`` and ``multi_round_time_out`` go into a Challenge's DEA only.
    """
    avps = application_avps()
    if answer.eap_payload:
        avps.append(codec.new_avp(constants.AVP_EAP_PAYLOAD, answer.eap_payload, mandatory=True))
    if isinstance(answer, Challenge):
        if state is not None:
            avps.append(codec.new_avp(constants.AVP_STATE, state))
        if multi_round_time_out is not None:
            avps.append(codec.new_avp(constants.AVP_MULTI_ROUND_TIME_OUT, multi_round_time_out))
        return MULTI_ROUND_AUTH, avps
    if isinstance(answer, Reject):
        return AUTHENTICATION_REJECTED, avps
    if answer.msk is not None:
        avps.append(codec.new_avp(constants.AVP_EAP_MASTER_SESSION_KEY, answer.msk))
    return codec.SUCCESS, avps + bootstrap_avps(answer.attributes)


@dataclass(frozen=True, slots=True)
class EapAnswer:
    """What a Diameter-EAP-Answer says.

    ``answer`` is None for a Result-Code other than 1001, 2001 and 4001 (e.g. a relay's
    3002 DIAMETER_UNABLE_TO_DELIVER); ``state`` is the State to echo in the next DER.
    """

    result_code: int
    origin_host: str
    answer: AaaAnswer | None
    state: bytes | None = field(default=None, repr=False)
    error_message: str | None = None


def _eap_payload(message: Message, code: eap.Code | None, where: str) -> bytes | None:
    """The EAP-Payload, which must be an EAP packet of ``code``; required unless None."""
    payload = codec.avp_value(message, constants.AVP_EAP_PAYLOAD)
    if payload is None:
        if code is None:
            return None
        raise DiameterError(f"{where} without EAP-Payload", reason="missing-avp")
    try:
        actual = eap.decode(payload).code
    except eap.EapError as error:
        raise DiameterError(f"{where}: EAP-Payload: {error}", reason="bad-avp-value") from None
    if actual != (code or eap.Code.FAILURE):
        raise DiameterError(f"{where} carries EAP {actual.name}", reason="bad-avp-value")
    return payload


def decode_dea(message: Message) -> EapAnswer:
    """Read a DEA into an :class:`EapAnswer`; DiameterError if it contradicts itself."""
    _check_command(message, request=False)
    result = codec.result_code(message)
    if result is None:
        raise DiameterError("Diameter-EAP-Answer without Result-Code", reason="missing-avp")
    origin_host = codec.as_text(codec.avp_value(message, constants.AVP_ORIGIN_HOST, default=b""))
    if result == MULTI_ROUND_AUTH:
        answer = Challenge(_eap_payload(message, eap.Code.REQUEST, "DIAMETER_MULTI_ROUND_AUTH"))
        return EapAnswer(result, origin_host, answer, codec.avp_value(message, constants.AVP_STATE))
    if result == AUTHENTICATION_REJECTED:
        answer = Reject(_eap_payload(message, None, "DIAMETER_AUTHENTICATION_REJECTED"))
        return EapAnswer(result, origin_host, answer)
    if result == codec.SUCCESS:
        payload = _eap_payload(message, eap.Code.SUCCESS, "DIAMETER_SUCCESS")
        msk = codec.avp_value(message, constants.AVP_EAP_MASTER_SESSION_KEY)
        try:
            answer = Accept(payload, msk, bootstrap_from_avps(message))
        except ValueError as error:  # an MSK of the wrong length
            raise DiameterError(f"EAP-Master-Session-Key: {error}",
                                reason="bad-avp-value") from None
        return EapAnswer(result, origin_host, answer)
    error_message = codec.avp_value(message, constants.AVP_ERROR_MESSAGE)
    return EapAnswer(result, origin_host, None, error_message=error_message)
