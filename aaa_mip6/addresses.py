"""Addresses as the programs read and write them: ``host:port`` text, and whose share of a
per-source limit an address takes (the kernel's source address towards a remote one is
:func:`aaa_mip6.twisted.routes.source_address_towards`).

Every program reads ``v4:port``, ``[v6]:port`` (and some a bare address or a host name)
by the same bracket rules, so an address written for one is read alike by the others.
Each caller keeps its own policy on top: a default port, an IP address or also a name,
and its own error naming the flag or key.
"""

from __future__ import annotations

import ipaddress

MAX_PORT = 65_535


def as_ipv6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """An IPv6 address as is; an IPv4 address in its IPv4-mapped IPv6 form (RFC 4291 §2.5.5.2)."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + address.packed)
    return address


def split_host_port(text: str) -> tuple[str, str | None]:
    """``[v6]:port``, ``[v6]``, ``host:port``, ``host`` or a bare IPv6 address ->
    (host without brackets, port text or None when there is none).

    A text with several colons and no brackets is a bare IPv6 address, never an address
    and a port: ``2001:db8::1:80`` is ambiguous, so its port must be bracketed off (a
    caller that puts a default port on a bare address calls
    :func:`refuse_unbracketed_port` first).
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 address with a port is written [address]:port")
        return host, rest[1:] if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def parse_host_port(text: str, lowest: int = 0) -> tuple[str, int | None]:
    """:func:`split_host_port` with the port as a number in ``lowest``..65535; the caller
    decides whether the host must be an IP address and what a missing port means."""
    host, port = split_host_port(text)
    if port is None:
        return host, None
    # ASCII digits only: int() also takes "+1", " 1", "1_0" and other scripts' digits.
    if not (port.isascii() and port.isdigit() and len(port) <= 5
            and lowest <= int(port) <= MAX_PORT):
        raise ValueError(f"the port must be {lowest}..{MAX_PORT}")
    return host, int(port)


def refuse_unbracketed_port(text: str) -> None:
    """ValueError for an unbracketed IPv6 text that also reads as an address and a port.

    :func:`split_host_port` reads ``::1:7872`` as the bare address ``::1:7872``
    (0:0:0:0:0:0:1:7872), but its writer surely meant ``[::1]:7872``. A caller that takes
    bare IPv6 addresses calls this first, so that such a text must be bracketed either way.
    """
    if text.startswith("[") or text.count(":") < 2:
        return
    address, _, port = text.rpartition(":")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= MAX_PORT):
        return
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return
    raise ValueError(f"{text} is ambiguous: write [{address}]:{port} for an address and a "
                     f"port, or [{text}] for the address alone")


def format_host_port(host: object, port: int) -> str:
    """``v4:port``, ``name:port`` or ``[v6]:port``: what :func:`split_host_port` reads back.

    ``host`` is text or an :mod:`ipaddress` address.
    """
    host = str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def rate_limit_key(host: str) -> bytes:
    """Whose share of a per-source limit a datagram or connection from ``host`` takes:
    its IPv4 address (also when IPv4-mapped), or its IPv6 /64 — one subscriber's
    prefix, whose addresses cost an attacker nothing — or the text itself if it is no
    address."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host.encode()
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped.packed
        return address.packed[:8]
    return address.packed
