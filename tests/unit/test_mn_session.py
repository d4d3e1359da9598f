"""mn.session: bootstrap_session (the one way mip6-mn and mip6-lab get an MN session),
the rebootstrap path of MobileSession (176 or SA expiry -> renew -> rekey, with backoff),
and what ``mip6-mn register --keep`` / ``up`` do with a session (--watch: handover) —
on a task.Clock with a fake UDP port and an HA built from the codecs."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from twisted.internet import defer, task

from aaa_mip6.mobility.messages import BindingAckStatus
from aaa_mip6.sa import Bootstrap
from aaa_mip6.transform import peek
from aaa_mip6 import pki, program
from mn import cli, rebootstrap, session
from mn.bootstrap import BootstrapFailed, Bootstrapped
from mn.actions import Rebootstrap, Registered, RegistrationFailed, Transmit
from mn.mobility import Binding, MobilityMachine
from tests.unit.test_mn_mobility import (
    COA6,
    COA6_MOVED,
    HA6,
    HOME_AGENT,
    NOW,
    HomeAgentPeer,
    make_sa,
)

# Longer than any backoff delay (the one before the last rebootstrap allowed in a row).
LONGEST_BACKOFF = rebootstrap.FIRST_DELAY * 2 ** rebootstrap.MAX_IN_A_ROW


@pytest.fixture
def bootstraps(monkeypatch):
    """Replace the TLS bootstrap with canned results; record (port, machine, timeout) per call."""
    calls, results = [], []

    def fake_bootstrap(reactor, tls, port, machine, *, timeout):
        calls.append((port, machine, timeout))
        return defer.succeed(results.pop(0))

    monkeypatch.setattr(session.client, "bootstrap", fake_bootstrap)
    return calls, results


def test_session_uses_the_first_sa_and_home_agent_and_renews_with_a_fresh_machine(bootstraps):
    calls, results = bootstraps
    first, second = make_sa(spi=4660), make_sa(spi=4661)
    results += [Bootstrapped(first, Bootstrap(HOME_AGENT)), Bootstrapped(second, None)]
    machines = iter(["machine-1", "machine-2"])
    events = []

    opened = session.bootstrap_session(task.Clock(), None, 7443, lambda: next(machines),
                                       timeout=9.0, lifetime=120, on_event=events.append)
    mobile, result = opened.result

    assert result.sa is first and mobile.machine.sa is first
    assert mobile.machine.home_agent == HOME_AGENT and mobile.machine.lifetime == 120
    assert mobile.on_event == events.append
    assert mobile.renew().result.sa is second
    assert calls == [(7443, "machine-1", 9.0), (7443, "machine-2", 9.0)]


def test_no_home_agent_in_the_bootstrap_is_a_registration_error(bootstraps):
    _, results = bootstraps
    results.append(Bootstrapped(make_sa(), None))

    opened = session.bootstrap_session(task.Clock(), SimpleNamespace(host="hac.example"), 7443,
                                       lambda: "machine")
    failure = opened.result
    opened.addErrback(lambda _: None)  # consumed: no "unhandled error" at garbage collection

    assert isinstance(failure.value, session.RegistrationError)
    assert failure.value.reason == "no-home-agent"
    assert str(failure.value) == ("bootstrap with the HAC hac.example:7443: the HAC named no "
                                  "home agent")


# --------------------------------------------------------------------------- rebootstrap


class FakePort:
    """The session's UDP socket: records what it sends."""

    def __init__(self):
        self.sent: list[bytes] = []

    def write(self, packet, address):
        self.sent.append(packet)

    def stopListening(self):  # noqa: N802 (Twisted API)
        return defer.succeed(None)


class FakeReactor(task.Clock):
    """A clock at NOW (the SA validity ends are POSIX times) with a fake listenUDP, and the
    HA's end of every SA (one per SPI: its replay window and sequence numbers go on)."""

    def __init__(self):
        super().__init__()
        self.rightNow = NOW
        self.port = FakePort()
        self.protocol = None  # the session's socket protocol, to hand it datagrams
        self.home_agent_peers: dict[int, HomeAgentPeer] = {}
        self.triggers: list = []  # (phase, event, callable) of addSystemEventTrigger

    def addSystemEventTrigger(self, phase, event, function):  # noqa: N802 (Twisted API)
        self.triggers.append((phase, event, function))

    def listenUDP(self, port, protocol, interface=""):  # noqa: N802 (Twisted API)
        self.protocol = protocol
        return self.port


