"""The IANA-assigned numbers this project uses, each named once.

Ports are the defaults a program falls back to when an address has none. Next Header
values are the IP protocol numbers of the packets the MN and the HA tunnel, of the
IPv6 extension headers RFC 6618 PType 8 carries and of the lab's ICMPv6 echoes.
Mobility Header types and statuses are enums in :mod:`aaa_mip6.mobility.messages`.
"""

MIPV6TLS_PORT = 7872  # UDP "mipv6tls": the HA data plane (RFC 6618 §6), the mip6-port default
DIAMETER_TCP_PORT = 3868  # "diameter" (RFC 6733 §2.1)
DIAMETER_TLS_PORT = 5658  # "diameters": Diameter over TLS (RFC 6733 §2.1)
RADIUS_PORT = 1812  # "radius" authentication (RFC 2865 §3)
RADIUS_ACCOUNTING_PORT = 1813  # "radius-acct" (RFC 2866 §3)

NEXT_HEADER_IPV4 = 4  # IPv4 in IP (a tunneled IPv4 packet)
NEXT_HEADER_IPV6 = 41  # IPv6 in IP (a tunneled IPv6 packet)
NEXT_HEADER_ROUTING = 43  # IPv6 Routing header
NEXT_HEADER_ICMPV6 = 58  # ICMPv6 (the lab's echo requests and replies)
NEXT_HEADER_NONE = 59  # IPPROTO_NONE: the Payload Proto every Mobility Header carries
NEXT_HEADER_DESTINATION_OPTIONS = 60  # IPv6 Destination Options header
NEXT_HEADER_MOBILITY = 135  # Mobility Header (RFC 6275 §6.1)
