"""hac.core, rule by rule: each test states one security rule of the HAC session and
kills the mutants of ``make mutation`` (docs/mutation.md) that would break it.

Helpers come from test_hac_core (the in-test MN) and test_hac_eap (its EAP flow).

Equivalent mutants (survive by design, nothing observable changes):

- ``_relay_challenge``: ``self._mn_done = ""`` instead of None, and
  ``self._answering_init = None`` instead of False. After a relayed challenge the session
  waits for a Mid or a Done, and either sets ``_mn_done`` again before it is read;
  ``_answering_init`` is only read for its truth value.
- ``aaa_failed``: ``later.astimezone(None)`` instead of UTC: the ``retry-after``
  formatter converts any aware datetime to GMT, so the wire is the same.
- ``_Refusal.__init__``: ``super().__init__(None)``: a refusal is read through its
  ``status`` and ``reason`` only, never through ``str()``.
- ``HacSession.__init__``: initial values the session sets before it reads them
  (``_identity_known``, ``_mn_rand``, ``_hac_rand``, ``_identifier``, ``_method``, ``_suite``,
  ``_eap_success``; ``mn_id = ""``, which ``repr`` shows as "-" like None), and falsy
  swaps (``_user_name = None``, ``_answering_init = None``): in the PSK flow ``_on_init``
  sets the key, identity, rands and method before the Done is read; in the EAP flow
  ``_accepted`` sets the suite and ``_eap_success`` before provisioning reads them.
- ``_close``: ``self._eap_success = None`` or ``b"XXXX"``: a closed session reads nothing.
- ``_on_done``: ``auth_ok = None`` instead of False (only its truth value is read).
- ``_key_for`` / ``_start_eap`` / ``_eap_identity``: ``"UTF-8"`` and ``"SHA256"`` for
  ``"utf-8"`` and ``"sha256"``: codec and digest names are case-insensitive.
- ``_start_eap``: ``random(2)[0]``: the first octet of two random octets is as random.
- ``_on_init``: ``runs = None`` or joined with another separator: the 501 lists the
  HAC's methods only when the MN offers none of them; with two methods in all (psk,
  eap), a HAC running both always shares one, so the list has one name.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

import pytest

from aaa_mip6 import container, eap
from aaa_mip6 import messages as m
from aaa_mip6.aaa import AaaTimeout, AaaUnavailable, Accept, Reject
from aaa_mip6.authenticator import EAP_KEY
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod
from hac.actions import AskAaa, Close, Failed, Send
from hac.core import HacSession
from hac.provisioning import SaPolicy
from tests.unit import test_hac_eap as eap_flow
from tests.unit.test_hac_core import (
    PSK,
    STRANGER,
    done,
    failed_done,
    init,
    response,
    settings,
)

SERVER_SECRET = b"s" * 32  # what settings() configures


def dummy_key(mn_id: str) -> bytes:
    """The key an unknown identity's HAC Init is keyed with (hac.core module docstring)."""
    return hmac.digest(SERVER_SECRET, b"aaa-mip6 HAC dummy PSK\x00" + mn_id.encode(), "sha256")


def test_unknown_identity_is_refused_even_with_the_dummy_key_it_was_answered_with():
    """The dummy key answers probes of unknown identities; it never authenticates one.

    An MN that read the HAC Init of an unknown identity knows everything but the server
    secret; it must not get an SA by presenting the key the Init verifies with.
    """
    session = HacSession(settings())
    hac_init = session.data_received(init(STRANGER))
    response(hac_init, m.HacInit, dummy_key(STRANGER))  # this is the key the HAC used
    actions = session.data_received(done(key=dummy_key(STRANGER)))
    assert [type(action) for action in actions] == [Send, Failed, Close]
    hac_done, failed = failed_done(actions, None)
    assert (hac_done.status, hac_done.provision) == (401, None)
    assert failed == Failed(401, "unknown identity")


def test_a_known_identity_is_not_authenticated_by_its_dummy_key():
    """The PSK, not the dummy key of the same identity, authenticates a known MN."""
    session = HacSession(settings())
    session.data_received(init())
    hac_done, failed = failed_done(session.data_received(done(key=dummy_key("alice@example.org"))),
                                   PSK)
    assert (hac_done.status, failed.reason) == (401, "auth does not verify")


# --- the EAP flow (RFC 6618 §5.9, spec notes §4) ------------------------------------------

