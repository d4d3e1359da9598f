"""hac.core: the sans-I/O HAC session, driven by an in-test MN built from aaa_mip6.messages."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import container
from aaa_mip6 import messages as m
from aaa_mip6.authenticator import EAP_KEY
from aaa_mip6.sa import Bootstrap, HomeAgent
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod
from hac.actions import Close, Failed, ProvisionSA, Send, Succeeded
from hac.core import HacSession, Phase, SessionSettings
from hac.provisioning import SaPolicy

ALICE = "alice@example.org"
STRANGER = "mallory@example.org"
PSK = bytes(range(32))
CB = hashlib.sha256(b"the HAC's certificate").digest()
MN_RAND = b"\x11" * 32
HAC_RAND = b"\x22" * 32
AES = SUITES["AES_128_CBC_SHA"]
XCBC = SUITES["AES_128_CBC_SHA256"]


def settings(policy: SaPolicy | None = None, **changes) -> SessionSettings:
    values = dict(psk_lookup={ALICE: PSK}.get, server_secret=b"s" * 32, channel_binding=CB,
                  choose_suite=(policy or SaPolicy()).choose_suite,
                  random=lambda size: HAC_RAND[:size])
    values.update(changes)
    return SessionSettings(**values)


def frame(identifier: int, message, key: bytes | None = None, **options) -> bytes:
    return container.encode(identifier, m.encode(message, key, CB if key else None, **options))


def init(mn_id: str = ALICE, methods=(AuthMethod.PSK,)) -> bytes:
    return frame(1, m.MnInit(mn_id, MN_RAND, methods))


def done(key: bytes = PSK, suites=(AES.code,), scope: int = 1, identifier: int = 2,
         mn_rand: bytes = MN_RAND, hac_rand: bytes = HAC_RAND, **options) -> bytes:
    return frame(identifier, m.MnDone(scope, suites, mn_rand, hac_rand), key, **options)


def sent(actions) -> bytes:
    """The one Send's octets; every response is a whole container."""
    sends = [action.data for action in actions if isinstance(action, Send)]
    assert len(sends) == 1
    return sends[0]


def response(actions, expected, key: bytes | None, **options) -> tuple[int, object]:
    """Deframe and decode the response; verify its auth (label HAC) when ``key`` is given."""
    (reply,) = container.Deframer().feed(sent(actions))
    received = m.decode_response(reply.content, expected)
    if key is not None:
        received.verify(key, CB, **options)
    return reply.identifier, received.message


def assert_refused(actions, status: int, key: bytes | None = EAP_KEY, identifier: int = 1):
    assert isinstance(actions[-1], Close)
    assert [type(a) for a in actions] == [Send, Failed, Close]
    assert actions[1].status == status
    got_identifier, message = response(actions, m.HacError, key)
    assert (got_identifier, message.status) == (identifier, status)


def provision(spi: int = 4242) -> m.Provision:
    return m.Provision(
        spi, AES.code, 1, datetime(2030, 1, 1, tzinfo=timezone.utc),
        b"\x01" * 20, b"\x02" * 20, b"\x03" * 16, b"\x04" * 16,
        Bootstrap(HomeAgent(None, None, 7872)),
    )


def authenticated(session: HacSession, **done_options) -> list:
    session.data_received(init())
    return session.data_received(done(**done_options))


def test_psk_happy_path_provisions_then_closes():
    session = HacSession(settings())
    identifier, hac_init = response(session.data_received(init()), m.HacInit, PSK)
    assert identifier == 1
    assert (hac_init.auth_method, hac_init.mn_rand, hac_init.hac_rand) == (
        AuthMethod.PSK, MN_RAND, HAC_RAND)
    assert session.phase is Phase.DONE and session.mn_id == ALICE

    actions = session.data_received(done(suites=(XCBC.code, AES.code), scope=0))
    assert actions == [ProvisionSA(ALICE, XCBC, 0)]
    assert session.phase is Phase.PROVISIONING

    actions = session.provisioned(provision())
    identifier, hac_done = response(actions, m.HacDone, PSK)
    assert identifier == 2
    assert (hac_done.status, hac_done.provision, hac_done.mn_rand, hac_done.hac_rand) == (
        200, provision(), MN_RAND, HAC_RAND)
    assert actions[1:] == [Succeeded(4242, "AES_128_CBC_SHA"), Close()]
    assert session.phase is Phase.CLOSED
    assert session.data_received(done()) == []


def test_frames_split_byte_by_byte_and_joined_are_handled():
    session = HacSession(settings())
    stream = init()
    actions = []
    for index in range(len(stream)):
        actions += session.data_received(stream[index:index + 1])
    assert response(actions, m.HacInit, PSK)[0] == 1
    joined = HacSession(settings()).data_received(init() + done())
    assert [type(a) for a in joined] == [Send, ProvisionSA]


