"""Diameter (RFC 6733): a sans-I/O codec and peer state machine, a router, and a Twisted shell."""
