"""etc/wireshark/mip6.lua decodes the Local Key Exchange messages (docs/lke.md): a capture
written from the project's own encoders (raw IPv6, no network needed), read by tshark."""

from __future__ import annotations

import shutil
import struct
import subprocess
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from aaa_mip6.iana import NEXT_HEADER_ICMPV6, NEXT_HEADER_MOBILITY
from aaa_mip6.lke import crypto
from aaa_mip6.lke.messages import (
    Finished,
    KeyExchangeAck,
    KeyExchangeRequest,
    LkeBindingAck,
    LkeBindingUpdate,
)
from aaa_mip6.lke.nd import (
    ALL_NODES,
    UNSPECIFIED,
    DadAuthentication,
    LinkLayerAddress,
    LkeCapability,
    NeighborAdvertisement,
    NeighborSolicitation,
    PrefixInformation,
    RouterAdvertisement,
    solicited_node,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

DISSECTOR = Path(__file__).resolve().parents[2] / "etc" / "wireshark" / "mip6.lua"
LINKTYPE_RAW = 101  # the packet is the IP header on: pcap's LINKTYPE_RAW
RUN_LIMIT = 60  # seconds for one tshark run
KBM = bytes(range(16))
AR_LL, MN_LL = IPv6Address("fe80::1"), IPv6Address("fe80::5")
AR, COA, NEW = (IPv6Address(a) for a in ("2001:db8:1::1", "2001:db8:1::5", "2001:db8:2::5"))
FIELDS = ["mip6lke.message", "mip6lke.seq", "mip6lke.status", "mip6lke.lifetime",
          "mip6lke.requested_lifetime", "mip6lke.care_of", "mip6lke.ar_address",
          "mip6lke.finished_nonce", "mip6lke.nonce", "mip6lke.max_lifetime", "mip6lke.dad",
          "mip6.mhtype", "mip6.bu.seqnr"]


def _ipv6(source, destination, next_header, payload, hop_limit=255):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit,
                       source.packed, destination.packed) + payload


def _packets():
    key = crypto.generate_key(2048)
    wrapped = crypto.wrap_kbm(key.public_key(), KBM, COA)
    group = solicited_node(COA)
    yield _ipv6(AR_LL, ALL_NODES, NEXT_HEADER_ICMPV6, RouterAdvertisement(1800, options=(
        PrefixInformation(IPv6Network("2001:db8:1::/64")),
        LkeCapability(1800, crypto.encode_public_key(key)))).encode(AR_LL, ALL_NODES))
    yield _ipv6(MN_LL, AR_LL, NEXT_HEADER_MOBILITY,
                KeyExchangeRequest(4321, COA, 450, wrapped).encode(MN_LL, AR_LL))
    yield _ipv6(AR_LL, MN_LL, NEXT_HEADER_MOBILITY,
                KeyExchangeAck(0, 4321, 450, COA, AR).encode(AR_LL, MN_LL, KBM))
    yield _ipv6(UNSPECIFIED, group, NEXT_HEADER_ICMPV6, NeighborSolicitation(
        COA, (DadAuthentication(0xCAFE, AR),)).encode(UNSPECIFIED, group, kbm=KBM))
    yield _ipv6(COA, ALL_NODES, NEXT_HEADER_ICMPV6, NeighborAdvertisement(COA, options=(
        LinkLayerAddress(2, bytes(6)), DadAuthentication(0xCAFE, AR))).encode(
        COA, ALL_NODES, kbm=KBM))
    yield _ipv6(NEW, AR, NEXT_HEADER_MOBILITY,
                LkeBindingUpdate(77, 150, COA).encode(NEW, AR, KBM), hop_limit=64)
    yield _ipv6(AR, NEW, NEXT_HEADER_MOBILITY,
                LkeBindingAck(0, 77, 150, COA, 0xBEEF).encode(AR, NEW, KBM), hop_limit=64)
    yield _ipv6(NEW, AR, NEXT_HEADER_MOBILITY,
                Finished(0, 77, 150, 0xBEEF, COA).encode(NEW, AR, KBM), hop_limit=64)


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lke") / "lke.pcap"
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for number, packet in enumerate(_packets()):
            out.write(struct.pack("<IIII", 1_700_000_000 + number, 0, len(packet), len(packet)))
            out.write(packet)
    return path


def _rows(capture: Path) -> list[dict[str, str]]:
    shown = subprocess.run(
        ["tshark", "-r", str(capture), "-X", f"lua_script:{DISSECTOR}", "-T", "fields",
         "-E", "separator=|", *[option for field in FIELDS for option in ("-e", field)]],
        capture_output=True, text=True, timeout=RUN_LIMIT, check=True)
    assert "Lua" not in shown.stderr and "rror" not in shown.stderr, shown.stderr
    return [dict(zip(FIELDS, line.split("|"))) for line in shown.stdout.splitlines()]


def test_every_lke_message_is_decoded(capture):
    ra, request, ack, solicitation, advertisement, update, binding_ack, finished = _rows(capture)
    assert (ra["mip6lke.message"], ra["mip6lke.max_lifetime"]) == ("LKE Capability", "1800")
    assert request["mip6lke.message"] == "Key Exchange Request"
    assert (request["mip6lke.seq"], request["mip6lke.requested_lifetime"],
            request["mip6lke.care_of"]) == ("4321", "450", str(COA))
    assert (ack["mip6lke.message"], ack["mip6lke.status"], ack["mip6lke.lifetime"],
            ack["mip6lke.ar_address"], ack["mip6lke.care_of"]) == (
        "Key Exchange Acknowledgement", "0", "450", str(AR), str(COA))
    assert (solicitation["mip6lke.dad"], solicitation["mip6lke.nonce"],
            solicitation["mip6lke.ar_address"]) == (
        "DAD Authentication Request", "0x0000cafe", str(AR))
    assert advertisement["mip6lke.dad"] == "DAD Authentication Reply"
    assert (update["mip6.mhtype"], update["mip6.bu.seqnr"], update["mip6lke.care_of"]) == (
        "5", "77", str(COA))
    assert (binding_ack["mip6lke.care_of"], binding_ack["mip6lke.finished_nonce"]) == (
        str(COA), "0x0000beef")
    assert (finished["mip6lke.message"], finished["mip6lke.nonce"],
            finished["mip6lke.seq"]) == ("Finished", "0x0000beef", "77")


def test_the_draft_code_points_are_a_preference(capture):
    shown = subprocess.run(
        ["tshark", "-r", str(capture), "-X", f"lua_script:{DISSECTOR}",
         "-o", "mip6lke.ke_request:8", "-Y", "mip6lke.message", "-T", "fields",
         "-e", "mip6lke.message"],
        capture_output=True, text=True, timeout=RUN_LIMIT, check=True)
    assert "Key Exchange Request" not in shown.stdout
    assert "Key Exchange Acknowledgement" in shown.stdout
