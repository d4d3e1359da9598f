"""aaa-mip6: the TLS-based Mobile IPv6 security framework of RFC 6618.

The modules of this package are sans-I/O: they take bytes and events and return
bytes and events. Sockets and the reactor live only in the ``hac``, ``ha`` and
``mn`` shells.
"""

__version__ = "0.1.0"
