"""Diameter (RFC 6733): a sans-I/O codec, peer state machine and router; the applications'
messages (EAP, SA delivery). The Twisted shell is :mod:`aaa_mip6.twisted.diameter_node`."""
