"""A real ``mip6-hac`` over real TLS, fed malformed requests in every phase (issue 11).

The HAC relays EAP to a fake RADIUS server in this process that answers every
Access-Request with an EAP-MD5 challenge. Regressions first: a malformed second or
third request in the EAP phase (garbage, an EAP Length that disagrees with its packet)
got no answer and a Twisted "Unhandled Error" traceback; an EAP identity over 253
octets or an EAP packet no Access-Request can carry reached the RADIUS encoder and got
500 and an ERROR traceback. Each must be 400, the close, one log line, no AAA round.

Then the fuzz run: :data:`CASES` requests, each the valid request of one step (PSK Init,
PSK Done, the EAP identity Mid, a later EAP Mid or Done) mutated by a seeded generator
(bytes flipped, cut or inserted, lines dropped, repeated or swapped, values replaced,
whitespace, odd EAP packets, another message's headers, container header bits), then
signed with the right key or not. Every request must get exactly one answer: a
well-formed container with the request's Identifier (the next one after a framing
error) and an ``auth`` that verifies with the key of that step, never 500; an error or
a Done is followed by the close. The cases run in a fixed order with every step
interleaved, so a slow machine that hits :data:`BUDGET` runs a prefix of the same
sequence. Afterwards a valid bootstrap still works, the log holds one line per
connection and no traceback.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pyrad import packet as pyrad_packet

from aaa_mip6 import container, eap, pki
from aaa_mip6 import messages as m
from aaa_mip6 import tvheaders as tv
from aaa_mip6.authenticator import EAP_KEY, Sender, channel_binding, compute
from aaa_mip6.errors import InvalidInput
from aaa_mip6.suites import SUITES
from aaa_mip6.tvheaders import AuthMethod
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids
from tests.unit.radius_fakes import SECRET, decode_request, reply_to

pytestmark = pytest.mark.integration

SEED = 6618
CASES = 3000
BUDGET = 30.0  # seconds for the fuzz run: a bound on its length, not a measurement
SAFETY = 10.0  # seconds to wait for one answer or the close
MN_ID = mn_ids(1)[0]
AES = SUITES["AES_128_CBC_SHA"]
MD5_CHALLENGE = eap.EapPacket(eap.Code.REQUEST, 2, eap.Type.MD5_CHALLENGE,
                              bytes([16]) + bytes(range(16))).encode()
# The HAC logs one line per connection, at its end; these must never appear.
BAD_LOG = re.compile(r"Traceback|Unhandled|CRITICAL| ERROR |unexpectedly")
_SOURCES = (ipaddress.IPv4Address("127.1.0.0") + number for number in itertools.count(1))


class FakeRadius:
    """A RADIUS server on a loopback UDP socket, in a thread: every Access-Request gets an
    Access-Challenge carrying :data:`MD5_CHALLENGE` and a State."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="fake-radius", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                datagram, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = decode_request(datagram)
            self.received += 1
            reply = reply_to(request, pyrad_packet.AccessChallenge, MD5_CHALLENGE,
                             State=b"round-%d" % self.received)
            self.sock.sendto(reply.ReplyPacket(), source)

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=SAFETY)
        self.sock.close()


