"""hac.core, rule by rule: each test states one security rule of the HAC session and
kills the mutants of ``make mutation`` (docs/mutation.md) that would break it.

Helpers come from test_hac_core (the in-test MN).
"""

from __future__ import annotations

import hmac

from aaa_mip6 import messages as m
from hac.core import Close, Failed, HacSession, Send
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
