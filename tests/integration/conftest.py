"""Fixtures every integration test may use.

A session fixture defined (or imported) here exists once for the whole run; imported
into several test modules instead, it would start one server per module.
"""

import dataclasses
from collections.abc import Iterator

import pytest

from lab.servers import auc
from lab.servers import freeradius as freeradius_support
from lab.servers import hostapd as hostapd_support
from tests.integration.postgres import postgres_server, postgres_url  # noqa: F401


@pytest.fixture(scope="session")
def freeradius(tmp_path_factory) -> Iterator[freeradius_support.FreeRadius]:
    """A FreeRADIUS 3.2 on 127.0.0.1, shared by the session; skips if not installed."""
    if freeradius_support.binary() is None:
        pytest.skip("freeradius is not installed (Debian package freeradius)")
    with freeradius_support.running_freeradius(tmp_path_factory.mktemp("freeradius")) as server:
        yield server


@pytest.fixture(scope="session")
def hostapd(tmp_path_factory) -> Iterator[hostapd_support.Hostapd]:
    """hostapd's RADIUS server on a free port, shared by the session; skips if not installed.
    Its EAP-SIM/AKA/AKA' servers ask a ``mip6-auc`` for vectors; ``usim`` is the subscriber's."""
    if hostapd_support.binary() is None:
        pytest.skip("hostapd is not installed (Debian package hostapd)")
    directory = tmp_path_factory.mktemp("hostapd")
    with auc.running_auc(directory) as (socket_path, _, _), hostapd_support.running_hostapd(
            directory, extra=hostapd_support.sim_aka_config(socket_path)) as server:
        yield dataclasses.replace(server, usim=auc.usim_file(directory / "mn.usim"))
