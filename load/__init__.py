"""``mip6-load``: simulated MNs against real HACs and HAs (see :mod:`load.cli`)."""
