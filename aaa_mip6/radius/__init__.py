"""The HAC's RADIUS client: a sans-I/O packet codec and a Twisted UDP transport."""
