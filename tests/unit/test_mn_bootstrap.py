"""mn.bootstrap: the MN's PSK machine against responses built by hand with aaa_mip6.messages."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import authenticator, container, pki, program
from aaa_mip6 import messages as m
from aaa_mip6 import tvheaders as tv
from aaa_mip6.errors import ConfigError, InvalidInput
from aaa_mip6.sa import Bootstrap, HomeAgent
from aaa_mip6.suites import SUITES, new_keys
from mn import cli
from mn.bootstrap import (
    DEFAULT_SUITES,
    Bootstrapped,
    BootstrapFailed,
    PskBootstrap,
    header_text,
    suite_codes,
)

PSK = bytes.fromhex("00112233445566778899aabbccddeeff")
MN_ID = "alice@example.org"
MN_RAND = b"\x5a" * 32
HAC_RAND = b"\xa5" * 32
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(hours=1)
BOOTSTRAP = Bootstrap(
    HomeAgent(ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv4Address("192.0.2.1"), 7872),
    home_address6=ipaddress.IPv6Address("2001:db8:1::5"),
    home_prefix6=ipaddress.IPv6Network("2001:db8:1::/64"),
    dns6=ipaddress.IPv6Address("2001:db8::53"),
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Two HAC certificates from one CA: the genuine one and a man in the middle's."""
    d = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(d)
    return (pki.make_cert(d, ca, "hac", dns_names=("hac.example",)).cert_der,
            pki.make_cert(d, ca, "mitm", dns_names=("hac.example",)).cert_der)


@pytest.fixture
def der(certs):
    return certs[0]


def machine(**options) -> PskBootstrap:
    options.setdefault("random", lambda size: MN_RAND[:size])
    options.setdefault("now", lambda: NOW)
    return PskBootstrap(MN_ID, options.pop("psk", PSK), **options)


class FakeHac:
    """Reads the MN's requests and frames hand-built responses for it."""

    def __init__(self, der: bytes, key: bytes = PSK, *, draft01: bool = False):
        self.der = der
        self.cb = authenticator.channel_binding(der)
        self.key = key
        self.draft01 = draft01
        self.deframer = container.Deframer()
        self.requests: list[m.Received] = []

    def read(self, octets: bytes, expected) -> m.Received:
        (frame,) = self.deframer.feed(octets)
        received = m.decode_request(frame.content, expected)
        self.requests.append(received)
        self.identifier = frame.identifier
        return received

    def frame(self, content: bytes, identifier: int | None = None) -> bytes:
        return container.encode(identifier or self.identifier, content)

    def respond(self, message, key: bytes | None = None) -> bytes:
        return self.frame(m.encode(message, key or self.key, self.cb, draft01=self.draft01))


def provision(suite: str = "AES_128_CBC_SHA256", *, spi: int = 4242,
              validity_end: dt.datetime = LATER, bootstrap: Bootstrap | None = BOOTSTRAP):
    keys = new_keys(SUITES[suite])
    return m.Provision(spi, SUITES[suite].code, 1, validity_end, keys.mn_to_ha_ikey,
                       keys.ha_to_mn_ikey, keys.mn_to_ha_ekey, keys.ha_to_mn_ekey, bootstrap)


def to_done(mn: PskBootstrap, hac: FakeHac, *, init: m.HacInit | None = None) -> m.Received:
    """Run MnInit -> HacInit; return the MnDone the machine sent."""
    hac.read(mn.start(hac.der), m.MnInit)
    reply = mn.receive(hac.respond(init or m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND)))
    return hac.read(reply, m.MnDone)


@pytest.fixture
def hac(der):
    return FakeHac(der)


def failure(call, *args, **kwargs) -> BootstrapFailed:
    with pytest.raises(BootstrapFailed) as caught:
        call(*args, **kwargs)
    return caught.value


# --- the whole exchange -------------------------------------------------------