class Renewals:
    """``renew`` for the session: each call hands out the next SA (SPIs 5000, 5001, ...)."""

    def __init__(self):
        self.sas: list = []

    def __call__(self):
        sa = make_sa(spi=5000 + len(self.sas))
        self.sas.append(sa)
        return defer.succeed(Bootstrapped(sa, Bootstrap(HOME_AGENT)))


def registered_session(sa=None, renew=None):
    """A session registered from COA6 at a fake HA; (session, reactor, events, first SA)."""
    sa = sa or make_sa(spi=4660)
    reactor, events = FakeReactor(), []
    mobile = session.MobileSession(reactor, MobilityMachine(sa, HOME_AGENT), renew=renew,
                                   on_event=events.append)
    started = mobile.start(COA6)
    answer(reactor, sa)
    assert isinstance(started.result, Binding) and started.result.spi == sa.spi
    return mobile, reactor, events, sa


def answer(reactor, sa, status=BindingAckStatus.ACCEPTED):
    """The HA answers the last BU sent (it must be under ``sa``) with ``status``."""
    bu = reactor.port.sent[-1]
    assert peek(bu).spi == sa.spi
    peer = reactor.home_agent_peers.setdefault(sa.spi, HomeAgentPeer(sa))
    ba = peer.answer(Transmit(bu, HA6, HOME_AGENT.port), status=status)
    reactor.protocol.datagramReceived(ba, (str(HA6), HOME_AGENT.port))


def refresh(reactor, mobile):
    """Move the clock to the binding's refresh: the session sends a refreshing BU."""
    sent = len(reactor.port.sent)
    reactor.advance(mobile.machine.binding.refresh_at - reactor.seconds())
    assert len(reactor.port.sent) == sent + 1


def sent_back_to_the_hac(renew):
    """A registered session whose refreshing BU the HA answered 176 (REINIT_SA_WITH_HAC)."""
    mobile, reactor, events, first = registered_session(renew=renew)
    refresh(reactor, mobile)
    answer(reactor, first, BindingAckStatus.REINIT_SA_WITH_HAC)
    return mobile, reactor, events


def test_reinit_sa_with_hac_renews_and_registers_under_the_new_spi():
    renew = Renewals()
    mobile, reactor, events = sent_back_to_the_hac(renew)
    assert Rebootstrap("reinit-sa-with-hac") in events and renew.sas == []
    reactor.advance(0)  # the first rebootstrap goes at once
    [new] = renew.sas
    assert peek(reactor.port.sent[-1]).spi == new.spi == 5000
    answer(reactor, new)
    assert isinstance(events[-1], Registered) and events[-1].binding.spi == 5000
    assert mobile.machine.binding.spi == 5000


def test_sa_expiry_sends_the_session_back_to_the_hac():
    renew = Renewals()
    ending = make_sa(spi=4660, validity_end=datetime.fromtimestamp(NOW + 300, timezone.utc))
    mobile, reactor, events, _ = registered_session(sa=ending, renew=renew)
    reactor.advance(300 - 60 - 1)  # the default SA margin is 60 s
    assert renew.sas == []
    reactor.advance(1)
    reactor.advance(0)
    assert Rebootstrap("sa-expiry") in events
    [new] = renew.sas
    answer(reactor, new)
    assert events[-1].binding.spi == new.spi


def test_a_failed_renew_ends_the_session_with_rebootstrap_failed(monkeypatch):
    logged = []
    monkeypatch.setattr(session.log, "msg", lambda text: logged.append(text))
    refused = BootstrapFailed("HAC status 401 Unauthorized", step="init", reason="status",
                              status=401)
    mobile, reactor, events = sent_back_to_the_hac(lambda: defer.fail(refused))
    reactor.advance(0)
    assert events[-1] == RegistrationFailed("rebootstrap-failed")
    assert logged == ["mip6-mn: rebootstrap after reinit-sa-with-hac failed: "
                      "HAC status 401 Unauthorized"]
    assert mobile.machine.timer() is None and not reactor.getDelayedCalls()


class FlakyHac:
    """``renew`` for the session: the first ``failures`` calls fail with ``error``, then SAs."""

    def __init__(self, error, failures):
        self.error, self.failures, self.calls = error, failures, 0
        self.renewals = Renewals()

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            return defer.fail(self.error)
        return self.renewals()