@pytest.fixture(scope="module")
def hac(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hac-fuzz")
    radius = FakeRadius()
    setup = make_setup(directory)
    secret_file = directory / "radius.secret"
    pki.write_private(secret_file, SECRET + b"\n")
    config = {**TEST_CONFIG, "log": {"level": "info"},
              "radius": {"servers": [f"127.0.0.1:{radius.port}"],
                         "secret_file": str(secret_file)}}
    try:
        with HacProcess(setup, config=config) as process:
            yield process, radius
    finally:
        radius.stop()


# --- a raw MN -----------------------------------------------------------------


class Wire:
    """TLS connections to the HAC, resuming one TLS session to keep handshakes cheap.

    Each comes from a loopback address of its own (127.1.0.1, 127.1.0.2, ...), which the
    HAC's log line names: ephemeral ports come round again within a few thousand
    connections, and another program on this machine may connect from 127.0.0.1.
    """

    def __init__(self, process: HacProcess):
        self.address = (process.host, process.port)
        self.context = ssl.create_default_context(cafile=str(process.setup.ca.cert_path))
        self.session = None
        self.channel_binding = b""
        self.sources: list[str] = []

    def connect(self) -> Connection:
        source = str(next(_SOURCES))
        raw = socket.create_connection(self.address, timeout=SAFETY,
                                       source_address=(source, 0))
        sock = self.context.wrap_socket(raw, server_hostname=self.address[0],
                                        session=self.session)
        self.sources.append(source)
        if not self.channel_binding:
            self.channel_binding = channel_binding(sock.getpeercert(binary_form=True))
        return Connection(self, sock)


class Connection:
    def __init__(self, wire: Wire, sock: ssl.SSLSocket):
        self.wire = wire
        self.sock = sock
        self.source = sock.getsockname()[0]

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.sock.session is not None:
            self.wire.session = self.sock.session
        self.sock.close()

    def ask(self, data: bytes) -> container.Frame | None:
        """Send ``data``; the one container that answers it, or None if the HAC closed."""
        self.sock.sendall(data)
        deframer = container.Deframer()
        while True:
            try:
                received = self.sock.recv(65_536)
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not received:
                return None
            frames = deframer.feed(received)
            if frames:
                assert len(frames) == 1 and not deframer.buffered, "more than one answer"
                return frames[0]

    def closed(self) -> bool:
        """True once the HAC has closed the connection (and sent nothing more)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    def exchange(self, identifier: int, message, key: bytes | None, expected) -> m.Received:
        content = m.encode(message, key, self.wire.channel_binding if key else None)
        reply = self.ask(container.encode(identifier, content))
        assert reply is not None and reply.identifier == identifier
        return m.decode_response(reply.content, expected)


def signed_lines(lines: list[bytes], key: bytes, channel_binding_: bytes) -> bytes:
    """Content of ``lines`` with an ``auth`` over them, however odd they are."""
    signed = b"".join(lines)
    return tv.seal(signed, compute(key, Sender.MN, signed, channel_binding_))


def header_lines(message) -> list[bytes]:
    return [tv.encode_header(name, value) for name, value in message.headers()]


def identity_response(identifier: int, identity: bytes = MN_ID.encode()) -> bytes:
    return eap.EapPacket(eap.Code.RESPONSE, identifier, eap.Type.IDENTITY, identity).encode()


def md5_response(identifier: int = 2) -> bytes:
    return eap.EapPacket(eap.Code.RESPONSE, identifier, eap.Type.MD5_CHALLENGE,
                         bytes([16]) + bytes(16)).encode()


def eap_init(connection: Connection) -> int:
    """The MN's EAP Init; the identifier of the HAC's EAP-Request/Identity."""
    hac_init = connection.exchange(1, m.MnInit(MN_ID, bytes(32), (AuthMethod.EAP,)), None,
                                   m.HacInit)
    hac_init.verify(EAP_KEY, connection.wire.channel_binding)
    return eap.decode(hac_init.message.eap_payload).identifier


def log_lines(process: HacProcess) -> list[str]:
    return process.log_path.read_text("utf-8", "replace").splitlines()


def lines_of(process: HacProcess, connection: Connection) -> list[str]:
    """The log lines about ``connection`` (its bootstrap line names its source port),
    once the HAC has written one (polled, bounded)."""
    marker = f"source={connection.source}:"
    deadline = time.monotonic() + SAFETY
    while True:
        found = [line for line in log_lines(process) if marker in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def assert_refused_400(process: HacProcess, connection: Connection, data: bytes,
                       identifier: int) -> None:
    reply = connection.ask(data)
    assert reply is not None, "the HAC closed without an answer"
    assert reply.identifier == identifier
    error = m.decode_response(reply.content, m.HacError)
    error.verify(EAP_KEY, connection.wire.channel_binding)
    assert error.message.status == 400
    assert connection.closed()
    (line,) = lines_of(process, connection)
    assert " INFO " in line and "result=400" in line
    assert not [line for line in log_lines(process) if BAD_LOG.search(line)]


# --- the regressions ------------------------------------------------------------------


def garbage(wire: Wire, identifier: int) -> bytes:
    return container.encode(identifier, b"garbage\r\n\r\n")


def eap_length_mismatch(wire: Wire, identifier: int) -> bytes:
    packet = bytearray(md5_response())
    packet[3] += 1  # EAP Length one more than the packet
    lines = [b"eap-payload:" + bytes(packet).hex().encode() + b"\r\n"]
    return container.encode(identifier, signed_lines(lines, EAP_KEY, wire.channel_binding))


@pytest.mark.parametrize("make", [garbage, eap_length_mismatch])
@pytest.mark.parametrize("step", [2, 3])
def test_a_malformed_request_in_the_eap_phase_is_400_then_close(hac, make, step):
    process, radius = hac
    wire = Wire(process)
    with wire.connect() as connection:
        eap_identifier = eap_init(connection)
        if step == 3:
            mid = connection.exchange(2, m.MnMid(identity_response(eap_identifier)), EAP_KEY,
                                      m.HacMid)
            assert mid.message.eap_payload == MD5_CHALLENGE
        asked = radius.received
        assert_refused_400(process, connection, make(wire, step), step)
    assert radius.received == asked


def test_an_eap_identity_over_253_octets_is_400_before_any_radius_request(hac):
    process, radius = hac
    wire = Wire(process)
    with wire.connect() as connection:
        eap_identifier = eap_init(connection)
        identity = identity_response(eap_identifier, b"u" * 242 + b"@example.org")
        data = container.encode(2, m.encode(m.MnMid(identity), EAP_KEY, wire.channel_binding))
        asked = radius.received
        assert_refused_400(process, connection, data, 2)
    assert radius.received == asked


def test_an_eap_packet_no_access_request_can_carry_is_400_before_any_radius_request(hac):
    process, radius = hac
    wire = Wire(process)
    with wire.connect() as connection:
        eap_identifier = eap_init(connection)
        connection.exchange(2, m.MnMid(identity_response(eap_identifier)), EAP_KEY, m.HacMid)
        huge = eap.EapPacket(eap.Code.RESPONSE, 2, eap.Type.TLS, bytes(4000)).encode()
        data = container.encode(3, m.encode(m.MnMid(huge), EAP_KEY, wire.channel_binding))
        asked = radius.received
        assert_refused_400(process, connection, data, 3)
    assert radius.received == asked


# --- the fuzz run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request the fuzzer mutates: how to reach it, its valid form, what may answer."""

    name: str
    identifier: int
    prepare: Callable[[Connection, random.Random], list[bytes]]  # -> the valid request's lines
    key: bytes | None  # what its auth and every answer are keyed with (None: Init)
    answers: tuple[type, ...]


def _psk_init_lines(connection: Connection, rng: random.Random) -> list[bytes]:
    methods = rng.choice([(AuthMethod.PSK,), (AuthMethod.EAP,), (AuthMethod.PSK, AuthMethod.EAP)])
    return header_lines(m.MnInit(MN_ID, rng.randbytes(32), methods))


def _psk_done_lines(connection: Connection, rng: random.Random) -> list[bytes]:
    mn_rand = rng.randbytes(32)
    hac_init = connection.exchange(1, m.MnInit(MN_ID, mn_rand, (AuthMethod.PSK,)), None,
                                   m.HacInit)
    return header_lines(m.MnDone(1, (AES.code,), mn_rand, hac_init.message.hac_rand))


def _eap_identity_lines(connection: Connection, rng: random.Random) -> list[bytes]:
    return header_lines(m.MnMid(identity_response(eap_init(connection))))


def _eap_later_lines(connection: Connection, rng: random.Random) -> list[bytes]:
    connection.exchange(2, m.MnMid(identity_response(eap_init(connection))), EAP_KEY, m.HacMid)
    if rng.random() < 0.5:
        return header_lines(m.MnMid(md5_response()))
    return header_lines(m.MnDone(1, (AES.code,), eap_payload=md5_response()))


def steps(psk: bytes) -> list[Step]:
    return [
        Step("Init", 1, _psk_init_lines, None, (m.HacInit, m.HacError)),
        Step("PSK Done", 2, _psk_done_lines, psk, (m.HacDone, m.HacError)),
        Step("EAP identity", 2, _eap_identity_lines, EAP_KEY, (m.HacMid, m.HacError)),
        Step("EAP later", 3, _eap_later_lines, EAP_KEY, (m.HacMid, m.HacError)),
    ]


_TOKENS = (b" ", b"\t", b"\r\n", b"\r\n\r\n", b":", b",", b"\x00", b"\xff", b"{00 2F}",
           b"auth:", b"mn-id:", b"eap-payload:", b"mip6-sas:1\r\n", b"0" * 64)


def _odd_eap_packet(rng: random.Random) -> bytes:
    packet = bytearray(rng.choice([md5_response(), identity_response(1)]))
    choice = rng.randrange(7)
    if choice == 0:
        packet[2:4] = rng.randrange(65536).to_bytes(2, "big")  # EAP Length lies
    elif choice == 1:
        packet[0] = rng.randrange(256)  # another code: Request, Success, unknown
    elif choice == 2:
        packet = packet[:rng.randrange(len(packet))] or b"\x02"
    elif choice == 3:  # an identity over 253 octets
        packet = bytearray(identity_response(1, b"u" * rng.randrange(240, 400)))
    elif choice == 4:  # over the 4096 of an Access-Request, or just under
        packet = bytearray(eap.EapPacket(eap.Code.RESPONSE, 2, eap.Type.TLS,
                                         bytes(rng.randrange(3500, 6000))).encode())
    elif choice == 5:
        packet = bytearray(identity_response(1, b"\xff\xfe"))  # not UTF-8
    else:
        packet = bytearray(eap.EapPacket(eap.Code.SUCCESS, 1).encode())
    return bytes(packet)


def _mutate_lines(rng: random.Random, lines: list[bytes]) -> list[bytes]:
    lines = list(lines)
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(len(lines)) if lines else 0
        operation = rng.randrange(9)
        if operation == 0 and lines:
            del lines[index]
        elif operation == 1 and lines:
            lines.insert(rng.randrange(len(lines) + 1), lines[index])
        elif operation == 2 and len(lines) > 1:
            other = rng.randrange(len(lines))
            lines[index], lines[other] = lines[other], lines[index]
        elif operation == 3 and lines:  # another value
            name = lines[index].partition(b":")[0]
            lines[index] = name + b":" + rng.choice(_TOKENS + (rng.randbytes(8).hex().encode(),
                                                              b"psk ", b"eap,\t")) + b"\r\n"
        elif operation == 4 and lines:  # whitespace after the value
            lines[index] = lines[index][:-2] + rng.choice([b" ", b"\t"]) + b"\r\n"
        elif operation == 5:
            lines.insert(rng.randrange(len(lines) + 1),
                         b"eap-payload:" + _odd_eap_packet(rng).hex().encode() + b"\r\n")
        elif operation == 6 and lines:  # the eap-payload, if any, made odd
            lines = [b"eap-payload:" + _odd_eap_packet(rng).hex().encode() + b"\r\n"
                     if line.startswith(b"eap-payload:") else line for line in lines]
        elif operation == 7:  # another message's headers
            lines += rng.choice([
                header_lines(m.MnInit(MN_ID, bytes(32), (AuthMethod.PSK,))),
                [b"mip6-sas:1\r\n", b"mip6-suitelist:{00 2F}\r\n"],
                [b"mn-rand:" + bytes(32).hex().encode() + b"\r\n"],
            ])
        elif lines:  # names in upper case
            lines[index] = lines[index].upper()
    return lines


def _mutate_bytes(rng: random.Random, content: bytes) -> bytes:
    data = bytearray(content)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(data) + 1)
        operation = rng.randrange(3)
        if operation == 0 and position < len(data):
            data[position] = rng.randrange(256)
        elif operation == 1:
            del data[position:position + rng.randint(1, 8)]
        else:
            data[position:position] = rng.choice(_TOKENS)
    return bytes(data) or b"\r\n"


