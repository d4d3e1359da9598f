"""Hypothesis strategies for RFC 6618 TV-header values, shared by the message tests.

``HEADER_VALUES`` maps every header name to a strategy for the values its ABNF allows.
"""

import ipaddress
from datetime import datetime, timezone

from hypothesis import strategies as st

from aaa_mip6 import tvheaders as tv

_NAI_CHAR = st.sampled_from("!#$%&'*+-=?^_`{|}~0123456789abcXYZ") | st.characters(
    min_codepoint=0xA1, max_codepoint=0x2FF
)
_NAI_STRING = st.lists(_NAI_CHAR | st.just("\\@"), min_size=1, max_size=6).map("".join)
_USERNAME = st.lists(_NAI_STRING, min_size=1, max_size=3).map(".".join)
_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?\Z")
_REALM = st.lists(_LABEL, min_size=2, max_size=3).map(".".join)
nais = st.one_of(
    _USERNAME,
    _REALM.map(lambda realm: "@" + realm),
    st.tuples(_USERNAME, _REALM).map("@".join),
)
rands = st.binary(min_size=32, max_size=32)
hex_values = st.binary(min_size=1, max_size=64)
dates = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(timezone.utc),
).map(lambda value: value.replace(microsecond=0))
suites = st.sampled_from(sorted(tv.CIPHERSUITES))
ip6 = st.ip_addresses(v=6)
ip4 = st.ip_addresses(v=4)
ip6_prefixes = st.builds(
    lambda address, length: ipaddress.IPv6Network((address, length), strict=False),
    ip6, st.integers(0, 99),
)
ip4_prefixes = st.builds(
    lambda address, length: ipaddress.IPv4Network((address, length), strict=False),
    ip4, st.integers(0, 32),
)

HEADER_VALUES = {
    tv.MN_ID: nais,
    tv.AUTH_METHOD: st.permutations(list(tv.AuthMethod)).flatmap(
        lambda methods: st.integers(1, len(methods)).map(lambda n: tuple(methods[:n]))
    ),
    tv.EAP_PAYLOAD: hex_values,
    tv.STATUS_CODE: st.sampled_from(sorted(tv.STATUS_CODES)),
    tv.AUTH: hex_values,
    tv.RETRY_AFTER: dates,
    tv.MN_RAND: rands,
    tv.HAC_RAND: rands,
    tv.SPI: st.integers(1, 268_435_455),
    tv.MN_TO_HA_IKEY: hex_values,
    tv.HA_TO_MN_IKEY: hex_values,
    tv.MN_TO_HA_EKEY: hex_values,
    tv.HA_TO_MN_EKEY: hex_values,
    tv.SA_VALIDITY_END: dates,
    tv.SAS: st.sampled_from([0, 1]),
    tv.CIPHERSUITE: suites,
    tv.SUITELIST: st.lists(suites, min_size=1, unique=True).map(tuple),
    tv.HAA_IP6: ip6,
    tv.HAA_IP4: ip4,
    tv.PORT: st.integers(1, 65535),
    tv.IP6_HOA: ip6,
    tv.IP4_HOA: ip4,
    tv.IP6_HNP: ip6_prefixes,
    tv.IP4_HNP: ip4_prefixes,
    tv.DNS_IP6: ip6,
    tv.DNS_IP4: ip4,
}
