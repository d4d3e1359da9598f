"""PSK bootstrap end to end: the MN (library and ``mip6-mn``) against a real ``mip6-hac``.

Everything runs over real TLS on 127.0.0.1; the HAC is a subprocess started by
``lab.servers.hac`` with its own CA, PSK file and SQLite store.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from aaa_mip6 import authenticator, container, pki
from aaa_mip6 import messages as m
from aaa_mip6 import tvheaders as tv
from aaa_mip6.errors import AuthenticatorError
from aaa_mip6.iana import MIPV6TLS_PORT
from aaa_mip6.sa import SPI_MAX, SPI_MIN
from aaa_mip6.store import open_store
from aaa_mip6.suites import SUITES
from aaa_mip6.twisted.tls import ClientTLS, ServerTLS, peer_certificate_der
from lab.reactors import run_on_fresh_reactor
from lab.servers.hac import (
    HA_ADDRESS,
    HOA_PREFIX,
    TEST_CONFIG,
    HacProcess,
    make_setup,
    mn_ids,
)
from mn import client
from mn.bootstrap import DEFAULT_SUITES, BootstrapFailed, PskBootstrap

pytestmark = pytest.mark.integration

MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
MANY = 10_000
IN_FLIGHT = 32
UNDER_LOAD = 300  # bootstraps of the load the HAC is killed under
KILL_IN_FLIGHT = 32  # of which at most this many at once: most start after the kill
KILL_AFTER = 60  # acknowledged SAs before the kill -9


REFUSED_SUITE = "NULL_SHA256"  # the one suite the module's HAC does not allow


@pytest.fixture(scope="module")
def hac(tmp_path_factory):
    setup = make_setup(tmp_path_factory.mktemp("hac"), identities=mn_ids(8))
    allowed = [name for name in SUITES if name != REFUSED_SUITE]
    with HacProcess(setup, config={**TEST_CONFIG, "sa": {"suites": allowed}}) as process:
        yield process


def tls_for(hac: HacProcess) -> ClientTLS:
    return ClientTLS(hac.host, hac.setup.ca.cert_path)


def machine_for(hac: HacProcess, number: int = 0, **options) -> PskBootstrap:
    identity = sorted(hac.setup.psks)[number % len(hac.setup.psks)]
    return PskBootstrap(identity, hac.setup.psks[identity], **options)


def bootstrap_once(hac: HacProcess, machine: PskBootstrap, *, port: int | None = None):
    async def scenario(reactor):
        return await client.bootstrap(reactor, tls_for(hac), port or hac.port, machine)
    return run_on_fresh_reactor(scenario)


def failure_of(hac: HacProcess, machine: PskBootstrap) -> BootstrapFailed:
    with pytest.raises(BootstrapFailed) as caught:
        bootstrap_once(hac, machine)
    return caught.value


def assert_stored(store_url: str, sa) -> None:
    with open_store(store_url) as store:
        record = store.get(sa.spi)
    assert record is not None, f"SPI {sa.spi} was acknowledged but is not in the store"
    assert record.sa.replace(revoked=False) == sa.replace(revoked=False)


# --- a full bootstrap -------------------------------------------------------------


def test_library_bootstrap_gives_sa_and_bootstrap_data(hac):
    mn = machine_for(hac)
    result = bootstrap_once(hac, mn)
    sa, boot = result
    assert SPI_MIN <= sa.spi <= SPI_MAX
    assert sa.mn_id == mn.mn_id and sa.scope == 1
    assert sa.suite == DEFAULT_SUITES[0]  # the MN's first choice, which the HAC allows
    suite = SUITES[sa.suite]
    assert len(sa.mn_to_ha_ikey) == len(sa.ha_to_mn_ikey) == suite.ikey_length
    assert len(sa.mn_to_ha_ekey) == len(sa.ha_to_mn_ekey) == suite.ekey_length
    assert len({sa.mn_to_ha_ikey, sa.ha_to_mn_ikey, sa.mn_to_ha_ekey, sa.ha_to_mn_ekey}) == 4
    assert sa.validity_end > datetime.now(timezone.utc)
    assert boot.home_agent.address6 == ipaddress.IPv6Address(HA_ADDRESS)
    assert boot.home_agent.port == MIPV6TLS_PORT
    assert boot.home_prefix6 == ipaddress.IPv6Network(HOA_PREFIX)
    assert boot.home_address6 in boot.home_prefix6 and boot.home_address6 == sa.home_address6
    assert_stored(hac.setup.store_url, sa)
    again = bootstrap_once(hac, machine_for(hac))
    assert again.sa.spi != sa.spi
    assert again.bootstrap.home_address6 == boot.home_address6  # stable for a returning MN


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(MN_SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout)


def cli_args(hac: HacProcess, identity: str, psk_file: Path) -> list[str]:
    return ["bootstrap", "--hac", hac.address, "--ca", str(hac.setup.ca.cert_path),
            "--id", identity, "--psk-file", str(psk_file)]


def key_file(directory: Path, key: bytes) -> Path:
    path = directory / f"psk-{key.hex()[:8]}"
    pki.write_private(path, key.hex().encode() + b"\n")
    return path


def test_cli_json_and_text_output(hac, tmp_path):
    identity = sorted(hac.setup.psks)[1]
    psk_file = key_file(tmp_path, hac.setup.psks[identity])
    done = run_cli(*cli_args(hac, identity, psk_file), "--json", "--suites",
                   "AES_128_CBC_SHA,NULL_SHA", "--sas", "0")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out[tv.MN_ID] == identity
    assert out[tv.CIPHERSUITE] == "{00 2F}" and out[tv.SAS] == 0
    assert SPI_MIN <= out[tv.SPI] <= SPI_MAX
    assert len(bytes.fromhex(out[tv.MN_TO_HA_EKEY])) == 16
    assert ipaddress.IPv6Address(out[tv.HAA_IP6]) == ipaddress.IPv6Address(HA_ADDRESS)
    assert ipaddress.IPv6Address(out[tv.IP6_HOA]) in ipaddress.IPv6Network(HOA_PREFIX)
    with open_store(hac.setup.store_url) as store:
        record = store.get(out[tv.SPI])
    assert record.sa.mn_to_ha_ekey.hex() == out[tv.MN_TO_HA_EKEY]
    assert record.sa.scope == 0 and record.sa.mn_id == identity

    text = run_cli(*cli_args(hac, identity, psk_file))
    assert text.returncode == 0, text.stderr
    assert "AES_128_CBC_SHA256" in text.stdout and "hidden" in text.stdout
    spi = next(line.split()[1] for line in text.stdout.splitlines()
               if line.startswith(tv.SPI))
    with open_store(hac.setup.store_url) as store:
        stored = store.get(int(spi)).sa
    assert stored.mn_to_ha_ikey.hex() not in text.stdout
    shown = run_cli(*cli_args(hac, identity, psk_file), "--show-keys")
    assert shown.returncode == 0 and "hidden" not in shown.stdout


def test_cli_failure_exits_non_zero_with_the_reason(hac, tmp_path):
    identity = sorted(hac.setup.psks)[2]
    wrong = key_file(tmp_path, bytes(16))
    refused = run_cli(*cli_args(hac, identity, wrong))
    assert refused.returncode == 1
    assert "init" in refused.stderr and "auth" in refused.stderr
    assert refused.stdout == ""
    assert hac.setup.psks[identity].hex() not in refused.stderr

    good = key_file(tmp_path, hac.setup.psks[identity])
    no_suite = run_cli(*cli_args(hac, identity, good), "--suites", REFUSED_SUITE)
    assert no_suite.returncode == 1
    assert "done" in no_suite.stderr and "501 Not Implemented" in no_suite.stderr

    wrong_name = cli_args(hac, identity, good)
    wrong_name[2] = f"localhost:{hac.port}"  # resolves to loopback; not a name in the cert
    mismatch = run_cli(*wrong_name)
    assert mismatch.returncode == 1 and "tls" in mismatch.stderr
    assert "does not match 'localhost'" in mismatch.stderr

    stranger = pki.make_ca(tmp_path, "stranger")
    wrong_ca = cli_args(hac, identity, good)
    wrong_ca[4] = str(stranger.cert_path)
    untrusted = run_cli(*wrong_ca)
    assert untrusted.returncode == 1 and "chain rejected" in untrusted.stderr


# --- attacks --------------------------------------------------------------------


class _RelaySide(Protocol):
    """One leg of a relay: writes what it reads into its partner leg."""

    def __init__(self, relayed: list[int]):
        self.partner: _RelaySide | None = None
        self.pending: list[bytes] = []
        self.relayed = relayed

    def dataReceived(self, data):  # noqa: N802 (Twisted API)
        self.relayed.append(len(data))
        if self.partner is None or self.partner.transport is None:
            self.pending.append(data)
        else:
            self.partner.transport.write(data)

    def join(self, partner: _RelaySide) -> None:
        self.partner, partner.partner = partner, self
        for side in (self, partner):
            for data in side.pending:
                side.partner.transport.write(data)
            side.pending.clear()

    def connectionLost(self, reason):  # noqa: N802 (Twisted API)
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.loseConnection()


async def start_mitm(reactor, mitm_tls: ServerTLS, hac_tls: ClientTLS, hac_port: int,
                     relayed: list[int]):
    """A TLS-terminating relay: TLS with its own certificate to the MN, TLS to the real HAC."""

    def leg_to_mn() -> _RelaySide:
        mn_side = _RelaySide(relayed)
        endpoint = wrapClientTLS(hac_tls, TCP4ClientEndpoint(reactor, "127.0.0.1", hac_port),
                                 clock=reactor)
        connected = endpoint.connect(Factory.forProtocol(lambda: _RelaySide(relayed)))
        connected.addCallback(mn_side.join)
        return mn_side

    return await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        TLSMemoryBIOFactory(mitm_tls, False, Factory.forProtocol(leg_to_mn), clock=reactor))


def test_man_in_the_middle_with_a_trusted_certificate_fails_on_auth(hac, tmp_path):
    setup = hac.setup
    mitm = pki.make_cert(tmp_path, setup.ca, "mitm", dns_names=("hac.example",),
                         ip_addresses=("127.0.0.1",))  # same CA, matching names
    relayed: list[int] = []

    async def scenario(reactor):
        relay = await start_mitm(reactor, ServerTLS(mitm.cert_path, mitm.key_path),
                                 tls_for(hac), hac.port, relayed)
        try:
            return await client.bootstrap(reactor, tls_for(hac), relay.getHost().port,
                                          machine_for(hac))
        finally:
            await relay.stopListening()

    with pytest.raises(BootstrapFailed) as caught:
        run_on_fresh_reactor(scenario)
    assert (caught.value.step, caught.value.reason) == ("init", "bad-auth")
    assert len(relayed) >= 2  # MN Init reached the HAC and HAC Init came back: TLS was fine


@implementer(IHandshakeListener)
class _RawPsk(Protocol):
    """An MN that goes on past a HAC Init whose auth fails, to see what the HAC answers."""

    def __init__(self, mn_id: str, key: bytes, finished: defer.Deferred):
        self.mn_id, self.key, self.finished = mn_id, key, finished
        self.deframer = container.Deframer()
        self.responses: list[tuple[int, m.Received]] = []
        self.init_verified: bool | None = None

    def handshakeCompleted(self):  # noqa: N802 (Twisted API)
        self.cb = authenticator.channel_binding(peer_certificate_der(self.transport))
        self.mn_rand = bytes(range(32))
        init = m.MnInit(self.mn_id, self.mn_rand, (tv.AuthMethod.PSK,))
        self.transport.write(container.encode(1, m.encode(init)))

    def dataReceived(self, data):  # noqa: N802 (Twisted API)
        for frame in self.deframer.feed(data):
            if not self.responses:
                received = m.decode_response(frame.content, (m.HacInit, m.HacError))
                self.init_verified = _verifies(received, self.key, self.cb)
                done = m.MnDone(1, (SUITES["AES_128_CBC_SHA"].code,), self.mn_rand,
                                received.message.hac_rand)
                self.transport.write(container.encode(2, m.encode(done, self.key, self.cb)))
            else:
                received = m.decode_response(frame.content, (m.HacDone, m.HacError))
            self.responses.append((frame.identifier, received))

    def connectionLost(self, reason):  # noqa: N802 (Twisted API)
        self.finished.callback(self)


def _verifies(received: m.Received, key: bytes, cb: bytes) -> bool:
    try:
        received.verify(key, cb)
        return True
    except AuthenticatorError:
        return False


def raw_psk_exchange(hac: HacProcess, mn_id: str, key: bytes) -> _RawPsk:
    async def scenario(reactor):
        finished: defer.Deferred = defer.Deferred()
        endpoint = wrapClientTLS(tls_for(hac), TCP4ClientEndpoint(reactor, hac.host, hac.port),
                                 clock=reactor)
        await endpoint.connect(Factory.forProtocol(lambda: _RawPsk(mn_id, key, finished)))
        return await finished
    return run_on_fresh_reactor(scenario)


def test_wrong_key_and_unknown_identity_get_the_same_401_at_the_same_step(hac):
    known = sorted(hac.setup.psks)[3]
    wrong_key = raw_psk_exchange(hac, known, bytes(16))
    unknown = raw_psk_exchange(hac, "nobody@example.org", bytes(16))
    for session in (wrong_key, unknown):
        assert session.init_verified is False  # HAC Init looks alike: its auth just fails
        assert [identifier for identifier, _ in session.responses] == [1, 2]
        (_, init), (_, final) = session.responses
        assert isinstance(init.message, m.HacInit)
        assert final.message.status == 401
    finals = [type(session.responses[1][1].message) for session in (wrong_key, unknown)]
    assert finals[0] is finals[1]
    # The real MN stops at the failing HAC Init in both cases, with the same failure.
    for identity in (known, "nobody@example.org"):
        error = failure_of(hac, PskBootstrap(identity, bytes(16)))
        assert (error.step, error.reason, error.status) == ("init", "bad-auth", None)


def _handshake(port: int, version: int) -> str | None:
    """A bare pyOpenSSL handshake pinned to one TLS version: None, or the error text."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(version)
    context.set_max_proto_version(version)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.settimeout(None)  # pyOpenSSL needs a blocking socket; the HAC's timeouts bound it
        connection = SSL.Connection(context, raw)
        connection.set_connect_state()
        try:
            connection.do_handshake()
        except SSL.Error as error:
            return str(error)
        connection.shutdown()
    return None