def fuzzed_request(rng: random.Random, step: Step, lines: list[bytes],
                   channel_binding_: bytes) -> tuple[bytes, int]:
    """(octets to send, the Identifier the answer must carry)."""
    if rng.random() < 0.8:
        lines = _mutate_lines(rng, lines)
    signing = rng.random()
    if step.key is None:  # Init carries no auth: now and then one anyway
        signing = 0.8 if signing < 0.1 else 1.0
    if signing < 0.7:
        content = signed_lines(lines, step.key, channel_binding_)
    elif signing < 0.85:
        content = tv.seal(b"".join(lines), rng.randbytes(32))  # an auth that does not verify
    else:
        content = b"".join(lines) + tv.END_OF_MESSAGE
    if rng.random() < 0.3:
        content = _mutate_bytes(rng, content)
    content = content[:container.MAX_CONTENT]
    header = rng.random()
    if header < 0.05:  # a framing error: answered with the next Identifier
        first, identifier, length = rng.choice([(0x20, step.identifier, len(content)),
                                                (0x01, step.identifier, len(content)),
                                                (0, 0, len(content))])
        data = bytes([first, identifier]) + length.to_bytes(2, "big") + content
        return data, step.identifier
    if header < 0.1:  # another Identifier: answered with that one
        identifier = rng.choice([step.identifier - 1 or 255, step.identifier + 1, 255])
        return container.encode(identifier, content), identifier
    return container.encode(step.identifier, content), step.identifier


