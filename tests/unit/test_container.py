import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import container
from aaa_mip6.container import Deframer, Frame, LockStep
from aaa_mip6.errors import FramingError

frames = st.builds(Frame, st.integers(1, 255), st.binary(min_size=1, max_size=300))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[start:end] for start, end in zip(edges, edges[1:])]


@given(st.lists(frames, min_size=1, max_size=5), st.lists(st.integers(0, 10_000), max_size=8))
def test_frames_survive_any_split_of_the_stream(sent, cuts):
    stream = b"".join(container.encode(frame.identifier, frame.content) for frame in sent)
    deframer = Deframer()
    received = []
    for piece in chunked(stream, cuts):
        received += deframer.feed(piece)
    assert received == sent
    assert deframer.buffered == 0


def test_several_messages_in_one_read_and_a_partial_tail():
    stream = container.encode(1, b"a") + container.encode(2, b"bc") + container.encode(3, b"def")
    deframer = Deframer()
    assert deframer.feed(stream[:-1]) == [Frame(1, b"a"), Frame(2, b"bc")]
    assert deframer.buffered == len(stream) - 1 - 5 - 6
    assert deframer.feed(stream[-1:]) == [Frame(3, b"def")]


def test_one_octet_at_a_time():
    stream = container.encode(7, b"mn-id:x\r\n\r\n")
    deframer = Deframer()
    out = [frame for octet in stream for frame in deframer.feed(bytes([octet]))]
    assert out == [Frame(7, b"mn-id:x\r\n\r\n")]


def test_encode_layout():
    assert container.encode(1, b"xy") == b"\x00\x01\x00\x02xy"
    assert len(container.encode(255, b"z" * 65535)) == 4 + 65535


@pytest.mark.parametrize(
    "identifier, content", [(0, b"x"), (256, b"x"), (1, b""), (1, b"x" * 65536)]
)
def test_encode_refuses_what_the_format_cannot_carry(identifier, content):
    with pytest.raises(ValueError):
        container.encode(identifier, content)


@pytest.mark.parametrize(
    "header, reason",
    [
        (b"\x20\x01\x00\x01", "version"),  # Ver 1
        (b"\xe0\x01\x00\x01", "version"),  # Ver 7
        (b"\x01\x01\x00\x01", "malformed"),  # Rsrvd bit
        (b"\x10\x01\x00\x01", "malformed"),  # highest Rsrvd bit
        (b"\x00\x00\x00\x01", "malformed"),  # Identifier 0
        (b"\x00\x01\x00\x00", "malformed"),  # Length 0
    ],
)
def test_bad_headers_are_rejected(header, reason):
    with pytest.raises(FramingError) as caught:
        Deframer().feed(header + b"x")
    assert caught.value.reason == reason


def test_length_over_the_limit_is_rejected_before_the_content_arrives():
    deframer = Deframer(max_content=10)
    assert deframer.feed(container.encode(1, b"x" * 10)) == [Frame(1, b"x" * 10)]
    with pytest.raises(FramingError) as caught:
        deframer.feed(b"\x00\x02\x00\x0b")
    assert caught.value.reason == "oversize"


def test_a_failed_deframer_stays_failed():
    deframer = Deframer()
    with pytest.raises(FramingError):
        deframer.feed(b"\x00\x00\x00\x01x")
    assert deframer.failed
    with pytest.raises(FramingError):
        deframer.feed(container.encode(1, b"fine"))


def test_frames_before_a_bad_header_in_the_same_read_are_not_returned_as_success():
    deframer = Deframer()
    with pytest.raises(FramingError):
        deframer.feed(container.encode(1, b"ok") + b"\x20\x02\x00\x01x")
    assert deframer.failed


@pytest.mark.parametrize("limit", [0, 65536])
def test_deframer_limit_must_fit_the_length_field(limit):
    with pytest.raises(ValueError):
        Deframer(max_content=limit)


@given(st.lists(st.binary(max_size=64), max_size=6))
def test_arbitrary_bytes_only_raise_framing_error(pieces):
    deframer = Deframer(max_content=1000)
    for piece in pieces:
        try:
            for frame in deframer.feed(piece):
                assert 1 <= frame.identifier <= 255 and 1 <= len(frame.content) <= 1000
        except FramingError:
            assert deframer.failed
            return


def test_lockstep_mn_side():
    steps = LockStep()
    assert steps.next_request() == 1
    steps.accept_response(1)
    assert steps.next_request() == 2
    with pytest.raises(RuntimeError):
        steps.next_request()
    with pytest.raises(FramingError):
        steps.accept_response(1)


def test_lockstep_response_without_request():
    with pytest.raises(FramingError):
        LockStep().accept_response(1)


def test_lockstep_hac_side():
    steps = LockStep()
    with pytest.raises(FramingError):
        steps.accept_request(2)  # the first request must be 1
    assert steps.accept_request(1) == 1
    with pytest.raises(RuntimeError):
        steps.accept_request(2)
    steps.answered()
    with pytest.raises(FramingError):
        steps.accept_request(3)  # skipping 2
    assert steps.accept_request(2) == 2
    assert steps.exchanges == 2


def test_lockstep_allows_at_most_255_exchanges():
    mn, hac = LockStep(), LockStep()
    for expected in range(1, 256):
        identifier = mn.next_request()
        assert identifier == expected
        assert hac.accept_request(identifier) == identifier
        hac.answered()
        mn.accept_response(identifier)
    with pytest.raises(FramingError):
        mn.next_request()
    with pytest.raises(FramingError):
        hac.accept_request(1)
