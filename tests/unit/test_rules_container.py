"""aaa_mip6.container, rule by rule (RFC 6618 §5.1, §5.3): each test states one rule of
the MN-HAC container and its identifier lock-step, and kills the mutants of ``make
mutation`` (docs/mutation.md) that would break it.

Every refusal names what is wrong (the HAC logs it as the session's failure reason) and
carries the ``reason`` its counters use; the tables below pin both.

Equivalent mutants (survive by design, nothing observable changes):

- ``LockStep.__init__``, ``LockStep.accept_response``, ``LockStep.answered``:
  ``self._outstanding = None`` instead of ``False``. The flag is only ever read for
  its truth value.
"""

from __future__ import annotations

import pytest

from aaa_mip6 import container
from aaa_mip6.container import MAX_CONTENT, Deframer, LockStep
from aaa_mip6.errors import FramingError


def test_a_deframer_limit_of_one_octet_is_valid():
    """max_content is 1..65535 (the Length field), both ends usable."""
    assert Deframer(1).feed(b"\x00\x01\x00\x01x") == [(1, b"x")]
    assert Deframer(MAX_CONTENT).feed(b"\x00\x01\x00\x01x") == [(1, b"x")]


@pytest.mark.parametrize("call, message", [
    (lambda: container.encode(0, b"x"), "Identifier must be 1..255, not 0"),
    (lambda: container.encode(1, b""), "Content must be 1..65535 octets, not 0"),
    (lambda: Deframer(0), "max_content must be 1..65535, not 0"),
])
def test_a_value_the_format_cannot_carry_is_a_value_error_naming_it(call, message):
    with pytest.raises(ValueError) as caught:
        call()
    assert str(caught.value) == message


@pytest.mark.parametrize("header, message, reason", [
    (b"\x20\x01\x00\x01", "container version 1 is not 0", "version"),
    (b"\xe0\x01\x00\x01", "container version 7 is not 0", "version"),
    (b"\x01\x01\x00\x01", "container Rsrvd bits are not 0", "malformed"),
    (b"\x00\x00\x00\x01", "container Identifier 0 is invalid", "malformed"),
    (b"\x00\x01\x00\x00", "container Length 0: the Content must be at least one octet",
     "malformed"),
    (b"\x00\x01\x00\x0b", "container Length 11 exceeds the limit of 10", "oversize"),
])
def test_a_bad_container_header_is_refused_saying_which_field(header, message, reason):
    with pytest.raises(FramingError) as caught:
        Deframer(10).feed(header + b"x")
    assert (str(caught.value), caught.value.reason) == (message, reason)


def refusal(call) -> tuple[str, str]:
    with pytest.raises(FramingError) as caught:
        call()
    return str(caught.value), caught.value.reason


def test_a_broken_identifier_sequence_is_a_sequence_error_rfc6618_5_3():
    """§5.3: first request 1, each later one +1, a response copies its request's, at
    most 255 exchanges; a peer breaking it is counted as ``sequence``."""
    hac = LockStep()
    assert refusal(lambda: hac.accept_request(2)) == (
        "request Identifier 2, expected 1", "sequence")
    hac.accept_request(1)
    hac.answered()
    assert refusal(lambda: hac.accept_request(3)) == (
        "request Identifier 3, expected 2", "sequence")
    mn = LockStep()
    assert refusal(lambda: mn.accept_response(1)) == (
        "response without an outstanding request", "sequence")
    mn.next_request()
    assert refusal(lambda: mn.accept_response(2)) == (
        "response Identifier 2 does not match request 1", "sequence")
    full = LockStep()
    for identifier in range(1, 256):
        full.accept_request(identifier)
        full.answered()
    assert refusal(lambda: full.accept_request(256)) == (
        "a session may hold at most 255 exchanges", "sequence")


def test_calling_the_local_side_out_of_turn_is_a_runtime_error_saying_which_call():
    """A local bug (not peer input): RuntimeError, never a FramingError the peer caused."""
    hac, mn = LockStep(), LockStep()
    with pytest.raises(RuntimeError) as caught:
        hac.answered()
    assert str(caught.value) == "no request is waiting for a response"
    hac.accept_request(1)
    with pytest.raises(RuntimeError) as caught:
        hac.accept_request(2)
    assert str(caught.value) == "the previous request has not been answered"
    mn.next_request()
    with pytest.raises(RuntimeError) as caught:
        mn.next_request()
    assert str(caught.value) == "a request is still waiting for its response"
