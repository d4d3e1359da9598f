"""mn.bootstrap.EapBootstrap against the real sans-I/O HAC (hac.core) and a fake AAA,
byte for byte: Figure 5, MSK-keyed Done, the continue rule, refusals; the --eap CLI."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import authenticator, container, eap, pki
from aaa_mip6 import messages as m
from aaa_mip6.aaa import Accept, AaaUnavailable, Challenge, Reject
from aaa_mip6.errors import ConfigError
from aaa_mip6.sa import Bootstrap, HomeAgent
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod
from hac import core
from hac.provisioning import SaPolicy
from mn import cli
from mn.bootstrap import BootstrapFailed, EapBootstrap
from mn.eap import EapCredentials
from mn.eap.md5 import chap_response
from mn.eap.peer import EapPeer

MN_ID = "alice@example.org"
PASSWORD = "correct horse"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
AES = SUITES["AES_128_CBC_SHA"]
CHALLENGE = b"\x42" * 16


@pytest.fixture(scope="module")
def der(tmp_path_factory) -> bytes:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(directory)
    return pki.make_cert(directory, ca, "hac", dns_names=("hac.example",)).cert_der


class Md5Aaa:
    """An EAP-MD5 server standing in for RADIUS: one challenge, then Accept or Reject."""

    REQUEST = eap.EapPacket(eap.Code.REQUEST, 5, eap.Type.MD5_CHALLENGE,
                            bytes([len(CHALLENGE)]) + CHALLENGE).encode()

    def __init__(self, password: str = PASSWORD, msk: bytes | None = None, repeats: int = 0):
        self.password = password
        self.msk = msk
        self.repeats = repeats  # times the challenge is sent again after the MD5 response
        self.asked: list[tuple[str, bytes]] = []

    def answer(self, user_name: str, payload: bytes):
        self.asked.append((user_name, payload))
        packet = eap.decode(payload)
        if packet.type == eap.Type.IDENTITY:
            return Challenge(self.REQUEST)
        if self.repeats:
            self.repeats -= 1
            return Challenge(self.REQUEST)  # the peer repeats its response (RFC 4137)
        expected = chap_response(5, self.password.encode(), CHALLENGE)
        if packet.data[1:17] == expected:
            return Accept(eap.EapPacket(eap.Code.SUCCESS, packet.identifier).encode(), self.msk)
        return Reject(eap.EapPacket(eap.Code.FAILURE, packet.identifier).encode())


def provision(scope: int) -> m.Provision:
    return m.Provision(4242, AES.code, scope, NOW + timedelta(days=1), os.urandom(20),
                       os.urandom(20), os.urandom(16), os.urandom(16),
                       Bootstrap(HomeAgent(None, None, 7872)))


def run(der: bytes, machine: EapBootstrap, aaa, **settings):
    """Shuttle bytes between ``machine`` and a HacSession whose AAA is ``aaa``."""
    options = dict(psk_lookup=lambda _: None, server_secret=b"s" * 32,
                   channel_binding=authenticator.channel_binding(der),
                   choose_suite=SaPolicy().choose_suite, methods=(AuthMethod.EAP,),
                   now=lambda: NOW, random=lambda size: b"\x01" * size)  # EAP Id 1, not 5
    options.update(settings)
    hac = core.HacSession(core.SessionSettings(**options))
    outgoing = machine.start(der)
    while not machine.finished:
        actions = hac.data_received(outgoing)
        while True:
            asks = [action for action in actions if isinstance(action, (core.AskAaa,
                                                                         core.ProvisionSA))]
            if not asks:
                break
            ask = asks[0]
            if isinstance(ask, core.ProvisionSA):
                actions = hac.provisioned(provision(ask.requested_scope))
            else:
                answer = aaa.answer(ask.user_name, ask.eap_payload)
                actions = (hac.aaa_failed(answer) if isinstance(answer, Exception)
                           else hac.aaa_answered(answer))
        (send,) = [action for action in actions if isinstance(action, core.Send)]
        outgoing = machine.receive(send.data)
    return machine.result, hac


def md5_machine(password: str = PASSWORD, **options) -> EapBootstrap:
    peer = EapPeer("md5", EapCredentials(MN_ID, password))
    return EapBootstrap(MN_ID, peer, now=lambda: NOW, **options)


def test_md5_through_the_hac_succeeds_with_key_1(der):
    aaa = Md5Aaa()
    result, hac = run(der, md5_machine(suites=("AES_128_CBC_SHA",)), aaa)
    assert result.sa.spi == 4242 and result.sa.mn_id == MN_ID
    assert [user for user, _ in aaa.asked] == [MN_ID, MN_ID]
    assert hac.phase is core.Phase.CLOSED


def test_identity_from_mn_id_saves_a_round_trip(der):
    aaa = Md5Aaa()
    machine = md5_machine()
    result, _ = run(der, machine, aaa, eap_identity_from_mn_id=True)
    assert result is not None
    assert machine._lockstep.exchanges == 2  # Init (with the MD5 challenge), Done


class KeyedPeer:
    """A peer whose method derives ``msk``: MD5 underneath, an MSK on top."""

    def __init__(self, msk: bytes):
        self.inner = EapPeer("md5", EapCredentials(MN_ID, PASSWORD))
        self.method = self.inner.method
        self._msk = msk

    def receive(self, packet: bytes):
        return self.inner.receive(packet)

    @property
    def method_done(self):
        return self.inner.method_done

    @property
    def msk(self):
        return self._msk if self.inner.method_done else None

    @property
    def success(self):
        return self.inner.success


@pytest.mark.parametrize("size", [32, 64])
def test_done_keyed_with_the_msk_both_ends_hold(der, size):
    msk = os.urandom(size)
    machine = EapBootstrap(MN_ID, KeyedPeer(msk), now=lambda: NOW)
    result, _ = run(der, machine, Md5Aaa(msk=msk))
    assert result is not None


def test_different_msks_end_in_401(der):
    machine = EapBootstrap(MN_ID, KeyedPeer(os.urandom(64)), now=lambda: NOW)
    with pytest.raises(BootstrapFailed) as caught:
        run(der, machine, Md5Aaa(msk=os.urandom(64)))
    assert (caught.value.status, caught.value.step, caught.value.authenticated) == (
        401, "done", True)


def test_continue_rule_the_mn_goes_on_after_its_done(der):
    # MD5 is done after its response, so it went in a Done; the AAA asks again: the HAC
    # answers with a Mid and the MN sends its Done again.
    aaa = Md5Aaa(repeats=1)
    machine = md5_machine()
    result, _ = run(der, machine, aaa)
    assert result is not None and len(aaa.asked) == 3
    assert machine._lockstep.exchanges == 4  # Init, Mid (identity), Done, Done


def test_wrong_password_is_401_with_eap_failure(der):
    with pytest.raises(BootstrapFailed) as caught:
        run(der, md5_machine("wrong"), Md5Aaa())
    failure = caught.value
    assert (failure.reason, failure.status, failure.step, failure.authenticated) == (
        "status", 401, "done", True)


def test_aaa_unavailable_gives_503_and_retry_after(der):
    class Down:
        def answer(self, user_name, payload):
            return AaaUnavailable("down", retry_after=30)

    with pytest.raises(BootstrapFailed) as caught:
        run(der, md5_machine(), Down())
    assert caught.value.status == 503
    assert caught.value.retry_after == NOW + timedelta(seconds=30)


def test_a_hac_that_only_runs_psk_answers_501(der):
    with pytest.raises(BootstrapFailed) as caught:
        run(der, md5_machine(), Md5Aaa(), methods=(AuthMethod.PSK,))
    assert (caught.value.status, caught.value.step) == (501, "init")


def test_the_hac_choosing_psk_is_unexpected(der):
    hac_init = m.HacInit(AuthMethod.PSK, b"\x01" * 32, b"\x02" * 32)
    machine = md5_machine()
    machine.start(der)
    content = m.encode(hac_init, b"k", authenticator.channel_binding(der))
    with pytest.raises(BootstrapFailed):
        machine.receive(container.encode(1, content))


@given(st.binary(max_size=300))
def test_arbitrary_octets_only_raise_bootstrap_failed(der, octets):
    machine = md5_machine()
    machine.start(der)
    try:
        machine.receive(octets)
    except BootstrapFailed:
        pass


def test_repr_names_no_secret():
    assert PASSWORD not in repr(md5_machine())


# --- CLI ----------------------------------------------------------------------------


def args(*extra: str):
    return cli.build_parser().parse_args(["bootstrap", "--hac", "h:1", "--ca", "ca.pem", "--id",
                                     MN_ID, *extra])


def test_eap_options_become_credentials(tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\nignored\n")
    credentials = cli.eap_credentials(args(
        "--eap", "ttls", "--phase2", "mschapv2", "--anonymous-identity", "anon@example.org",
        "--password-file", str(password_file), "--eap-ca", "r.pem", "--eap-tls-max", "1.2"))
    assert credentials == EapCredentials(MN_ID, PASSWORD, anonymous_identity="anon@example.org",
                                         ca_cert=cli.Path("r.pem"), phase2="mschapv2",
                                         tls_max_version="1.2")
    assert PASSWORD not in repr(credentials)


@pytest.mark.parametrize("extra, message", [
    (("--eap", "md5"), "needs --password"),
    (("--eap", "tls", "--eap-ca", "c"), "needs --cert and --key"),
    (("--eap", "peap", "--password", "x"), "needs --eap-ca"),
    (("--eap", "md5", "--password-file", "/nonexistent/pw"), "cannot read"),
])
def test_missing_eap_options_are_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message):
        cli.eap_credentials(args(*extra))


def test_eap_and_psk_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        args("--eap", "md5", "--psk", "00")
    assert "not allowed with" in capsys.readouterr().err


def test_identity_defaults_to_the_mn_id():
    assert cli.eap_credentials(args("--eap", "gtc", "--password", "x")).identity == MN_ID


def test_a_non_tls_method_still_refuses_requests_after_it_is_done():
    peer = EapPeer("md5", EapCredentials(MN_ID, PASSWORD))
    peer.receive(Md5Aaa.REQUEST)
    with pytest.raises(eap.EapError, match="after the method finished"):
        peer.receive(eap.EapPacket(eap.Code.REQUEST, 6, eap.Type.MD5_CHALLENGE,
                                   bytes([1, 0])).encode())