def test_psk_bootstrap_produces_the_sa_and_bootstrap_data(hac):
    mn = machine()
    first = mn.start(hac.der)
    init = hac.read(first, m.MnInit).message
    assert hac.identifier == 1
    assert init == m.MnInit(MN_ID, MN_RAND, (tv.AuthMethod.PSK,))

    second = mn.receive(hac.respond(m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND)))
    done = hac.read(second, m.MnDone)
    assert hac.identifier == 2
    done.verify(PSK, hac.cb)  # the MN's auth is keyed with the PSK over the HAC's certificate
    assert done.message == m.MnDone(1, suite_codes(DEFAULT_SUITES), MN_RAND, HAC_RAND)
    assert not mn.finished

    offered = provision()
    assert mn.receive(hac.respond(m.HacDone(200, MN_RAND, HAC_RAND, provision=offered))) == b""
    assert mn.finished and mn.step == "finished"
    assert mn.result == Bootstrapped(offered.security_association(MN_ID), BOOTSTRAP)
    sa = mn.result.sa
    assert (sa.spi, sa.suite, sa.mn_id, sa.scope) == (4242, "AES_128_CBC_SHA256", MN_ID, 1)
    assert sa.mn_to_ha_ekey == offered.mn_to_ha_ekey and len(sa.mn_to_ha_ekey) == 16
    assert sa.home_address6 == BOOTSTRAP.home_address6


def test_requested_scope_and_suites_go_on_the_wire(hac):
    mn = machine(suites=["null_sha", "AES_128_CBC_SHA", "NULL_SHA"], scope=0)
    done = to_done(mn, hac).message
    assert done.scope == 0
    assert done.suites == (SUITES["NULL_SHA"].code, SUITES["AES_128_CBC_SHA"].code)
    mn.receive(hac.respond(m.HacDone(200, MN_RAND, HAC_RAND,
                                     provision=provision("NULL_SHA", bootstrap=None))))
    assert mn.result.bootstrap is None
    assert mn.result.sa.suite == "NULL_SHA" and mn.result.sa.mn_to_ha_ekey == b""


def test_responses_may_arrive_one_octet_at_a_time(hac):
    mn = machine()
    hac.read(mn.start(hac.der), m.MnInit)
    response = hac.respond(m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND))
    replies = [mn.receive(response[i:i + 1]) for i in range(len(response))]
    assert replies[:-1] == [b""] * (len(response) - 1)
    assert hac.read(replies[-1], m.MnDone).message.hac_rand == HAC_RAND


def test_draft01_authenticator_only_when_asked(der):
    hac = FakeHac(der, draft01=True)
    mn = machine(draft01=True)
    to_done(mn, hac).verify(PSK, hac.cb, draft01=True)
    mn.receive(hac.respond(m.HacDone(200, MN_RAND, HAC_RAND, provision=provision())))
    assert mn.result is not None
    assert failure(to_done, machine(), hac).reason == "bad-auth"


# --- every check that can fail ----------------------------------------------


def test_wrong_psk_at_the_hac_fails_on_init_auth(der):
    hac = FakeHac(der, key=b"another key")
    error = failure(to_done, machine(), hac)
    assert (error.step, error.reason, error.status) == ("init", "bad-auth", None)
    assert PSK.hex() not in str(error)


def test_a_man_in_the_middle_certificate_breaks_auth(certs):
    genuine, mitm = certs
    hac = FakeHac(genuine)  # the real HAC binds its auth to its own certificate...
    mn = machine()
    hac.read(mn.start(mitm), m.MnInit)  # ...but the MN's TLS ended at the MITM
    error = failure(mn.receive, hac.respond(m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND)))
    assert (error.step, error.reason) == ("init", "bad-auth")


def test_bad_auth_on_done(hac):
    mn = machine()
    to_done(mn, hac)
    done = m.HacDone(200, MN_RAND, HAC_RAND, provision=provision())
    error = failure(mn.receive, hac.respond(done, key=b"not the psk"))
    assert (error.step, error.reason) == ("done", "bad-auth")
    assert mn.result is None


