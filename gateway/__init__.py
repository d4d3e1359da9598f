"""``mip6-aaa-gw``: a Diameter EAP server (RFC 4072) that relays each conversation to a
RADIUS server, for a HAC or a Diameter relay in front of a RADIUS-only AAA."""
