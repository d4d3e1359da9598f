"""``mip6-lab lke``'s verdict and its refusal to run where it cannot (no namespaces here)."""

from __future__ import annotations

import os
from ipaddress import IPv6Network

from lab import cli, lke


def verdict(**changes) -> dict:
    passing = {"forwarded_after_move": 390, "lost_without_lke": 480, "home_registered": True,
               "refused": {"forged_ke_request": 1, "impostor_dad": 2, "replayed_bu": 1}}
    return {**passing, **changes}


def test_the_verdict_passes_only_with_forwarding_loss_registration_and_every_refusal():
    assert lke.lke_passed(verdict())
    assert not lke.lke_passed(verdict(forwarded_after_move=0))
    assert not lke.lke_passed(verdict(lost_without_lke=0))
    assert not lke.lke_passed(verdict(home_registered=False))
    assert not lke.lke_passed(verdict(refused={"forged_ke_request": 1, "impostor_dad": 2}))
    assert not lke.lke_passed(verdict(refused={"forged_ke_request": 1, "impostor_dad": 0,
                                               "replayed_bu": 1}))
    assert not lke.lke_passed({})


def test_without_root_it_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["lke", "--netns"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mip6-lab: lke --netns needs root (network namespaces, raw sockets, TUN "
                   "devices)"]


def test_link_addresses_are_documentation_addresses():
    for link in (1, 2):
        assert lke.address(link, lke.MN_HOST) in IPv6Network("2001:db8::/32")
    assert lke.address(1, lke.MN_HOST) != lke.address(2, lke.MN_HOST)
