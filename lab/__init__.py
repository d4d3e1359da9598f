"""``mip6-lab``: a HAC, a home agent and mobile nodes on this machine, end to end.

:mod:`lab.cli` is the command line; :mod:`lab.loopback` runs everything in one process on
loopback, :mod:`lab.netns` in network namespaces with the real programs (root);
:mod:`lab.common` is what both runs share. :mod:`lab.servers` starts real servers (a
``mip6-hac`` process, ``mip6-auc``, FreeRADIUS, hostapd, freeDiameterd) for the
integration tests and bench/, with free ports and child processes from
:mod:`lab.processes` and private reactors from :mod:`lab.reactors`.
"""
