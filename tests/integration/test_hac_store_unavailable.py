"""The HAC answers 503 with retry-after, within ``store.timeout``, when its store is
unavailable (a database failover) or does not answer; the real failover is
test_store_failover.py."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from aaa_mip6.store import StoreUnavailable
from tests.integration.test_hac_server import (  # noqa: F401 (lab, start_hac: fixtures)
    PSK, RawMn, closed, lab, start_hac, tls_connect,
)

pytestmark = pytest.mark.integration


def unavailable(*args, **kwargs):
    raise StoreUnavailable("SA store: allocating an SPI failed: connection lost")


def hanging(*args, **kwargs):
    time.sleep(2.0)
    raise StoreUnavailable("too late")


@pytest.mark.parametrize(("store_call", "timeout"), [(unavailable, 5.0), (hanging, 0.5)])
def test_a_store_unavailable_or_silent_is_503_with_retry_after(start_hac, lab, monkeypatch,
                                                                store_call, timeout):
    hac = start_hac(**{"store.timeout": timeout, "store.retry_after": 7})
    monkeypatch.setattr(hac.server.store, "create", store_call)
    with tls_connect(lab, hac.port) as sock:
        asked = time.monotonic()
        mn = RawMn(sock)
        received = mn.bootstrap()
        answered = time.monotonic() - asked
        received.verify(PSK, mn.cb)  # keyed with the MN's PSK, as its Done was
        error = received.message
        assert (type(error).__name__, error.status) == ("HacError", 503)
        wait = (error.retry_after - datetime.now(timezone.utc)).total_seconds()
        assert 5 <= wait <= 8
        assert answered < timeout + 1.0
        assert closed(sock)
    assert hac.server.bootstraps["503"] == 1
