"""ha.core, rule by rule: each test states one rule of the home agent (with its RFC
section) and kills the mutants of ``make mutation`` (docs/mutation.md) that would break it.

Helpers come from test_ha_core (the in-test MN and core).
"""

from __future__ import annotations

import pytest

from aaa_mip6.mobility import BindingAckStatus
from ha.core import SendDatagram
from tests.unit.test_ha_core import HOA, feed, only, registered

HALF = 1 << 15


def ack_for(core, mn, sequence):
    return mn.ack(only(feed(core, mn, mn.bu(sequence=sequence)), SendDatagram).data)


@pytest.mark.parametrize("last", [1, 40000, 65535])
def test_bu_sequence_2_15_ahead_is_not_newer_rfc6275_9_5_1(last):
    """RFC 6275 §9.5.1: a sequence number is "less than or equal to" the last accepted one
    if it lies in the range of that number and the preceding 32768 values, inclusive;
    so last + 2^15 (mod 2^16) is refused with 135 and last + 2^15 - 1 is newer."""
    core, mn = registered()
    for step in range(20000, last, 20000):  # forward in steps well inside the window
        assert ack_for(core, mn, step).status == BindingAckStatus.ACCEPTED
    if last != 1:
        assert ack_for(core, mn, last).status == BindingAckStatus.ACCEPTED
    refused = ack_for(core, mn, (last + HALF) % (1 << 16))
    assert (refused.status, refused.sequence) == (
        BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, last)
    assert core.bindings.get(HOA).sequence == last
    accepted = ack_for(core, mn, (last + HALF - 1) % (1 << 16))
    assert accepted.status == BindingAckStatus.ACCEPTED
    assert core.bindings.get(HOA).sequence == (last + HALF - 1) % (1 << 16)
