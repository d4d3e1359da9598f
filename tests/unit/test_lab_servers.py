"""lab.servers: a server this machine lacks is one named error, which a test turns into a skip."""

import pytest

from lab.servers import ServerMissing, freediameter
from tests.conftest import _skip_when_a_server_is_missing


def test_run_relay_without_freediameterd_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(freediameter.shutil, "which", lambda name: None)
    with pytest.raises(ServerMissing, match=r"freeDiameterd .*\(Debian package freediameter\)"):
        with freediameter.run_relay(tmp_path, []):
            pass
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing started


def test_a_missing_server_skips_the_test_that_needs_it():
    hook = _skip_when_a_server_is_missing()
    next(hook)
    with pytest.raises(pytest.skip.Exception, match="Debian package freediameter"):
        hook.throw(ServerMissing("freeDiameterd is not installed (Debian package freediameter)"))


def test_other_errors_still_fail_the_test():
    hook = _skip_when_a_server_is_missing()
    next(hook)
    with pytest.raises(RuntimeError, match="did not start"):
        hook.throw(RuntimeError("mip6-hac did not start"))
