"""``mip6-aaa-gw``: a Diameter EAP server (RFC 4072) that relays each conversation to a
RADIUS server, for a HAC or a Diameter relay in front of a RADIUS-only AAA.

:mod:`gateway.relay` turns Diameter-EAP-Requests into Access-Requests and the answers
back; :mod:`gateway.cli` is the program's settings, command line and start-up.
"""
