"""mip6-ar's shell parts that need no privileges: the forwarder's decisions, the LBSA file,
the settings and sample config, the router shell around a stand-in core, and the
raw-socket helpers' framing."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import struct
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from aaa_mip6.errors import ConfigError
from aaa_mip6.lke.lbsa import Lbsa
from aaa_mip6.twisted import rawip
from ar import cli
from ar.config import SCHEMA
from ar.forwarder import Forwarder, inner_addresses
from ar.store import LbsaFile

PREVIOUS = IPv6Address("2001:db8:a1::100")
CURRENT = IPv6Address("2001:db8:a2::100")
AR = IPv6Address("2001:db8:a1::1")
CN = IPv6Address("2001:db8:c::2")


def packet(source: IPv6Address, destination: IPv6Address, payload: bytes = b"x" * 8) -> bytes:
    return rawip.ipv6_packet(source, destination, 17, payload, hop_limit=64)


class FakeDevice:
    def __init__(self):
        self.routes: list[IPv6Address] = []
        self.written: list[bytes] = []

    def route(self, previous):
        self.routes.append(previous)

    def unroute(self, previous):
        self.routes.remove(previous)

    def write(self, data):
        self.written.append(data)
        return True


@pytest.fixture
def forwarder(monkeypatch):
    sent = []
    monkeypatch.setattr(rawip, "send", lambda sock, data, destination, source=None, interface=0:
                        sent.append((data, destination, source)) or True)
    result = Forwarder(FakeDevice(), None, AR)
    result.sent = sent
    return result


def test_a_bound_previous_address_is_tunneled_to_the_new_one(forwarder):
    forwarder.bind(PREVIOUS, CURRENT, expires_at=100.0)
    inner = packet(CN, PREVIOUS)
    forwarder.from_device(inner)
    assert forwarder.sent == [(inner, CURRENT, AR)]
    assert forwarder.device.routes == [PREVIOUS]
    assert forwarder.counters == {"forwarded": 1}


def test_a_packet_for_an_unbound_address_is_counted_not_sent(forwarder):
    forwarder.from_device(packet(CN, PREVIOUS))
    forwarder.from_device(b"\x45" + bytes(39))  # IPv4, or garbage
    forwarder.from_device(packet(IPv6Address("::"), IPv6Address("ff02::16")))  # MLD
    assert forwarder.sent == []
    assert forwarder.counters == {"no-binding": 2}


def test_reverse_tunneled_packets_go_on_only_from_the_bound_pair(forwarder):
    forwarder.bind(PREVIOUS, CURRENT, expires_at=100.0)
    good = packet(PREVIOUS, CN)
    forwarder.from_tunnel(rawip.Received(good, CURRENT, AR, 64, 2))
    forwarder.from_tunnel(rawip.Received(good, IPv6Address("2001:db8:a2::66"), AR, 64, 2))
    forwarder.from_tunnel(rawip.Received(packet(IPv6Address("2001:db8:a1::66"), CN), CURRENT,
                                         AR, 64, 2))
    forwarder.from_tunnel(rawip.Received(b"\x60", CURRENT, AR, 64, 2))
    assert forwarder.device.written == [good]
    assert forwarder.counters == {"reverse-forwarded": 1, "reverse-unbound": 2,
                                  "reverse-malformed": 1}


def test_bindings_end_at_their_lifetime_and_the_route_goes(forwarder):
    forwarder.bind(PREVIOUS, CURRENT, expires_at=10.0)
    assert forwarder.expire(9.9) == []
    assert forwarder.expire(10.0) == [PREVIOUS]
    assert forwarder.device.routes == []
    forwarder.from_device(packet(CN, PREVIOUS))
    assert forwarder.sent == []


def test_a_new_binding_for_the_same_address_replaces_the_old_one(forwarder):
    forwarder.bind(PREVIOUS, CURRENT, expires_at=10.0)
    newer = IPv6Address("2001:db8:a3::100")
    forwarder.bind(PREVIOUS, newer, expires_at=20.0)
    forwarder.from_device(packet(CN, PREVIOUS))
    assert forwarder.sent[0][1] == newer
    assert forwarder.device.routes == [PREVIOUS]


def test_inner_addresses_reads_an_ipv6_header_only():
    assert inner_addresses(packet(CN, PREVIOUS)) == (CN, PREVIOUS)
    assert inner_addresses(b"\x60" * 39) is None
    assert inner_addresses(b"\x45" + bytes(59)) is None


def lbsa(care_of: IPv6Address, expires: float = 1e10) -> Lbsa:
    return Lbsa(care_of, AR, IPv6Address("fe80::1"), IPv6Address("fe80::2"), os.urandom(16),
                expires, 7)


def test_the_lbsa_file_is_0600_and_survives_a_restart(tmp_path):
    path = tmp_path / "lbsas"
    store = LbsaFile(path)
    assert store.load() == []
    first, second = lbsa(PREVIOUS), lbsa(IPv6Address("2001:db8:a1::200"))
    store.put(first)
    store.put(second)
    store.remove(second.care_of)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LbsaFile(path).load() == [first]


def test_a_bad_record_is_skipped_and_the_rest_kept(tmp_path):
    path = tmp_path / "lbsas"
    path.write_bytes(b"not json\n" + lbsa(PREVIOUS).encode() + b"\n\n")
    assert [record.care_of for record in LbsaFile(path).load()] == [PREVIOUS]


def test_a_state_file_in_a_missing_directory_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"ar\.state \(--state\).*does not exist"):
        LbsaFile(tmp_path / "nowhere" / "lbsas").load()


def test_settings_name_the_flag_of_a_bad_value(tmp_path):
    required = {"ar.interface": "eth1", "ar.address": str(AR), "ar.key": "k", "ar.state": "s"}
    config = SCHEMA.load(None, required)
    assert config.max_lifetime == 7200 and config.tun == "mip6ar0" and config.prefix is None
    for key, value, flag in (("ar.address", "fe80::1", "--address"),
                             ("ar.prefix", "2001:db8::/48", "--prefix"),
                             ("ar.code_points", "rfc", "--code-points"),
                             ("ar.interface", "a" * 16, "--interface")):
        with pytest.raises(ConfigError, match=f"{key} \\({flag}\\)"):
            SCHEMA.load(None, {**required, key: value})
    with pytest.raises(ConfigError, match=r"ar\.key \(--key\) is required"):
        SCHEMA.load(None, {k: v for k, v in required.items() if k != "ar.key"})


def test_a_missing_key_file_says_how_to_create_one(tmp_path):
    config = SCHEMA.load(None, {"ar.interface": "eth1", "ar.address": str(AR),
                                "ar.key": str(tmp_path / "ar.key"), "ar.state": "s"})
    with pytest.raises(ConfigError, match="--generate-key creates it"):
        cli.load_key(config)


def test_generate_key_writes_a_0600_key_once(tmp_path):
    path = tmp_path / "ar.key"
    config = SCHEMA.load(None, {"ar.interface": "eth1", "ar.address": str(AR),
                                "ar.key": str(path), "ar.state": "s",
                                "ar.generate_key": True})
    key = cli.load_key(config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli.load_key(config).private_numbers() == key.private_numbers()


def test_ipv6_packet_header():
    data = rawip.ipv6_packet(IPv6Address("::"), IPv6Address("ff02::1"), 58, b"abcd")
    assert struct.unpack("!IHBB", data[:8]) == (6 << 28, 4, 58, 255)
    assert data[8:24] == bytes(16) and data[40:] == b"abcd"


def test_icmp_filter_passes_only_the_named_types():
    words = struct.unpack("8I", rawip.icmp_filter((133, 135, 136)))
    passed = {kind for kind in range(256) if not words[kind >> 5] & (1 << (kind & 31))}
    assert passed == {133, 135, 136}


def test_without_cap_net_raw_the_error_names_it(monkeypatch):
    def refused(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(socket, "socket", refused)
    for opener in (lambda: rawip.open_raw(socket.IPPROTO_ICMPV6), rawip.open_sender):
        with pytest.raises(rawip.PrivilegeError, match="CAP_NET_RAW"):
            opener()


def test_forwarding_off_is_noticed(tmp_path):
    flag = tmp_path / "forwarding"
    flag.write_text("0\n")
    assert not cli.ipv6_forwarding(flag)
    flag.write_text("1\n")
    assert cli.ipv6_forwarding(flag)
    assert cli.ipv6_forwarding(tmp_path / "missing")


class RecordingCore:
    """An ArCore stand-in: hands out prepared answers and counts what it was asked."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.lbsas: list[Lbsa] = []
        self.counters: dict[str, int] = {}
        self.asked = 0

    def mobility_received(self, data, source, destination, hop_limit, now):
        self.asked += 1
        return self.answers.pop(0)

    def timer(self):
        return None