def test_init_must_echo_mn_rand(hac):
    init = m.HacInit(tv.AuthMethod.PSK, b"\x01" * 32, HAC_RAND)
    error = failure(to_done, machine(), hac, init=init)
    assert (error.step, error.reason) == ("init", "rand-mismatch")


@pytest.mark.parametrize("rands", [(b"\x01" * 32, HAC_RAND), (MN_RAND, b"\x02" * 32)])
def test_done_must_echo_both_rands(hac, rands):
    mn = machine()
    to_done(mn, hac)
    error = failure(mn.receive, hac.respond(m.HacDone(200, *rands, provision=provision())))
    assert (error.step, error.reason) == ("done", "rand-mismatch")


def test_suite_must_be_one_the_mn_listed(hac):
    mn = machine(suites=["AES_128_CBC_SHA"])
    to_done(mn, hac)
    chosen = m.HacDone(200, MN_RAND, HAC_RAND, provision=provision("3DES_EDE_CBC_SHA"))
    error = failure(mn.receive, hac.respond(chosen))
    assert (error.step, error.reason) == ("done", "suite-not-offered")
    assert "3DES_EDE_CBC_SHA" in str(error)


def test_key_lengths_must_fit_the_suite(hac):
    mn = machine()
    to_done(mn, hac)
    done = m.HacDone(200, MN_RAND, HAC_RAND, provision=provision("AES_128_CBC_SHA"))
    headers = [(name, value[:-1] if name == tv.MN_TO_HA_EKEY else value)
               for name, value in done.headers()]
    lines = tv.encode_lines(headers)
    content = tv.seal(lines, authenticator.compute(PSK, authenticator.Sender.HAC, lines, hac.cb))
    error = failure(mn.receive, hac.frame(content))
    assert (error.step, error.reason) == ("done", "malformed")
    assert tv.MN_TO_HA_EKEY in str(error) and "16" in str(error)


def test_an_sa_that_already_expired_is_refused(hac):
    mn = machine()
    to_done(mn, hac)
    stale = m.HacDone(200, MN_RAND, HAC_RAND, provision=provision(validity_end=NOW))
    assert failure(mn.receive, hac.respond(stale)).reason == "expired"


def test_hac_choosing_eap_is_unexpected(hac):
    identity = bytes.fromhex("0101000501")  # EAP-Request/Identity
    error = failure(to_done, machine(), hac, init=m.HacInit(tv.AuthMethod.EAP,
                                                            eap_payload=identity))
    assert (error.step, error.reason) == ("init", "unexpected")


def test_response_identifier_must_match(hac):
    mn = machine()
    hac.read(mn.start(hac.der), m.MnInit)
    content = m.encode(m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND), PSK, hac.cb)
    assert failure(mn.receive, hac.frame(content, identifier=2)).reason == "sequence"


def test_an_unasked_second_response_is_refused(hac):
    mn = machine()
    hac.read(mn.start(hac.der), m.MnInit)
    response = hac.respond(m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND))
    assert failure(mn.receive, response + response).reason == "sequence"


def test_failure_is_final(hac):
    mn = machine()
    hac.read(mn.start(hac.der), m.MnInit)
    first = failure(mn.receive, b"\xff\x01\x00\x01x")
    assert first.reason == "version" and mn.finished and mn.result is None
    assert failure(mn.receive, b"") is first


def test_a_certificate_without_channel_binding_fails_at_start():
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hac")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW).not_valid_after(LATER).sign(key, None))
    error = failure(machine().start, cert.public_bytes(serialization.Encoding.DER))
    assert (error.step, error.reason) == ("init", "channel-binding")


# --- the HAC's status codes -------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 500, 501, 503, 504])
def test_error_status_at_init_is_a_typed_failure(hac, status):
    mn = machine()
    hac.read(mn.start(hac.der), m.MnInit)
    retry = LATER if status == 503 else None
    error = failure(mn.receive, hac.respond(m.HacError(status, retry)))
    assert (error.step, error.reason, error.status) == ("init", "status", status)
    assert error.retry_after == retry and error.authenticated
    assert str(status) in str(error) and tv.STATUS_CODES[status] in str(error)
    if retry:
        assert header_text(tv.RETRY_AFTER, retry) in str(error)


