"""mn.session.bootstrap_session: the one way mip6-mn and mip6-lab get an MN session."""

import pytest
from twisted.internet import defer, task

from aaa_mip6.sa import Bootstrap
from mn import session
from mn.bootstrap import Bootstrapped
from tests.unit.test_mn_mobility import HOME_AGENT, make_sa


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

    opened = session.bootstrap_session(task.Clock(), None, 7443, lambda: "machine")
    failure = opened.result
    opened.addErrback(lambda _: None)  # consumed: no "unhandled error" at garbage collection

    assert isinstance(failure.value, session.RegistrationError)
    assert failure.value.reason == "no-home-agent"