def test_tls_1_1_is_refused(hac):
    assert _handshake(hac.port, SSL.TLS1_2_VERSION) is None  # the client itself works
    error = _handshake(hac.port, SSL.TLS1_1_VERSION)
    assert error is not None
    assert "alert protocol version" in error  # the HAC's alert, not a local refusal


# --- scale and durability --------------------------------------------------------------


async def many_bootstraps(reactor, hac: HacProcess, count: int, in_flight: int,
                          *, keep_failures: bool = False):
    """``count`` bootstraps with at most ``in_flight`` at once over one ClientTLS (resumption)."""
    tls = tls_for(hac)
    limit = defer.DeferredSemaphore(in_flight)
    runs = [limit.run(client.bootstrap, reactor, tls, hac.port, machine_for(hac, number))
            for number in range(count)]
    outcomes = await defer.DeferredList(runs, consumeErrors=True)
    results = [value for ok, value in outcomes if ok]
    if not keep_failures:
        failures = [value for ok, value in outcomes if not ok]
        assert not failures, failures[0].getErrorMessage()
    return results


def test_ten_thousand_bootstraps_give_distinct_spis(hac):
    results = run_on_fresh_reactor(
        lambda reactor: many_bootstraps(reactor, hac, MANY, IN_FLIGHT), limit=150)
    spis = [result.sa.spi for result in results]
    assert len(spis) == MANY
    assert len(set(spis)) == MANY
    assert all(SPI_MIN <= spi <= SPI_MAX for spi in spis)


