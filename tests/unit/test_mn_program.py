"""mip6-mn at its edges: the one line a failed registration prints (peer, care-of, step,
why), the progress lines while a BU is retried, the warnings for options without effect,
and --care-of checked before anything is sent — on a task.Clock with a fake UDP port."""

import json

import pytest
from twisted.internet.error import CannotListenError

from aaa_mip6.sa import HomeAgent
from mn import cli, mobility, session
from mn.actions import RegistrationFailed, Retrying
from mn.mobility import MobilityMachine
from tests.unit.test_mn_mobility import COA4, COA6, HA6, HOME_AGENT, make_sa
from tests.unit.test_mn_session import REGISTRATION, FakeReactor, registered_session


def started_session(home_agent=HOME_AGENT):
    reactor, events = FakeReactor(), []
    mobile = session.MobileSession(reactor, MobilityMachine(make_sa(), home_agent),
                                   on_event=events.append)
    return mobile, reactor, events


def failure_of(deferred) -> session.RegistrationError:
    failures = []
    deferred.addErrback(failures.append)
    assert failures, "the registration did not fail"
    return failures[0].value


def test_no_answer_names_the_ha_the_care_of_the_attempts_and_the_wait():
    mobile, reactor, events = started_session()
    started = mobile.start(COA6, give_up_at=reactor.seconds() + 5)
    reactor.advance(1.5)
    reactor.advance(3.0)
    reactor.advance(0.5)
    error = failure_of(started)
    assert error.reason == "no-answer"
    assert str(error).startswith(f"registration with the home agent [{HA6}]:7872 from "
                                 f"care-of {COA6} failed: no answer to 3 Binding Update(s) "
                                 "in 5 s (is mip6-ha running there")
    assert [event for event in events if isinstance(event, Retrying)] == [
        Retrying(2, 7, 3.0, False), Retrying(3, 7, 0.5, True)]


def test_no_answer_tells_of_answers_from_elsewhere_and_answers_that_failed_checks():
    mobile, reactor, _ = started_session()
    started = mobile.start(COA6, give_up_at=reactor.seconds() + 2)
    reactor.protocol.datagramReceived(b"x", ("2001:db8:1::99", 7872))  # another address
    reactor.protocol.datagramReceived(b"x", (str(HA6), 7872))  # the HA's, but garbage
    reactor.advance(2)
    text = str(failure_of(started))
    assert "1 datagram(s) came from another address or port" in text
    assert "answers that failed their checks: " in text and "is mip6-ha running" not in text


def test_an_ipv4_care_of_with_an_ipv6_only_ha_fails_at_once_saying_so():
    mobile, reactor, _ = started_session(HomeAgent(HA6, None, 7872))
    error = failure_of(mobile.start(COA4))
    assert error.reason == "no-home-agent-address"
    assert f"from care-of {COA4} failed: the HAC named no IPv4 address" in str(error)
    assert f"[{HA6}]:7872" in str(error) and reactor.port.sent == []


def test_a_care_of_the_socket_cannot_bind_names_it(monkeypatch):
    mobile, reactor, _ = started_session()

    def refuse(port, protocol, interface=""):
        raise CannotListenError(interface, port, OSError(99, "Cannot assign requested address"))

    monkeypatch.setattr(reactor, "listenUDP", refuse)
    error = failure_of(mobile.start(COA6))
    assert error.reason == "care-of"
    assert f"cannot use the care-of address {COA6}: Cannot assign requested address" in str(error)


def test_a_rejection_names_the_ba_status():
    mobile, *_ = registered_session()
    text = mobile.describe(RegistrationFailed("rejected", 129))
    assert text.endswith("failed: rejected, BA status 129 (ADMINISTRATIVELY_PROHIBITED)")


def test_a_session_ending_after_registration_names_the_ha_too():
    mobile, *_ = registered_session()
    assert mobile.describe(RegistrationFailed("rebootstrap-loop")) == (
        f"registration with the home agent [{HA6}]:7872 from care-of {COA6} failed: "
        "rebootstrap-loop")


def test_progress_lines_in_text_and_json(capsys):
    mobile, *_ = registered_session()
    for as_json in (False, True):
        reporter = cli._Reporter("mn@example.org", as_json)
        reporter.session = mobile
        reporter.event(Retrying(2, 7, 3.0, False))
        reporter.event(Retrying(7, 7, 32.0, True))
    text, _, json_lines = capsys.readouterr().out.strip().partition("\n{")
    lines = text.splitlines()
    assert lines[0] == (f"retrying mn@example.org no answer from the home agent [{HA6}]:7872 "
                        "yet: Binding Update attempt 2 of 7 sent, next try in 3 s")
    assert lines[1].endswith("attempt 7 of 7 sent, giving up in 32 s")
    first = json.loads("{" + json_lines.splitlines()[0])
    assert first == {"event": "retrying", "mn-id": "mn@example.org", "ha": f"[{HA6}]:7872",
                     "attempt": 2, "of": 7, "next-try-in": 3.0}


@pytest.mark.parametrize(("extra", "note"), [
    (["--password", "pw"], "--password has no effect without --eap"),
    (["--phase2", "pap"], "--phase2 has no effect without --eap"),
    (["--watch", "5", "--care-of", "::1"], "--watch has no effect with --care-of"),
    (["--watch", "5"], "--watch has no effect without --keep"),
])
def test_options_without_effect_are_named(extra, note):
    args = cli.build_parser().parse_args(["register", *REGISTRATION, *extra])
    assert [text for text in cli.ineffective_options(args) if text.startswith(note)]


def test_effective_options_give_no_warning():
    parser = cli.build_parser()
    assert cli.ineffective_options(parser.parse_args(["register", *REGISTRATION])) == []
    keep = parser.parse_args(["register", "--keep", "--watch", "5", *REGISTRATION])
    assert cli.ineffective_options(keep) == []
    eap = [*REGISTRATION[:-2], "--eap", "ttls", "--phase2", "pap", "--password", "pw",
           "--eap-ca", "ca.pem"]
    assert cli.ineffective_options(parser.parse_args(["register", *eap])) == []
    md5 = parser.parse_args(["bootstrap", *REGISTRATION[:-2], "--eap", "md5",
                             "--phase2", "pap", "--password", "pw"])
    assert cli.ineffective_options(md5) == ["--phase2 has no effect with --eap md5 (only "
                                            "with ttls)"]


def test_a_care_of_that_is_not_an_ip_address_is_a_usage_error():
    with pytest.raises(cli.ConfigError, match="--care-of 'home': not an IP address"):
        cli._check_care_of("home")
    assert cli._check_care_of("::1") == mobility.ip_address("::1")
