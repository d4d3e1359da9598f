"""aaa_mip6.transform, rule by rule (RFC 6618 §6): each test states one rule of the MN-HA
packet transform and kills the mutants of ``make mutation`` (docs/mutation.md) that
would break it. Round trips, tampering and replay are in test_transform.py.

Every refusal names what is wrong (the HA's debug log, an MN's error) and carries the
``reason`` the HA counts; the table below pins both.

Equivalent mutants (survive by design, nothing observable changes):

- ``Sealer.__init__``: ``self._algorithm = ""`` instead of None for the NULL suites. A
  NULL Sealer never builds a CBC context (its ``_encrypt``/``_decrypt`` are set), so
  ``_algorithm`` is never read.
"""

from __future__ import annotations

import struct

import pytest

from aaa_mip6.errors import ConfigError, IntegrityError, PacketError
from aaa_mip6.replay import SEQ_LIMIT
from aaa_mip6.sa import SCOPE_SIGNALING, SPI_MAX
from aaa_mip6.transform import PType, SaEndpoint, SequenceExhausted, decode_plain, peek
from tests.unit.test_transform import endpoints, forge, make_sa, make_sealer

SPI = 4660  # make_sa's and make_sealer's


def test_the_largest_28_bit_spi_is_a_valid_spi_rfc6618_5_6_1():
    sealer = make_sealer("AES_128_CBC_SHA", spi=SPI_MAX)
    packet = sealer.protect(PType.MOBILITY, 0, b"bu", 135)
    assert peek(packet) == (PType.MOBILITY, SPI_MAX, 0)
    assert sealer.unprotect(packet).spi == SPI_MAX


def test_a_received_packet_reports_the_spi_and_sequence_it_came_under():
    mn, ha = endpoints()
    opened = ha.unprotect(mn.protect(PType.MOBILITY, b"bu", 135))
    assert (opened.ptype, opened.spi, opened.seq, opened.payload, opened.next_header) == (
        PType.MOBILITY, SPI, 0, b"bu", 135)


def test_an_endpoint_says_which_end_it_is():
    sa = make_sa()
    assert "role=mn" in repr(SaEndpoint(sa, "mn")) and "role=ha" in repr(SaEndpoint(sa, "ha"))


def plain_endpoint_sending_data():
    return SaEndpoint(make_sa(scope=SCOPE_SIGNALING), "mn").protect(PType.ENCRYPTED_IP, b"x", 41)


def exhausted():
    return SaEndpoint(make_sa(), "mn", next_sequence=SEQ_LIMIT).protect(PType.MOBILITY, b"", 135)


def bad_padding():
    return make_sealer("NULL_SHA").unprotect(forge("NULL_SHA", b"ab\x01\x02\x03\x09\x04\x29"))


def wrong_spi_at_the_endpoint():
    _, ha = endpoints()
    return ha.verify(b"", (PType.MOBILITY, 5, 0))


def wrong_ptype_at_the_endpoint():
    _, ha = endpoints()
    return ha.verify(b"", (PType.PLAIN, 0, 0))


REFUSALS = {
    "short header": (lambda: peek(b"\x10\x00\x00"), PacketError,
                     "packet of 3 octets is shorter than its header", "malformed"),
    "unknown ptype": (lambda: peek(struct.pack("!II", 2 << 28 | 5, 0)), PacketError,
                      "unknown PType 2", "malformed"),
    "spi 0 with ptype 1": (lambda: peek(struct.pack("!II", 1 << 28, 0)), PacketError,
                           "PType 1 with SPI 0: SPI 0 goes with PType 0 only", "malformed"),
    "ptype 0 with a sequence": (lambda: peek(struct.pack("!II", 0, 7)), PacketError,
                                "PType 0 packet with a non-zero sequence number", "malformed"),
    "decode_plain of ptype 1": (lambda: decode_plain(struct.pack("!II", 1 << 28 | 5, 0)),
                                PacketError, "expected PType 0, got 1", "wrong-ptype"),
    "sealer spi 0": (lambda: make_sealer("NULL_SHA", spi=0), ConfigError,
                     "SPI 0 is outside 1..268435455", "malformed"),
    "sealer ptype 0": (lambda: make_sealer("NULL_SHA").protect(PType.PLAIN, 0, b"", 0),
                       ValueError, "PType 0 is not a protected packet type", None),
    "sealer sequence": (lambda: make_sealer("NULL_SHA").protect(PType.MOBILITY, SEQ_LIMIT, b"", 0),
                        ValueError, "sequence number 4294967296 is not a 32-bit number", None),
    "too short": (lambda: make_sealer("AES_128_CBC_SHA").unprotect(bytes(40)), PacketError,
                  "protected packet of 40 octets is too short", "malformed"),
    "not whole blocks": (lambda: make_sealer("AES_128_CBC_SHA").unprotect(bytes(53)),
                         PacketError, "encrypted part is not a multiple of 16 octets",
                         "malformed"),
    "icv": (lambda: make_sealer("NULL_SHA").unprotect(bytes(24)), IntegrityError,
            "ICV of a 24-octet packet does not verify", "bad-icv"),
    "padding": (bad_padding, PacketError, "padding is not 1, 2, 3, ... (RFC 4303 §2.4)",
                "bad-padding"),
    "sealer unprotected ptype": (
        lambda: make_sealer("NULL_SHA").unprotect(forge(
            "NULL_SHA", b"\x01\x02\x02\x04", header=struct.pack("!II", 2 << 28 | SPI, 1))),
        PacketError, "PType 2 is not a protected packet type", "malformed"),
    "sealer wrong spi": (
        lambda: make_sealer("NULL_SHA").unprotect(forge("NULL_SHA", b"\x01\x02\x02\x04", spi=5)),
        PacketError, "SPI 5 is not this SA's", "wrong-spi"),
    "endpoint unknown suite": (lambda: SaEndpoint(make_sa().replace(suite="RC4_MD5"), "mn"),
                               ConfigError, "SA 4660 names an unknown ciphersuite 'RC4_MD5'",
                               "malformed"),
    "endpoint role": (lambda: SaEndpoint(make_sa(), "hac"), ValueError,
                      "role must be one of ('mn', 'ha'), got 'hac'", None),
    "endpoint scope": (lambda: SaEndpoint(make_sa().replace(scope=7), "mn"), ConfigError,
                       "SA 4660 has an unknown scope 7", "malformed"),
    "endpoint next_sequence": (lambda: SaEndpoint(make_sa(), "mn", next_sequence=SEQ_LIMIT + 1),
                               ValueError, "next_sequence 4294967297 is outside 0..2**32", None),
    "endpoint sends outside scope": (plain_endpoint_sending_data, ValueError,
                                     "PType 1 is outside this SA's scope", None),
    "endpoint ptype 0 next header": (
        lambda: SaEndpoint(make_sa(scope=SCOPE_SIGNALING), "mn").protect(PType.PLAIN, b"x", 41),
        ValueError, "a PType 0 packet has no next header", None),
    "endpoint exhausted": (exhausted, SequenceExhausted, "SA 4660 has used every sequence number",
                           None),
    "endpoint receives outside scope": (wrong_ptype_at_the_endpoint, PacketError,
                                        "PType 0 is outside this SA's scope", "wrong-ptype"),
    "endpoint wrong spi": (wrong_spi_at_the_endpoint, PacketError, "SPI 5 is not this SA's",
                           "wrong-spi"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_every_refusal_says_what_is_wrong_and_counts_its_reason(case):
    call, error, message, reason = REFUSALS[case]
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value) == message
    assert getattr(caught.value, "reason", None) == reason