def test_a_hac_out_of_reach_is_tried_again_under_the_backoff_then_registers():
    hac = FlakyHac(BootstrapFailed("connect: refused", step="connect", reason="connect"), 2)
    mobile, reactor, events = sent_back_to_the_hac(hac)
    reactor.advance(0)
    assert hac.calls == 1
    reactor.advance(0.999)
    assert hac.calls == 1  # the second try waits the backoff's 1 s
    reactor.advance(0.001)
    assert hac.calls == 2
    reactor.advance(2)
    [new] = hac.renewals.sas
    answer(reactor, new)
    assert isinstance(events[-1], Registered) and events[-1].binding.spi == new.spi
    assert RegistrationFailed("rebootstrap-failed") not in events


def test_a_503_waits_out_its_retry_after():
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    busy = BootstrapFailed("HAC status 503", step="init", reason="status", status=503,
                           retry_after=later)
    hac = FlakyHac(busy, 1)
    mobile, reactor, events = sent_back_to_the_hac(hac)
    reactor.advance(0)
    reactor.advance(28)
    assert hac.calls == 1  # not after the backoff's 1 s: the HAC asked for 30
    reactor.advance(3)
    assert hac.calls == 2 and len(hac.renewals.sas) == 1


def test_a_hac_that_stays_down_ends_the_session_after_the_limit():
    down = BootstrapFailed("timeout", step="init", reason="timeout")
    hac = FlakyHac(down, 10**6)
    mobile, reactor, events = sent_back_to_the_hac(hac)
    reactor.advance(0)
    for _ in range(40):
        reactor.advance(LONGEST_BACKOFF)
    assert hac.calls == rebootstrap.MAX_IN_A_ROW
    assert events.count(RegistrationFailed("rebootstrap-loop")) == 1
    reactor.advance(rebootstrap.MAX_RETRY_AFTER)
    assert hac.calls == rebootstrap.MAX_IN_A_ROW  # no try after giving up


def refuse_every_new_sa(reactor, renew, count):
    """Let ``count`` rebootstraps run, each new SA answered 176; their delays in seconds."""
    delays = []
    for _ in range(count):
        before, waited = len(renew.sas), 0.0
        while len(renew.sas) == before:
            assert waited <= LONGEST_BACKOFF, "no rebootstrap came"
            reactor.advance(0)
            if len(renew.sas) == before:
                reactor.advance(0.5)
                waited += 0.5
        delays.append(waited)
        answer(reactor, renew.sas[-1], BindingAckStatus.REINIT_SA_WITH_HAC)
    return delays


def test_rebootstraps_in_a_row_back_off_then_end_the_session(monkeypatch):
    logged = []
    monkeypatch.setattr(session.log, "msg", lambda text: logged.append(text))
    renew = Renewals()
    mobile, reactor, events = sent_back_to_the_hac(renew)

    delays = refuse_every_new_sa(reactor, renew, rebootstrap.MAX_IN_A_ROW)

    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert events[-1] == RegistrationFailed("rebootstrap-loop")
    assert events.count(RegistrationFailed("rebootstrap-loop")) == 1
    reactor.advance(LONGEST_BACKOFF * 2)
    assert len(renew.sas) == rebootstrap.MAX_IN_A_ROW
    giving_up = [text for text in logged if "giving up" in text]
    assert len(giving_up) == 1 and "5 rebootstraps in a row" in giving_up[0]


def test_the_backoff_waits_its_delay_before_renewing():
    renew = Renewals()
    mobile, reactor, events = sent_back_to_the_hac(renew)
    reactor.advance(0)
    answer(reactor, renew.sas[-1], BindingAckStatus.REINIT_SA_WITH_HAC)  # second in a row
    reactor.advance(0.999)
    assert len(renew.sas) == 1
    reactor.advance(0.001)
    assert len(renew.sas) == 2


def test_a_registration_resets_the_backoff():
    renew = Renewals()
    mobile, reactor, events = sent_back_to_the_hac(renew)
    assert refuse_every_new_sa(reactor, renew, 2) == [0.0, 1.0]
    reactor.advance(2)
    answer(reactor, renew.sas[-1])  # the third new SA is accepted
    assert events[-1].binding.spi == 5002
    refresh(reactor, mobile)
    answer(reactor, renew.sas[-1], BindingAckStatus.REINIT_SA_WITH_HAC)
    reactor.advance(0)  # at once again, not after 4 s
    assert len(renew.sas) == 4