def test_status_in_a_failed_done_with_unverifiable_auth(hac):
    mn = machine()
    to_done(mn, hac)
    error = failure(mn.receive, hac.respond(m.HacDone(401, MN_RAND, HAC_RAND), key=b"dummy"))
    assert (error.step, error.reason, error.status) == ("done", "status", 401)
    assert not error.authenticated and "did not verify" in str(error)


def test_error_response_at_done(hac):
    mn = machine()
    to_done(mn, hac)
    error = failure(mn.receive, hac.respond(m.HacError(500)))
    assert (error.step, error.status, error.retry_after) == ("done", 500, None)


# --- configuration and misuse ------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"suites": []}, {"suites": ["AES_256_GCM"]}, {"scope": 2}, {"psk": b""},
])
def test_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        machine(**options)


def test_a_bad_nai_is_refused_before_the_wire():
    with pytest.raises(InvalidInput):
        PskBootstrap("not an nai@", PSK)


def test_the_psk_is_not_in_repr():
    assert PSK.hex() not in repr(machine()) and repr(PSK) not in repr(machine())


def test_call_order_is_enforced(hac):
    mn = machine()
    with pytest.raises(RuntimeError):
        mn.receive(b"")
    mn.start(hac.der)
    with pytest.raises(RuntimeError):
        mn.start(hac.der)


def test_rands_are_fresh_per_bootstrap(der):
    firsts = {container.Deframer().feed(PskBootstrap(MN_ID, PSK).start(der))[0].content
              for _ in range(3)}
    assert len(firsts) == 3


# --- whatever the HAC sends, only BootstrapFailed ------------------------------------


@given(st.binary(max_size=300))
def test_arbitrary_octets_only_raise_bootstrap_failed(certs, octets):
    mn = machine()
    mn.start(certs[0])
    try:
        assert mn.receive(octets) == b""
    except BootstrapFailed as error:
        assert error.step == "init" and error.reason
    assert mn.result is None


@given(st.binary(min_size=1, max_size=300), st.booleans())
def test_arbitrary_content_in_a_good_frame_only_raises_bootstrap_failed(certs, content, at_done):
    hac = FakeHac(certs[0])
    mn = machine()
    if at_done:
        to_done(mn, hac)
    else:
        hac.read(mn.start(hac.der), m.MnInit)
    with pytest.raises(BootstrapFailed):
        mn.receive(hac.frame(content))


# --- mip6-mn bootstrap: argument parsing and output (the run itself is an integration test) ---


@pytest.mark.parametrize(("text", "expected"), [
    ("hac.example:4433", ("hac.example", 4433)),
    ("127.0.0.1:1", ("127.0.0.1", 1)),
    ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
])
def test_hac_address_forms(text, expected):
    assert cli.parse_hac(text) == expected


@pytest.mark.parametrize("text", ["hac.example", ":4433", "hac:0", "hac:65536", "hac:x",
                                  "2001:db8::1:4433"])
def test_bad_hac_addresses(text):
    with pytest.raises(ConfigError, match="--hac"):
        cli.parse_hac(text)


def test_psk_text_errors_never_echo_the_key():
    assert cli.parse_psk(" 00ff\n", "--psk") == b"\x00\xff"
    with pytest.raises(ConfigError) as caught:
        cli.parse_psk("secretzz", "--psk")
    assert "secretzz" not in str(caught.value)
    with pytest.raises(ConfigError, match="empty"):
        cli.parse_psk("  ", "--psk")


def test_psk_file_holds_one_hex_line(tmp_path):
    good = tmp_path / "psk"
    good.write_text("# alice's key\n\n" + PSK.hex() + "\n")
    assert cli.read_psk_file(str(good)) == PSK
    two = tmp_path / "two"
    two.write_text("00ff\n11ee\n")
    with pytest.raises(ConfigError, match="found 2"):
        cli.read_psk_file(str(two))
    with pytest.raises(ConfigError, match="cannot read"):
        cli.read_psk_file(str(tmp_path / "missing"))


