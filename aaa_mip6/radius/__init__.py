"""RADIUS for the HAC: a sans-I/O packet codec and server policy; the Twisted UDP client
is :mod:`aaa_mip6.twisted.radius_client`."""