@pytest.fixture
def router(tmp_path, monkeypatch, forwarder):
    from twisted.internet.task import Clock

    from ar.server import AccessRouter

    joined = []
    monkeypatch.setattr(rawip, "join_group", lambda sock, group, index: joined.append(group))
    monkeypatch.setattr(rawip, "leave_group", lambda sock, group, index: joined.remove(group))
    result = AccessRouter(Clock(), RecordingCore([]), interface="br1", interface_index=3,
                          ra_interval=1.0, store=LbsaFile(tmp_path / "lbsas"),
                          forwarder=forwarder, status_path=tmp_path / "status.json",
                          sockets={"icmp": None, "sender": None})
    result.joined = joined
    return result


def test_the_routers_actions_reach_the_store_the_groups_and_the_tunnel(router, tmp_path):
    from aaa_mip6.lke import actions as lke

    kept = lbsa(PREVIOUS)
    router.core.answers = [[lke.StoreLbsa(kept), lke.BindPrevious(PREVIOUS, CURRENT, 50.0)],
                           [lke.UnbindPrevious(PREVIOUS, "deregistered"),
                            lke.ForgetLbsa(PREVIOUS, "expired")]]
    router.core.counters = {"bound": 1}
    bu = rawip.Received(b"bu", CURRENT, AR, 64, 2)
    router._mobility(bu)
    assert LbsaFile(tmp_path / "lbsas").load() == [kept]
    assert router.joined == [IPv6Address("ff02::1:ff00:100")]
    assert router.forwarder.by_previous[PREVIOUS].current == CURRENT
    assert not (tmp_path / "status.json").exists()  # written a moment later, once
    router.reactor.advance(0.1)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["bindings"] == {str(PREVIOUS): str(CURRENT)}
    assert status["counters"] == {"bound": 1}
    router._mobility(bu)
    assert router.forwarder.by_previous == {} and router.joined == []
    assert LbsaFile(tmp_path / "lbsas").load() == []


def test_drops_are_logged_once_per_reason_per_interval(router, caplog):
    from aaa_mip6.lke import actions as lke

    router.core.answers = [[lke.Drop("bu-replay")] for _ in range(3)]
    bu = rawip.Received(b"bu", CURRENT, AR, 64, 2)
    with caplog.at_level(logging.INFO, logger="mip6.ar"):
        router._mobility(bu)
        router._mobility(bu)
        router.reactor.advance(11)
        router._mobility(bu)
    lines = [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]
    assert lines == ["dropped: bu-replay", "dropped: bu-replay (1 more since the last line)"]


def test_the_sample_config_sets_every_key():
    sample = Path(__file__).resolve().parents[2] / "etc" / "mip6-ar.toml"
    assert set(SCHEMA.read_toml(sample)) == set(SCHEMA.settings)
    config = SCHEMA.load(sample)
    assert config.interface == "eth1" and config.prefix.prefixlen == 64
