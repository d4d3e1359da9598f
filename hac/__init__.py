"""Home Agent Controller: the TLS listener that authenticates MNs and provisions SAs."""
