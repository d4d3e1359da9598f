"""Servers the lab, the integration tests and the benchmarks start on this machine: a
``mip6-hac`` process, ``mip6-auc``, FreeRADIUS, hostapd and freeDiameterd."""


class ServerMissing(RuntimeError):
    """A server program is not installed here; the message names its Debian package."""