def _answer_key(step: Step, data: bytes, psks) -> bytes | None:
    """What the answer is keyed with; None where the MN cannot know it (a dummy key)."""
    if step.key is not None:
        return step.key
    try:
        (frame,) = container.Deframer().feed(data)
        init = m.decode_request(frame.content, m.MnInit).message
    except (InvalidInput, ValueError):
        return EAP_KEY
    if frame.identifier != 1 or AuthMethod.PSK not in init.auth_methods:
        return EAP_KEY  # the HAC prefers psk, else eap (keyed 1), else 501 (keyed 1)
    return psks.get(init.mn_id)  # an unknown identity gets a dummy key


def run_case(wire: Wire, step: Step, rng: random.Random, psks) -> str:
    """One fuzzed request on a new connection; what answered it, e.g. ``HacError 400``."""
    with wire.connect() as connection:
        lines = step.prepare(connection, rng)
        data, identifier = fuzzed_request(rng, step, lines, wire.channel_binding)
        reply = connection.ask(data)
        assert reply is not None, "closed without an answer"
        assert reply.identifier == identifier
        received = m.decode_response(reply.content, step.answers)
        key = _answer_key(step, data, psks)
        if key is not None:
            received.verify(key, wire.channel_binding)
        message = received.message
        status = getattr(message, "status", None)
        assert status != 500
        if isinstance(message, m.HacError | m.HacDone):
            assert status in (200, 400, 401, 501)
            assert connection.closed(), "no close after the final answer"
        return f"{type(message).__name__} {status or ''}{'' if key else ' (dummy key)'}"


