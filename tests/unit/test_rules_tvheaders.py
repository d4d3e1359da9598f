"""aaa_mip6.tvheaders, rule by rule (RFC 6618 §5.2, §5.5-§5.7): each test states one rule
of the TV-header codec and kills the mutants of ``make mutation`` (docs/mutation.md)
that would break it. Hypothesis round trips and garbage are in test_tvheaders.py.

The header table (``_CODECS``) is built once, at import, by factories (``_codec``,
``_format_int``, ``_parse_network``, ...). mutmut's workers fork from a process that
imported the module before a mutant is switched on, so tests of the imported module
never see a mutant of those factories. The tests below also run against a freshly
executed copy of the module (``fresh``), built while the mutant is active.

Equivalent mutants (survive by design, nothing observable changes):

- ``_parse_spi``: ``raw.lstrip(b"XX0XX")``: stripping X as well as 0 from digits is
  stripping 0.
- ``_packed`` / ``_format_nai`` / ``_parse_nai``: ``"ASCII"`` / ``"UTF-8"`` for
  ``"ascii"`` / ``"utf-8"``: codec names are case-insensitive.
- ``_username_end``: ``after_dot = None`` instead of False (only read for its truth).
- ``decode_content``: ``codecs.get(None) or codecs.get(wire_name.lower())``: the
  exact-case lookup is a fast path; the lower-case one finds the same codec.
"""

from __future__ import annotations

import ipaddress
import runpy
import time
import warnings
from datetime import datetime, timezone

import pytest

from aaa_mip6 import tvheaders
from aaa_mip6.errors import HeaderError, MessageError


@pytest.fixture(params=["imported", "fresh"])
def tv(request):
    """The module as imported, and a copy executed now (its import-time table rebuilt)."""
    if request.param == "imported":
        return vars(tvheaders)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": on purpose
        return runpy.run_module("aaa_mip6.tvheaders")


V6 = ipaddress.IPv6Address("2001:db8::1:0:0:1")
V4 = ipaddress.IPv4Address("192.0.2.7")