def test_a_handover_during_the_backoff_starts_no_second_rebootstrap():
    renew = Renewals()
    mobile, reactor, events = sent_back_to_the_hac(renew)
    reactor.advance(0)
    answer(reactor, renew.sas[-1], BindingAckStatus.REINIT_SA_WITH_HAC)  # waits 1 s now
    mobile.move(COA6_MOVED)  # still under the refused SA: answered 176 again
    answer(reactor, renew.sas[-1], BindingAckStatus.REINIT_SA_WITH_HAC)
    reactor.advance(LONGEST_BACKOFF)
    assert len(renew.sas) == 2
    assert peek(reactor.port.sent[-1]).spi == 5001


def test_stop_calls_off_a_rebootstrap_waiting_out_its_delay():
    renew = Renewals()
    mobile, reactor, events = sent_back_to_the_hac(renew)
    reactor.advance(0)
    answer(reactor, renew.sas[-1], BindingAckStatus.REINIT_SA_WITH_HAC)
    mobile.stop(deregister=False)
    reactor.advance(LONGEST_BACKOFF)
    assert len(renew.sas) == 1 and not reactor.getDelayedCalls()


# --------------------------------------------------------------------------- mip6-mn --keep

REGISTRATION = ["--hac", "127.0.0.1:9", "--ca", "ca.pem", "--id", "mn@example.org",
                "--psk", "00112233445566778899aabbccddeeff"]


@pytest.mark.parametrize("command", ["register", "up"])
def test_watch_is_a_registration_argument_of_register_and_up(command):
    parser = cli.build_parser()
    assert parser.parse_args([command, *REGISTRATION]).watch == cli.DEFAULT_WATCH == 1.0
    assert parser.parse_args([command, *REGISTRATION, "--watch", "2.5"]).watch == 2.5


def test_register_help_explains_watch(capsys):
    with pytest.raises(SystemExit):
        cli.main(["register", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--watch SECONDS" in text
    assert "(register --keep, up)" in text and "hand over" in text and "0 never" in text


def test_a_negative_watch_is_a_usage_error_before_any_connection(tmp_path, capsys):
    ca = pki.make_ca(tmp_path)
    arguments = [*REGISTRATION, "--watch", "-1"]
    arguments[arguments.index("ca.pem")] = str(ca.cert_path)
    assert cli.main(["register", "--keep", *arguments]) == program.EXIT_CONFIG
    assert "--watch" in capsys.readouterr().err


def test_register_keep_hands_over_when_the_route_to_the_ha_changes(monkeypatch):
    mobile, reactor, events, first = registered_session()
    args = cli.build_parser().parse_args(["register", "--keep", *REGISTRATION])
    cli._stay(reactor, mobile, args, None)
    monkeypatch.setattr(session, "local_address_towards", lambda home_agent: COA6_MOVED)
    sent = len(reactor.port.sent)
    reactor.advance(cli.DEFAULT_WATCH)
    assert len(reactor.port.sent) == sent + 1
    answer(reactor, first)
    assert (events[-1].binding.care_of, events[-1].binding.spi) == (COA6_MOVED, first.spi)


@pytest.mark.parametrize("options", [["--watch", "0"], ["--care-of", str(COA6)]])
def test_register_keep_does_not_watch_when_told_not_to_or_given_a_care_of(options, monkeypatch):
    mobile, reactor, events, _ = registered_session()
    args = cli.build_parser().parse_args(["register", "--keep", *REGISTRATION, *options])
    cli._stay(reactor, mobile, args, None)
    monkeypatch.setattr(session, "local_address_towards", lambda home_agent: COA6_MOVED)
    sent = len(reactor.port.sent)
    reactor.advance(cli.DEFAULT_WATCH * 10)
    assert len(reactor.port.sent) == sent and mobile.machine.care_of == COA6


def test_keeping_the_binding_deregisters_at_shutdown():
    mobile, reactor, events, first = registered_session()
    args = cli.build_parser().parse_args(["register", "--keep", *REGISTRATION])
    cli._stay(reactor, mobile, args, None)
    [(phase, event, shut_down)] = reactor.triggers
    assert (phase, event) == ("before", "shutdown")
    shut_down()
    _, update = reactor.home_agent_peers[first.spi].open_update(
        Transmit(reactor.port.sent[-1], HA6, HOME_AGENT.port))
    assert update.lifetime_units == 0
