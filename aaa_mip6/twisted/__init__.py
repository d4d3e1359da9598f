"""The library's Twisted adapters: what moves bytes and keeps timers for the sans-I/O code.

Everything of ``aaa_mip6`` that needs the reactor, a transport, a Deferred or the
operating system's devices lives here; the rest of ``aaa_mip6`` is sans-I/O
(``tests/unit/test_layering.py`` checks it, docs/architecture.md explains the layers).
"""