def test_the_eap_failure_replacing_a_success_copies_its_identifier_rfc3748_4_2():
    """Provisioning fails after the AAA's Accept: the Done's EAP-Failure takes the place of
    the EAP-Success the MN would have got, so it carries that packet's Identifier."""
    session = HacSession(eap_flow.settings())
    eap_flow.at_done(session, eap_flow.MSK64)
    success = eap.EapPacket(eap.Code.SUCCESS, 0x5a).encode()
    session.aaa_answered(Accept(success, eap_flow.MSK64))
    _, hac_done = eap_flow.reply(session.provisioning_failed(500, "store: down"), m.HacDone)
    assert eap.decode(hac_done.eap_payload) == eap.EapPacket(eap.Code.FAILURE, 0x5a)


def test_an_eap_failure_replacing_no_packet_has_identifier_0():
    """An Accept without EAP payload (a Diameter DEA may omit it) and a Done that does not
    verify: the 401's EAP-Failure has nothing to copy, so its Identifier is 0."""
    session = HacSession(eap_flow.settings())
    eap_flow.at_done(session, EAP_KEY)
    actions = session.aaa_answered(Accept(b"", eap_flow.MSK64))
    _, hac_done = eap_flow.reply(actions, m.HacDone)
    assert eap.decode(hac_done.eap_payload) == eap.EapPacket(eap.Code.FAILURE, 0)
    assert actions[1] == Failed(401, "Done auth does not verify with the MSK")


def test_a_done_that_does_not_verify_with_key_1_names_key_1_in_the_log():
    session = HacSession(eap_flow.settings())
    eap_flow.at_done(session, eap_flow.MSK64)
    actions = session.aaa_answered(Accept(eap_flow.SUCCESS, None))
    assert actions[1] == Failed(401, "Done auth does not verify with the key 1")


def test_the_aaa_user_name_is_the_mn_id_when_the_first_response_is_not_an_identity():
    """Only an EAP-Response/Identity names the AAA User-Name; any other first response
    (here an EAP-MD5 response whose data would read as a name) leaves mn-id."""
    session = HacSession(eap_flow.settings())
    session.data_received(eap_flow.init())
    first = eap.EapPacket(eap.Code.RESPONSE, 0x22, eap.Type.MD5_CHALLENGE, b"eve").encode()
    assert session.data_received(eap_flow.mid(2, first)) == [AskAaa(eap_flow.MN_ID, first)]


def test_an_eap_identity_that_is_not_utf8_is_400():
    session = HacSession(eap_flow.settings())
    session.data_received(eap_flow.init())
    identity = eap.EapPacket(eap.Code.RESPONSE, 0x22, eap.Type.IDENTITY, b"\xff\xfe").encode()
    actions = session.data_received(eap_flow.mid(2, identity))
    assert actions[1] == Failed(400, "the EAP identity is not UTF-8")
    assert eap_flow.reply(actions, m.HacError)[1].status == 400


@pytest.mark.parametrize("delay", [0, 1])
def test_retry_after_is_at_least_one_second_away(delay):
    """A 503 never tells the MN to retry now: retry-after is now + max(1 s, the delay)."""
    session = HacSession(eap_flow.settings())
    eap_flow.at_done(session)
    actions = session.aaa_failed(AaaUnavailable("down", retry_after=delay))
    error = eap_flow.reply(actions, m.HacError)[1]
    assert error.retry_after == eap_flow.NOW + timedelta(seconds=1)


@pytest.mark.parametrize("error, status, reason", [
    (AaaTimeout("no answer"), 504, "AAA: AaaTimeout: no answer"),
    (AaaUnavailable("down", retry_after=5), 503, "AAA: AaaUnavailable: down"),
    (RuntimeError("bug"), 500, "AAA: RuntimeError: bug"),
])
def test_an_aaa_failure_is_logged_with_its_type_and_text(error, status, reason):
    session = HacSession(eap_flow.settings())
    eap_flow.at_done(session)
    assert session.aaa_failed(error)[1] == Failed(status, reason)


def test_a_reject_without_eap_failure_is_logged_as_a_rejection():
    session = HacSession(eap_flow.settings())
    eap_flow.at_done(session)
    assert session.aaa_answered(Reject(None))[1] == Failed(401, "the AAA rejected the MN: no "
                                                                   "EAP-Failure")


def test_an_accept_before_the_done_is_logged_as_such():
    session = HacSession(eap_flow.settings())
    session.data_received(eap_flow.init())
    session.data_received(eap_flow.mid(2, eap_flow.IDENTITY))
    actions = session.aaa_answered(Accept(eap_flow.SUCCESS, eap_flow.MSK64))
    assert actions[1] == Failed(400, "the AAA accepted before the MN sent Done")