def test_kill_9_under_load_loses_no_acknowledged_sa(tmp_path):
    setup = make_setup(tmp_path, identities=mn_ids(16))
    hac = HacProcess(setup)
    acknowledged = []

    async def load_then_kill(reactor):
        tls = tls_for(hac)

        def record(result):
            acknowledged.append(result)
            if len(acknowledged) == KILL_AFTER:
                hac.kill()
            return result

        # At most KILL_IN_FLIGHT at once: the HAC answers a group commit's MNs together,
        # so with every bootstrap begun at once all could be answered before the kill.
        limit = defer.DeferredSemaphore(KILL_IN_FLIGHT)
        runs = [limit.run(client.bootstrap, reactor, tls, hac.port, machine_for(hac, number))
                .addCallback(record) for number in range(UNDER_LOAD)]
        return await defer.DeferredList(runs, consumeErrors=True)

    with hac:
        outcomes = run_on_fresh_reactor(load_then_kill, limit=120)
        assert hac.process is None  # killed mid-load, as planned
        assert KILL_AFTER <= len(acknowledged) < UNDER_LOAD, "the kill came after the load"
        assert len(acknowledged) == sum(ok for ok, _ in outcomes)
        for result in acknowledged:
            assert_stored(setup.store_url, result.sa)
        with open_store(setup.store_url) as store:
            before = {record.sa.spi for record in store.active()}
        assert {result.sa.spi for result in acknowledged} <= before

        hac.start()
        after = run_on_fresh_reactor(
            lambda reactor: many_bootstraps(reactor, hac, 200, IN_FLIGHT), limit=120)
    new_spis = {result.sa.spi for result in after}
    assert len(new_spis) == 200
    assert not new_spis & before, "an SPI from before the kill was given out again"


def test_a_silent_peer_times_out_at_the_tls_step(hac):
    with socket.socket() as silent:  # accepts TCP (the kernel's backlog), never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen()

        async def scenario(reactor):
            return await client.bootstrap(reactor, tls_for(hac), silent.getsockname()[1],
                                          machine_for(hac), timeout=0.5)

        with pytest.raises(BootstrapFailed) as caught:
            run_on_fresh_reactor(scenario)
    assert (caught.value.step, caught.value.reason) == ("tls", "timeout")