def bootstrapped() -> Bootstrapped:
    return Bootstrapped(provision().security_association(MN_ID), BOOTSTRAP)


def test_json_output_is_keyed_by_tv_header_names_with_keys():
    result = bootstrapped()
    out = json.loads(json.dumps(cli.as_json(result)))
    sa = result.sa
    assert out[tv.MN_ID] == MN_ID
    assert (out[tv.SPI], out[tv.SAS], out[tv.PORT]) == (4242, 1, 7872)
    assert out[tv.CIPHERSUITE] == "{00 3C}"
    assert out[tv.MN_TO_HA_IKEY] == sa.mn_to_ha_ikey.hex()
    assert out[tv.HA_TO_MN_EKEY] == sa.ha_to_mn_ekey.hex()
    assert out[tv.SA_VALIDITY_END] == "Tue, 01 Jan 2030 01:00:00 GMT"
    assert out[tv.HAA_IP6] == "2001:db8:0:0:0:0:0:1"  # the full 8-group form of the ABNF
    assert out[tv.HAA_IP4] == "192.0.2.1"
    assert ipaddress.IPv6Network(out[tv.IP6_HNP]) == BOOTSTRAP.home_prefix6
    assert tv.IP4_HOA not in out and tv.DNS_IP4 not in out


def test_text_output_hides_keys_unless_asked():
    result = bootstrapped()
    hidden = cli.as_text(result, show_keys=False)
    shown = cli.as_text(result, show_keys=True)
    for key in (result.sa.mn_to_ha_ikey, result.sa.ha_to_mn_ekey):
        assert key.hex() not in hidden and key.hex() in shown
    assert "hidden" in hidden and "hidden" not in shown
    assert "AES_128_CBC_SHA256" in hidden and "signaling and data" in hidden
    assert any(line.split() == [tv.SPI, "4242"] for line in hidden.splitlines())


def test_usage_errors_exit_2_before_any_connection(tmp_path, capsys):
    ca = tmp_path / "missing.pem"
    status = cli.main(["bootstrap", "--hac", "127.0.0.1:9", "--ca", str(ca), "--id", MN_ID,
                       "--psk", "zz"])
    assert status == program.EXIT_CONFIG
    assert "--psk" in capsys.readouterr().err


# --- the MN Init as TLS early data ------------------------------------------------


def test_an_init_sent_as_early_data_is_not_sent_again(hac):
    mn = machine()
    early = mn.early_request()
    assert hac.read(early, m.MnInit).message == m.MnInit(MN_ID, MN_RAND, (tv.AuthMethod.PSK,))
    assert hac.identifier == 1
    assert mn.early_request() == early  # asked again (a second connection): the same Init
    assert mn.start(hac.der, sent_early=True) == b""
    reply = mn.receive(hac.respond(m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND)))
    hac.read(reply, m.MnDone).verify(PSK, hac.cb)  # channel binding from start() all the same
    assert hac.identifier == 2


def test_an_init_the_hac_did_not_take_early_is_sent_after_the_handshake(hac):
    mn = machine()
    early = mn.early_request()
    sent = mn.start(hac.der)
    assert sent == early  # the same octets, the same Identifier
    hac.read(sent, m.MnInit)
    assert hac.identifier == 1
    reply = mn.receive(hac.respond(m.HacInit(tv.AuthMethod.PSK, MN_RAND, HAC_RAND)))
    assert hac.read(reply, m.MnDone).message.hac_rand == HAC_RAND
    assert hac.identifier == 2


def test_early_data_rules(hac):
    with pytest.raises(RuntimeError, match="without an early_request"):
        machine().start(hac.der, sent_early=True)
    started = machine()
    started.start(hac.der)
    with pytest.raises(RuntimeError, match="already started"):
        started.early_request()
