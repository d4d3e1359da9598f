"""aaa_mip6.addresses: the host:port rules every program shares, and rate-limit keys."""

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.addresses import (
    format_host_port,
    parse_host_port,
    rate_limit_key,
    refuse_unbracketed_port,
    split_host_port,
)

ports = st.integers(0, 65_535)


@given(st.ip_addresses(), ports)
def test_format_then_parse_gives_back_the_address_and_port(address, port):
    host, parsed = parse_host_port(format_host_port(address, port))
    assert (ipaddress.ip_address(host), parsed) == (address, port)


@given(st.ip_addresses(), ports)
def test_format_then_split_gives_back_the_address_and_port_text(address, port):
    assert split_host_port(format_host_port(address, port)) == (str(address), str(port))


@pytest.mark.parametrize(("text", "expected"), [
    ("[2001:db8::1]:80", ("2001:db8::1", "80")),
    ("[2001:db8::1]", ("2001:db8::1", None)),
    ("[::1]:", ("::1", "")),
    ("192.0.2.1:80", ("192.0.2.1", "80")),
    ("192.0.2.1", ("192.0.2.1", None)),
    ("hac.example:4433", ("hac.example", "4433")),
    ("hac.example", ("hac.example", None)),
    ("2001:db8::1", ("2001:db8::1", None)),
    ("2001:db8::1:80", ("2001:db8::1:80", None)),  # unbracketed: never a port
    ("", ("", None)),
])
def test_split_forms(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["[2001:db8::1", "[2001:db8::1]80", "[::1]x:80", "[]]"])
def test_a_bracket_out_of_place_is_refused(text):
    with pytest.raises(ValueError, match=r"\[address\]:port"):
        split_host_port(text)


@pytest.mark.parametrize("port", ["", "x", "65536", "-1", "+80", " 80", "8_0", "٨٠", "²"])
def test_a_bad_port_is_refused_with_the_range(port):
    with pytest.raises(ValueError, match=r"the port must be 0\.\.65535"):
        parse_host_port(f"192.0.2.1:{port}")


def test_lowest_port():
    assert parse_host_port("[::1]:1", lowest=1) == ("::1", 1)
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        parse_host_port("[::1]:0", lowest=1)


@given(st.text(max_size=40) | st.text(alphabet="[]:0123456789abcdef.", max_size=40))
def test_garbage_raises_only_value_error(text):
    try:
        host, port = parse_host_port(text)
    except ValueError:
        return
    assert isinstance(host, str) and (port is None or 0 <= port <= 65_535)


def test_rate_limit_keys_are_ipv4_addresses_and_ipv6_slash_64s():
    assert rate_limit_key("2001:db8:1:2::5") == rate_limit_key("2001:db8:1:2:ffff::9")
    assert rate_limit_key("2001:db8:1:2::5") != rate_limit_key("2001:db8:1:3::5")
    assert rate_limit_key("::ffff:192.0.2.1") == rate_limit_key("192.0.2.1")
    assert rate_limit_key("192.0.2.1") != rate_limit_key("192.0.2.2")
    assert rate_limit_key("fe80::1%eth0") == rate_limit_key("fe80::2")
    assert rate_limit_key("?") == b"?"


@pytest.mark.parametrize("text", ["::1:7872", "2001:db8::1:80", "fe80::1:0"])
def test_an_unbracketed_ipv6_text_that_also_reads_with_a_port_is_refused(text):
    address, _, port = text.rpartition(":")
    with pytest.raises(ValueError, match=re.escape(f"write [{address}]:{port} for an address "
                                                   f"and a port, or [{text}]")):
        refuse_unbracketed_port(text)


@pytest.mark.parametrize("text", ["2001:db8::1", "::1", "2001:db8::", "[::1:7872]",
                                  "[::1]:7872", "192.0.2.1:7872", "2001:db8:0:0:0:0:0:1",
                                  "::1:abcd", "hac.example"])
def test_unambiguous_texts_pass(text):
    refuse_unbracketed_port(text)