def test_a_refusal_logs_its_reason():
    actions = HacSession(settings()).data_received(init(methods=(AuthMethod.EAP,)))
    assert actions[1] == Failed(501, "the MN offers no method this HAC runs (psk)")


def test_an_accept_to_the_identity_the_hac_answered_itself_is_400():
    """With eap.identity_from_mn_id the HAC asks the AAA before any MN message: an Accept
    to that first question has no Done to verify, so it is refused, not trusted."""
    session = HacSession(eap_flow.settings(eap_identity_from_mn_id=True))
    session.data_received(eap_flow.init())
    actions = session.aaa_answered(Accept(eap_flow.SUCCESS, eap_flow.MSK64))
    assert actions[1] == Failed(400, "the AAA accepted before the MN sent Done")
    assert eap_flow.reply(actions, m.HacError)[1].status == 400


def test_a_draft01_hac_keys_its_error_responses_the_draft01_way():
    session = HacSession(settings(draft01=True))
    session.data_received(init())
    actions = session.data_received(done(draft01=True, identifier=3))
    _, error = response(actions, m.HacError, PSK, draft01=True)
    assert error.status == 400


def test_a_server_secret_of_16_octets_is_enough():
    assert HacSession(settings(server_secret=b"s" * 16)).phase.name == "INIT"


@pytest.mark.parametrize("changes, message", [
    (dict(server_secret=b"s" * 15), "the server secret needs at least 16 octets"),
    (dict(methods=()), "the HAC needs at least one auth method"),
])
def test_unusable_settings_are_refused_saying_which(changes, message):
    with pytest.raises(ValueError) as caught:
        settings(**changes)
    assert str(caught.value) == message


def psk_session_at_done() -> HacSession:
    session = HacSession(settings())
    session.data_received(init())
    return session


def eap_session_at_mid() -> HacSession:
    session = HacSession(eap_flow.settings())
    session.data_received(eap_flow.init())
    return session


# Every refusal logs why (Failed.reason, the HAC's log only):
# (session, request, status, what the reason starts with)
REFUSAL_REASONS = {
    "EAP Done in a PSK session": (
        psk_session_at_done, lambda: eap_flow.done(2, eap_flow.IDENTITY), 400,
        "an EAP Done in a PSK session"),
    "PSK Done in an EAP session": (
        eap_session_at_mid, lambda: eap_flow.frame(2, m.MnDone(1, (eap_flow.AES.code,),
                                                                eap_flow.MN_RAND, b"\x22" * 32)),
        400, "a PSK Done in an EAP session"),
    "EAP Done with no allowed suite": (
        lambda: _eap_with(choose_suite=lambda _: None),
        lambda: eap_flow.done(2, eap_flow.IDENTITY), 501, "no ciphersuite of the MN is allowed"),
    "Mid with a bad auth": (
        eap_session_at_mid, lambda: eap_flow.frame(2, m.MnMid(eap_flow.IDENTITY), b"2"), 401,
        "Mid auth does not verify"),
    "malformed Done": (
        psk_session_at_done, lambda: container.encode(2, b"mn-id:x\r\n\r\n"), 400,
        "malformed MnDone: "),
    "framing": (
        lambda: HacSession(settings()), lambda: b"\x20\x01\x00\x01x", 400,
        "framing: container version 1 is not 0"),
    "request before the answer": (
        lambda: _eap_at_aaa(), lambda: eap_flow.mid(3, eap_flow.response(3)), 400,
        "a request arrived before the last was answered"),
}


def _eap_with(**changes) -> HacSession:
    session = HacSession(eap_flow.settings(**changes))
    session.data_received(eap_flow.init())
    return session


def _eap_at_aaa() -> HacSession:
    session = eap_session_at_mid()
    session.data_received(eap_flow.mid(2, eap_flow.IDENTITY))
    return session


@pytest.mark.parametrize("case", REFUSAL_REASONS)
def test_every_refusal_logs_why(case):
    start, request, status, reason = REFUSAL_REASONS[case]
    failed = start().data_received(request())[1]
    assert failed.status == status and failed.reason.startswith(reason)


def test_no_allowed_suite_after_psk_authentication_logs_why():
    policy = SaPolicy(suites=frozenset({SUITES["AES_128_CBC_SHA256"]}))
    session = HacSession(settings(policy))
    session.data_received(init())
    assert session.data_received(done())[1] == Failed(501, "no ciphersuite of the MN is allowed")


def test_a_session_shows_its_mn_and_phase_and_nothing_else():
    session = HacSession(settings())
    assert repr(session) == "<HacSession - INIT>"
    session.data_received(init())
    assert repr(session) == "<HacSession alice@example.org DONE>"