def test_fuzzed_requests_get_one_authenticated_answer_and_leave_the_hac_working(hac):
    process, radius = hac
    wire = Wire(process)
    psk = process.setup.psks[MN_ID]
    all_steps = steps(psk)
    outcomes: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + BUDGET
    for number in range(CASES):
        if time.monotonic() > deadline:
            break
        step = all_steps[number % len(all_steps)]
        rng = random.Random(f"{SEED}-{number}")
        try:
            outcome = run_case(wire, step, rng, process.setup.psks)
        except AssertionError as failure:
            raise AssertionError(f"case {number} ({step.name}, seed {SEED}-{number}): "
                                 f"{failure}\n{process.log_tail()}") from None
        outcomes[f"{step.name}: {outcome}"] += 1
    ran = sum(outcomes.values())
    print(f"{ran} fuzzed requests:", dict(sorted(outcomes.items())))
    for step in all_steps:  # every step was reached, and refused as well as answered
        assert any(key.startswith(f"{step.name}: HacError 400") for key in outcomes), outcomes

    with wire.connect() as connection:  # a valid bootstrap still works
        mn_rand = bytes(range(32))
        hac_init = connection.exchange(1, m.MnInit(MN_ID, mn_rand, (AuthMethod.PSK,)), None,
                                       m.HacInit)
        hac_init.verify(psk, wire.channel_binding)
        done = connection.exchange(2, m.MnDone(1, (AES.code,), mn_rand,
                                               hac_init.message.hac_rand), psk, m.HacDone)
        done.verify(psk, wire.channel_binding)
        assert done.message.status == 200 and done.message.provision.spi
        assert connection.closed()
    with wire.connect() as connection:  # and so does the EAP relay
        mid = connection.exchange(2, m.MnMid(identity_response(eap_init(connection))),
                                  EAP_KEY, m.HacMid)
        mid.verify(EAP_KEY, wire.channel_binding)
        assert mid.message.eap_payload == MD5_CHALLENGE

    # One line per connection (each written at its end; a source port may come again),
    # and nothing worse anywhere.
    connected = collections.Counter(wire.sources)
    deadline = time.monotonic() + SAFETY
    while True:
        lines = log_lines(process)
        logged = collections.Counter(
            match.group(1) for line in lines
            if (match := re.search(r" bootstrap mn-id=.* source=(127\.1\.[0-9.]+):", line))
            and match.group(1) in connected)
        if logged == connected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    wrong = {source for source in connected | logged if logged[source] != connected[source]}
    assert not wrong, [line for line in lines if any(f"={source}:" in line for source in wrong)]
    assert not [line for line in lines if BAD_LOG.search(line)]
