"""aaa-mip6: the TLS-based Mobile IPv6 security framework of RFC 6618.

The modules of this package are sans-I/O: they take bytes and events and return
bytes and actions. Its I/O rooms are the exceptions: :mod:`aaa_mip6.twisted` (the
Twisted adapters), :mod:`aaa_mip6.store` (the store drivers) and
:mod:`aaa_mip6.program` (the programs' edges); ``tests/unit/test_layering.py`` checks it.
"""

__version__ = "0.1.0"
