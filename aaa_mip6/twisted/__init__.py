"""The library's Twisted adapters: what moves bytes and keeps timers for the sans-I/O code.

What of ``aaa_mip6`` needs the reactor, a transport, a Deferred, a socket or an OS device
lives here. The library's other I/O rooms are ``aaa_mip6/store/`` (the store drivers) and
``aaa_mip6/program.py`` (exit statuses, signals, the open-file limit); the rest of
``aaa_mip6`` is sans-I/O (``tests/unit/test_layering.py`` checks it; README, "Layout").
"""