def test_draft01_option_uses_unlabelled_auth():
    session = HacSession(settings(draft01=True))
    response(session.data_received(init()), m.HacInit, PSK, draft01=True)
    assert isinstance(session.data_received(done(draft01=True))[0], ProvisionSA)


MALFORMED_INIT = {
    "version bits": b"\x20\x01\x00\x03abc",
    "reserved bits": b"\x01\x01\x00\x03abc",
    "identifier 0": b"\x00\x00\x00\x03abc",
    "length 0": b"\x00\x01\x00\x00",
    "no end-of-message": container.encode(1, b"mn-id:alice@example.org\r\n"),
    "not a header line": container.encode(1, b"garbage\r\n\r\n"),
    "unknown header": container.encode(1, init()[4:-2] + b"x-extra:1\r\n\r\n"),
    "bad value": container.encode(1, b"mn-id:alice@example.org\r\nmn-rand:zz\r\n"
                                     b"auth-method:psk\r\n\r\n"),
    "repeated header": container.encode(1, init()[4:-2] + b"auth-method:psk\r\n\r\n"),
    "missing header": container.encode(
        1, b"mn-id:alice@example.org\r\nauth-method:psk\r\n\r\n"),
    "Done first": done(identifier=1),
    "Init with auth": frame(1, m.MnInit(ALICE, MN_RAND, (AuthMethod.PSK,)))[:-2]
    + b"auth:00\r\n\r\n",
}


@pytest.mark.parametrize("data", MALFORMED_INIT.values(), ids=MALFORMED_INIT.keys())
def test_every_malformed_first_request_is_400_then_close(data):
    session = HacSession(settings())
    assert_refused(session.data_received(data), 400)
    assert session.phase is Phase.CLOSED
    assert session.data_received(init()) == []


def test_oversize_length_is_refused_before_its_content_arrives():
    session = HacSession(settings(max_content=100))
    assert_refused(session.data_received(b"\x00\x01\x00\x65"), 400)


MALFORMED_DONE = {
    "Init again": frame(2, m.MnInit(ALICE, MN_RAND, (AuthMethod.PSK,))),
    "no auth": container.encode(2, m.encode(m.MnDone(1, (AES.code,), MN_RAND, HAC_RAND),
                                            PSK, CB)[:-72] + b"\r\n"),
    "bad suite list": container.encode(
        2, b"mn-rand:" + MN_RAND.hex().encode() + b"\r\nhac-rand:" + HAC_RAND.hex().encode()
        + b"\r\nmip6-sas:1\r\nmip6-suitelist:{00 99}\r\nauth:00\r\n\r\n"),
    "EAP Done": frame(2, m.MnDone(1, (AES.code,), eap_payload=b"\x02\x01\x00\x05\x01"), PSK),
}


@pytest.mark.parametrize("data", MALFORMED_DONE.values(), ids=MALFORMED_DONE.keys())
def test_every_malformed_done_is_400_keyed_with_the_psk(data):
    session = HacSession(settings())
    session.data_received(init())
    assert_refused(session.data_received(data), 400, key=PSK, identifier=2)


@pytest.mark.parametrize("identifier", [2, 255])
def test_wrong_first_identifier_is_400_copying_it(identifier):
    session = HacSession(settings())
    data = frame(identifier, m.MnInit(ALICE, MN_RAND, (AuthMethod.PSK,)))
    assert_refused(session.data_received(data), 400, identifier=identifier)


@pytest.mark.parametrize("identifier", [1, 3])
def test_wrong_done_identifier_is_400(identifier):
    session = HacSession(settings())
    session.data_received(init())
    assert_refused(session.data_received(done(identifier=identifier)), 400, key=PSK,
                   identifier=identifier)


def test_request_before_the_answer_is_400():
    session = HacSession(settings())
    authenticated(session)
    assert_refused(session.data_received(done(identifier=3)), 400, key=PSK, identifier=3)
    assert session.provisioned(provision()) == []


def test_no_psk_in_offered_methods_is_501():
    session = HacSession(settings())
    assert_refused(session.data_received(init(methods=(AuthMethod.EAP,))), 501)


def test_psk_offered_after_eap_is_accepted():
    session = HacSession(settings())
    actions = session.data_received(init(methods=(AuthMethod.EAP, AuthMethod.PSK)))
    assert response(actions, m.HacInit, PSK)[1].auth_method is AuthMethod.PSK


def failed_done(actions, key: bytes | None) -> tuple[m.HacDone, Failed]:
    assert isinstance(actions[-1], Close)
    return response(actions, m.HacDone, key)[1], actions[1]


def test_wrong_key_is_401():
    hac_done, failed = failed_done(authenticated(HacSession(settings()), key=b"wrong"), PSK)
    assert (hac_done.status, hac_done.provision, failed.status) == (401, None, 401)


