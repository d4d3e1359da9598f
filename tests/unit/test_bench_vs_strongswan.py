"""bench/vs_strongswan.py's pure parts: the charon configuration it writes, the one line
naming what is missing, the medians it reports."""

from __future__ import annotations

from types import SimpleNamespace

from bench import _strongswan, vs_strongswan


def test_each_charon_gets_its_own_ports_socket_and_log(tmp_path):
    conf = vs_strongswan.strongswan_conf(tmp_path, 40500, 40501)
    assert "port = 40500\n" in conf and "port_nat_t = 40501\n" in conf
    assert f"socket = unix://{tmp_path / 'vici.sock'}" in conf
    assert f"path = {tmp_path / 'charon.log'}" in conf
    assert "cookie_threshold_ip = 100000" in conf  # every initiator is 127.0.0.1
    assert "eap-radius {" not in conf


def test_the_responder_asks_the_given_radius_server(tmp_path):
    radius = SimpleNamespace(host="127.0.0.1", port=41812, secret=b"s3cret")
    conf = vs_strongswan.strongswan_conf(tmp_path, 40500, 40501, radius)
    assert "auth_port = 41812" in conf and "secret = s3cret" in conf
    assert conf.count("{") == conf.count("}")


def test_missing_packages_are_named_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(_strongswan, "CHARON", tmp_path / "no-charon")
    monkeypatch.setattr(_strongswan, "PLUGINS", tmp_path / "no-plugins")
    problem = vs_strongswan.missing()
    assert "\n" not in problem
    assert "strongswan-charon" in problem and "libcharon-extra-plugins" in problem


def test_medians_skip_rounds_without_a_figure():
    assert vs_strongswan._median([1.0, None, 3.0, 2.0]) == 2.0
    assert vs_strongswan._median([None]) is None


def test_every_target_names_runners_of_its_figure():
    for figure, charon, _, _ in vs_strongswan.TARGETS:
        assert charon in vs_strongswan.FIGURES[figure][1]
        assert any(runner.startswith("hac") for runner in vs_strongswan.FIGURES[figure][1])
