"""aaa_mip6.suites, rule by rule (RFC 6618 §5.6.2): each test states one rule of the
ciphersuites and kills the mutants of ``make mutation`` (docs/mutation.md) that would
break it. The algorithms themselves are pinned by the RFC vectors in test_suites.py.

Equivalent mutants (survive by design, nothing observable changes):

- ``AesXcbcMac96.keyed``: ``int.from_bytes(x)`` / ``n.to_bytes(block)`` without
  ``"big"`` (eight mutants). Since Python 3.11 the byte order defaults to big-endian,
  so the call is the same one.
- ``CbcCipher.__init__`` (five mutants: an attribute set to None). It runs only at
  import, building the module's AES_128_CBC and TRIPLE_DES_CBC; mutmut's workers fork
  from a process that imported the module before the mutant is switched on, so no test
  can run it. A None there would break every CBC test (test_suites: RFC 3602 vectors).
"""

from __future__ import annotations

import pytest

from aaa_mip6.errors import ConfigError
from aaa_mip6.suites import SUITES


@pytest.mark.parametrize("which", ["integrity", "encryption"])
def test_a_wrong_key_size_is_refused_naming_the_suite_the_key_and_the_sizes(which):
    """The operator learns which key of which suite is wrong, never its octets."""
    suite = SUITES["AES_128_CBC_SHA"]
    ikey, ekey = b"\x5a" * 20, b"\xa5" * 16
    if which == "integrity":
        ikey = ikey[:-1]
        expected = "AES_128_CBC_SHA needs a 20-octet integrity key, got 19"
    else:
        ekey += b"\xa5"
        expected = "AES_128_CBC_SHA needs a 16-octet encryption key, got 17"
    with pytest.raises(ConfigError) as caught:
        suite.keyed(ikey, ekey)
    assert str(caught.value) == expected
