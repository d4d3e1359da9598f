"""``mip6-lab``: a HAC, a home agent and mobile nodes on this machine, end to end."""
