"""aaa_mip6.suites, rule by rule (RFC 6618 §5.6.2): each test states one rule of the
ciphersuites and kills the mutants of ``make mutation`` (docs/mutation.md) that would
break it. The algorithms themselves are pinned by the RFC vectors in test_suites.py.

Equivalent mutants (survive by design, nothing observable changes):

- ``AesXcbcMac96.keyed``: ``int.from_bytes(x)`` / ``n.to_bytes(block)`` without
  ``"big"`` (eight mutants). Since Python 3.11 the byte order defaults to big-endian,
  so the call is the same one.

``CbcCipher.__init__`` runs only at import (the module's AES_128_CBC and TRIPLE_DES_CBC);
mutmut's workers fork from a process that imported the module before a mutant is
switched on, so the suite test below also runs against a freshly executed copy.
"""

from __future__ import annotations

import runpy
import warnings

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


def fresh_suites():
    """SUITES of a copy of the module executed now (its import-time objects rebuilt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": on purpose
        return runpy.run_module("aaa_mip6.suites")["SUITES"]


# RFC 6618 §5.6.2 and RFC 3602: (key, block = IV, name) of each confidentiality algorithm.
CBC = {"AES_128_CBC_SHA": (16, 16, "AES-128-CBC"), "AES_128_CBC_SHA256": (16, 16, "AES-128-CBC"),
       "3DES_EDE_CBC_SHA": (24, 8, "3DES-CBC"), "NULL_SHA": (0, 4, "NULL"),
       "NULL_SHA256": (0, 4, "NULL")}


@pytest.mark.parametrize("name", sorted(CBC))
def test_each_suite_has_the_key_block_and_iv_sizes_of_its_cipher(name):
    key_length, block_size, cipher = CBC[name]
    for suites in (SUITES, fresh_suites()):
        suite = suites[name]
        assert (suite.ekey_length, suite.block_size, suite.confidentiality.name) == (
            key_length, block_size, cipher)
        assert suite.iv_length == (block_size if key_length else 0)
        ikey, ekey = b"\x11" * suite.ikey_length, b"\x22" * key_length
        _, fresh_cipher = suite.keyed(ikey, ekey)
        _, cipher_now = SUITES[name].keyed(ikey, ekey)
        iv, data = b"\x33" * suite.iv_length, b"\x44" * 16
        assert fresh_cipher.encrypt(iv, data) == cipher_now.encrypt(iv, data)