def test_rands_of_another_session_are_401():
    actions = authenticated(HacSession(settings()), hac_rand=b"\x44" * 32)
    hac_done, failed = failed_done(actions, PSK)
    assert (hac_done.status, hac_done.hac_rand, failed.reason) == (
        401, HAC_RAND, "rands do not match")


@pytest.fixture
def hmac_calls(monkeypatch):
    """Counts every HMAC the process computes (hmac.digest and hmac.new)."""
    calls = []
    digest, new = hmac.digest, hmac.new
    monkeypatch.setattr(hmac, "digest", lambda *a, **k: calls.append("digest") or digest(*a, **k))
    monkeypatch.setattr(hmac, "new", lambda *a, **k: calls.append("new") or new(*a, **k))
    return calls


def test_unknown_identity_is_answered_like_a_wrong_key(hmac_calls):
    def run(mn_id: str) -> tuple[list, list, int]:
        hmac_calls.clear()
        session = HacSession(settings())
        first = session.data_received(init(mn_id))
        second = session.data_received(done(key=b"wrong"))
        return first, second, len(hmac_calls)

    known_init, known_done, known_work = run(ALICE)
    unknown_init, unknown_done, unknown_work = run(STRANGER)
    assert known_work == unknown_work > 0
    # Same step: the HAC Init succeeds for both, same shape and size.
    for actions in (known_init, unknown_init):
        assert [type(a) for a in actions] == [Send]
        assert response(actions, m.HacInit, None)[1].hac_rand == HAC_RAND
    assert len(sent(known_init)) == len(sent(unknown_init))
    # Same status at Done.
    for actions in (known_done, unknown_done):
        assert response(actions, m.HacDone, None)[1].status == 401
        assert [type(a) for a in actions] == [Send, Failed, Close]
    assert len(sent(known_done)) == len(sent(unknown_done))
    assert unknown_done[1].reason == "unknown identity"


@pytest.mark.parametrize("key", [PSK, b"anything", EAP_KEY])
def test_unknown_identity_with_any_key_is_401(key):
    session = HacSession(settings())
    session.data_received(init(STRANGER))
    hac_done, _ = failed_done(session.data_received(done(key=key)), None)
    assert hac_done.status == 401


def test_dummy_key_is_stable_per_identity_and_secret():
    def hac_init(mn_id: str, secret: bytes = b"s" * 32) -> bytes:
        return sent(HacSession(settings(server_secret=secret)).data_received(init(mn_id)))

    assert hac_init(STRANGER) == hac_init(STRANGER)
    assert hac_init(STRANGER) != hac_init("eve@example.org")
    assert hac_init(STRANGER) != hac_init(STRANGER, b"t" * 32)


def test_no_common_suite_is_501_after_authentication():
    policy = SaPolicy(suites=frozenset({XCBC}))
    actions = authenticated(HacSession(settings(policy)), suites=(AES.code,))
    hac_done, failed = failed_done(actions, PSK)
    assert (hac_done.status, failed.status) == (501, 501)


def test_provisioning_failure_answers_its_status():
    session = HacSession(settings())
    authenticated(session)
    hac_done, failed = failed_done(session.provisioning_failed(500, "store down"), PSK)
    assert (hac_done.status, failed) == (500, Failed(500, "store down"))


def test_store_unavailable_is_503_with_retry_after_keyed_with_the_psk():
    now = datetime(2026, 12, 7, 6, 0, 0, 400000, tzinfo=timezone.utc)
    session = HacSession(settings(now=lambda: now))
    authenticated(session)
    actions = session.provisioning_failed(503, "store: failover", retry_after=7)
    assert isinstance(actions[-1], Close) and actions[1] == Failed(503, "store: failover")
    identifier, error = response(actions, m.HacError, PSK)
    assert identifier == 2  # the MN's Done's
    assert (error.status, error.retry_after) == (503, datetime(2026, 12, 7, 6, 0, 7,
                                                               tzinfo=timezone.utc))
    assert session.provisioning_failed(503, "again", retry_after=7) == []


def test_short_server_secret_is_refused():
    with pytest.raises(ValueError):
        settings(server_secret=b"short")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_an_error_response_or_wait(data):
    session = HacSession(settings())
    actions = session.data_received(data)
    if actions:
        assert isinstance(actions[-1], Close)
        status = response(actions, m.HacError, EAP_KEY)[1].status
        assert status in (400, 501)


@given(st.binary(min_size=1, max_size=200))
def test_arbitrary_content_after_init_is_400_or_401(content):
    session = HacSession(settings())
    session.data_received(init())
    actions = session.data_received(container.encode(2, content))
    assert isinstance(actions[-1], Close)
    status = actions[1].status
    assert status in (400, 401)