# One value per header and its exact wire form (§5.5-§5.7 ABNF).
WIRE = [
    ("mn-id", "mn1@example.org", b"mn1@example.org"),
    ("auth-method", ("eap", "psk"), b"eap,psk"),
    ("eap-payload", b"\x02\xab", b"02ab"),
    ("status-code", 503, b"503"),
    ("auth", b"\xff\x00", b"ff00"),
    ("retry-after", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
     b"Wed, 02 Jan 2030 03:04:05 GMT"),
    ("mn-rand", bytes(range(32)), bytes(range(32)).hex().encode()),
    ("hac-rand", b"\xee" * 32, b"ee" * 32),
    ("mip6-spi", 268_435_455, b"268435455"),
    ("mip6-mn-to-ha-ikey", b"\x01" * 20, b"01" * 20),
    ("mip6-ha-to-mn-ikey", b"\x02" * 20, b"02" * 20),
    ("mip6-mn-to-ha-ekey", b"\x03" * 16, b"03" * 16),
    ("mip6-ha-to-mn-ekey", b"\x04" * 16, b"04" * 16),
    ("mip6-sa-validity-end", datetime(2031, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
     b"Wed, 31 Dec 2031 23:59:59 GMT"),
    ("mip6-sas", 1, b"1"),
    ("mip6-ciphersuite", b"\x00\x2f", b"{00 2F}"),
    ("mip6-suitelist", (b"\x00\x3c", b"\x00\x02"), b"{00 3C} {00 02}"),
    ("mip6-haa-ip6", V6, b"2001:db8:0:0:1:0:0:1"),
    ("mip6-haa-ip4", V4, b"192.0.2.7"),
    ("mip6-port", 65_535, b"65535"),
    ("mip6-ip6-hoa", V6, b"2001:db8:0:0:1:0:0:1"),
    ("mip6-ip4-hoa", V4, b"192.0.2.7"),
    ("mip6-ip6-hnp", ipaddress.IPv6Network("2001:db8:1::/99"), b"2001:db8:1:0:0:0:0:0/99"),
    ("mip6-ip4-hnp", ipaddress.IPv4Network("198.51.100.0/24"), b"198.51.100.0/24"),
    ("dns-ip6", V6, b"2001:db8:0:0:1:0:0:1"),
    ("dns-ip4", V4, b"192.0.2.7"),
]


def test_the_table_covers_every_header():
    assert {name for name, _, _ in WIRE} == tvheaders.HEADER_NAMES


@pytest.mark.parametrize("name, value, wire", WIRE, ids=[name for name, _, _ in WIRE])
def test_every_header_has_its_exact_wire_form_both_ways(tv, name, value, wire):
    assert tv["encode_header"](name, value) == name.encode() + b":" + wire + b"\r\n"
    decoded = tv["decode_value"](name, wire)
    assert decoded == (tuple(tv["AuthMethod"](m) for m in value) if name == "auth-method"
                       else value)


# name, value, the one-line error (header named, value never shown)
FORMAT_REFUSALS = [
    ("mip6-spi", 0, "mip6-spi: must be an int in 1..268435455"),
    ("mip6-spi", 268_435_456, "mip6-spi: must be an int in 1..268435455"),
    ("mip6-spi", True, "mip6-spi: must be an int in 1..268435455"),
    ("mip6-port", 65_536, "mip6-port: must be an int in 1..65535"),
    ("mip6-sas", 2, "mip6-sas: must be an int in 0..1"),
    ("mip6-haa-ip6", V4, "mip6-haa-ip6: must be an IPv6Address"),
    ("mip6-haa-ip4", V6, "mip6-haa-ip4: must be an IPv4Address"),
    ("mip6-ip6-hnp", ipaddress.IPv6Network("2001:db8::/100"),
     "mip6-ip6-hnp: must be an IPv6Network with a 1-2 digit prefix length"),
    ("mip6-ip4-hnp", "198.51.100.0/24",
     "mip6-ip4-hnp: must be an IPv4Network with a 1-2 digit prefix length"),
]


@pytest.mark.parametrize("name, value, message", FORMAT_REFUSALS)
def test_a_value_outside_its_abnf_is_refused_naming_the_header_and_the_rule(tv, name, value,
                                                                            message):
    with pytest.raises(HeaderError) as caught:
        tv["encode_header"](name, value)
    assert str(caught.value) == message


# name, wire value, the one-line error
PARSE_REFUSALS = [
    ("mip6-haa-ip6", b"2001:db8::1%eth0", "mip6-haa-ip6: not an IPv6 address"),
    ("mip6-haa-ip4", b"192.0.2.07", "mip6-haa-ip4: not an IPv4 address"),
    ("mip6-ip6-hnp", b"2001:db8::/100",
     "mip6-ip6-hnp: not address '/' prefix length 0..99 (1-2 digits)"),
    ("mip6-ip4-hnp", b"198.51.100.0/33",
     "mip6-ip4-hnp: not address '/' prefix length 0..32 (1-2 digits)"),
    ("mip6-ip4-hnp", b"198.51.100.1/24", "mip6-ip4-hnp: has bits set beyond its prefix length"),
    ("mip6-suitelist", b"{00 2F}  {00 3C}",
     "mip6-suitelist: not ciphersuites separated by single spaces"),
    ("mip6-suitelist", b"{00 2F} {00 2F}", "mip6-suitelist: a ciphersuite is listed twice"),
    ("mip6-suitelist", b"{00 2F} {00 35}",
     "mip6-suitelist: not a ciphersuite of RFC 6618 §5.6.5 in the form {00 2F}"),
    ("mip6-ip6-hnp", b"2001:db8::/099",
     "mip6-ip6-hnp: not address '/' prefix length 0..99 (1-2 digits)"),
    ("mip6-ip6-hnp", b"2001:db8::/ab",
     "mip6-ip6-hnp: not address '/' prefix length 0..99 (1-2 digits)"),
    ("mip6-ip6-hnp", b"2001:db8::/1/64",
     "mip6-ip6-hnp: not address '/' prefix length 0..99 (1-2 digits)"),
    ("mip6-ip6-hnp", b"2001:db8::zz/64", "mip6-ip6-hnp: not an IPv6 address"),
    ("mip6-sas", b"2", "mip6-sas: not one of the values its ABNF allows"),
    ("status-code", b"302", "status-code: not one of the values its ABNF allows"),
]


@pytest.mark.parametrize("name, raw, message", PARSE_REFUSALS)
def test_a_wire_value_outside_its_abnf_is_refused_naming_the_header(tv, name, raw, message):
    with pytest.raises(HeaderError) as caught:
        tv["decode_value"](name, raw)
    assert str(caught.value).startswith(f"{name}: ")
    if message is not None:
        assert str(caught.value) == message


@pytest.mark.parametrize("length", [0, 32])
def test_ipv4_prefix_lengths_0_to_32_both_ends(tv, length):
    network = ipaddress.IPv4Network((0, length))
    wire = f"0.0.0.0/{length}".encode()
    assert tv["encode_header"]("mip6-ip4-hnp", network) == b"mip6-ip4-hnp:" + wire + b"\r\n"
    assert tv["decode_value"]("mip6-ip4-hnp", wire) == network


@pytest.mark.parametrize("name, value", [("mip6-spi", 1), ("mip6-sas", 0), ("mip6-port", 1)])
def test_the_lowest_value_of_each_integer_header_is_allowed(tv, name, value):
    assert tv["encode_header"](name, value) == name.encode() + b":%d\r\n" % value


# Every refusal names the header and the rule it breaks, never the value (values hold
# keys): the HAC logs it as the session's failure reason. (header, wire value, message)
DECODE_MESSAGES = [
    ("mip6-spi", b"12a", "not decimal digits"),
    ("mip6-spi", b"000", "0 outside 1..268435455"),
    ("mip6-spi", b"2684354550", "not 1..9 decimal digits"),
    ("mip6-port", b"123456", "not 1..5 decimal digits"),
    ("mip6-port", b"0", "0 outside 1..65535"),
    ("eap-payload", b"abc", "not an even number of hex digits"),
    ("eap-payload", b"zz", "not an even number of hex digits"),
    ("eap-payload", b"", "empty"),
    ("mn-rand", b"00" * 31, "31 octets, must be 32"),
    ("retry-after", b"Sun, 06 Nov 1994 08:49:37 UTC",
     "not an rfc1123-date like 'Sun, 06 Nov 1994 08:49:37 GMT'"),
    ("retry-after", b"Mon, 06 Nov 1994 08:49:37 GMT", "the weekday does not match the date"),
    ("retry-after", b"Sun, 31 Feb 1994 08:49:37 GMT", "not a valid calendar date and time"),
    ("auth-method", b"psk,psk", "a method is listed twice"),
    ("auth-method", b"psk,tls", "an authentication method is not psk or eap"),
    ("mn-id", b"a..b@example.org", "username has an empty dot-separated part"),
    ("mn-id", b"a@example", "realm must have at least two labels"),
    ("mn-id", b"a@-x.org", "realm label is not letters, digits and inner hyphens"),
    ("mn-id", b"a@" + b"x" * 64 + b".org", "realm label is not letters, digits and inner hyphens"),
    ("mn-id", b"a\\", "username has a bad escape"),
    ("mn-id", b"a.@example.org", "username ends with '.'"),
    ("mn-id", b"a\x7f@example.org", "username has a character RFC 4282 does not allow"),
    ("mn-id", b"\xff@example.org", "not UTF-8"),
    ("mn-id", b"a" * 254, "must be 1..253 octets"),
    ("mn-rand", b"zz", "not an even number of hex digits"),
    ("auth-method", b"Xpsk", "an authentication method is not psk or eap"),
    ("auth-method", b"psk\x0b", "an authentication method is not psk or eap"),
    ("mip6-port", b"\x0c80", "not 1..5 decimal digits"),
]


@pytest.mark.parametrize("name, raw, message", DECODE_MESSAGES)
def test_every_decoding_refusal_names_header_and_rule(name, raw, message):
    with pytest.raises(HeaderError) as caught:
        tvheaders.decode_value(name, raw)
    assert str(caught.value) == f"{name}: {message}"


ENCODE_MESSAGES = [
    ("eap-payload", b"", "must be non-empty bytes"),
    ("mn-rand", bytes(31), "must be 32 octets"),
    ("retry-after", datetime(2030, 1, 1), "must be a timezone-aware datetime in whole seconds"),
    ("status-code", 302, "not a status code of RFC 6618 §5.5.4"),
    ("auth-method", (), "must list one or more distinct methods"),
    ("auth-method", ("tls",), "an authentication method is not psk or eap"),
    ("mip6-ciphersuite", b"\x00\x35", "not a ciphersuite code of RFC 6618 §5.6.5"),
    ("mip6-suitelist", (), "must list one or more distinct ciphersuites"),
    ("mip6-suitelist", (b"\x00\x35",), "not a ciphersuite code of RFC 6618 §5.6.5"),
    ("mn-id", "bad user@example.org", "username has a character RFC 4282 does not allow"),
    ("mn-id", "a" * 254, "must be 1..253 octets"),
]


@pytest.mark.parametrize("name, value, message", ENCODE_MESSAGES)
def test_every_encoding_refusal_names_header_and_rule(name, value, message):
    with pytest.raises(HeaderError) as caught:
        tvheaders.encode_header(name, value)
    assert str(caught.value) == f"{name}: {message}"


@pytest.mark.parametrize("content, error, message", [
    (b"mip6-port:80\r\n", MessageError, "Content does not end with a header line and an empty line"),
    (b"mip6-port:80\r\nauth:00\r\nmn-id:a\r\n\r\n", MessageError, "auth must be the last header"),
    (b"mip6-port:80\r\n\r\n\r\n\r\n", MessageError, "Content continues after its end-of-message"),
    (b"mip6-port 80\r\n\r\n", HeaderError, "header line 1 has no ':'"),
    (b"x-y:1\r\n\r\n", MessageError, "header line 1 has an unknown name"),
    (b"mip6-port:80\r\nmip6-port:81\r\n\r\n", MessageError, "mip6-port appears twice"),
    (b"mip6-port:x\r\n\r\n", HeaderError, "mip6-port: not 1..5 decimal digits"),
    (b"mip6-port:\x0c80\r\n\r\n", HeaderError, "mip6-port: not 1..5 decimal digits"),
])
def test_every_content_refusal_says_what_is_wrong(content, error, message):
    """§5.5: only SP or HT may follow the colon; any other white space is refused."""
    with pytest.raises(error) as caught:
        tvheaders.decode_content(content)
    assert str(caught.value) == message


def test_a_realm_label_may_have_63_characters_rfc1035():
    nai = "a@" + "x" * 63 + ".org"
    assert tvheaders.decode_value("mn-id", nai.encode()) == nai


def test_an_spi_may_carry_leading_zeros_beyond_nine_digits():
    assert tvheaders.decode_value("mip6-spi", b"00000000001") == 1


@pytest.mark.parametrize("position", [3, 7, 11, 16, 19, 22, 25])
def test_an_rfc1123_date_needs_each_separator_in_its_place(position):
    good = bytearray(b"Sun, 06 Nov 1994 08:49:37 GMT")
    good[position] = ord("x")
    with pytest.raises(HeaderError, match="not an rfc1123-date"):
        tvheaders.decode_value("retry-after", bytes(good))


def test_a_date_is_written_in_gmt_whatever_the_hosts_zone(monkeypatch):
    """§5.5.6: rfc1123-date is GMT; a host in another zone writes the same octets."""
    value = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert tvheaders.encode_header("retry-after", value) == (
            b"retry-after:Wed, 02 Jan 2030 03:04:05 GMT\r\n")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_nai_of_253_octets_fits_rfc2865_5_1():
    assert tvheaders.decode_value("mn-id", b"a" * 253) == "a" * 253


def test_only_space_and_tab_before_a_value_are_dropped_rfc6618_5_2():
    assert tvheaders.decode_value("mn-id", b" \tXa@example.org") == "Xa@example.org"


def test_sealing_an_empty_auth_is_refused_naming_auth():
    with pytest.raises(HeaderError) as caught:
        tvheaders.seal(b"", b"")
    assert str(caught.value) == "auth: must be non-empty bytes"
