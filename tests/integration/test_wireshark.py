"""etc/wireshark/mip6.lua on captures of a real HAC + HA + MN run on loopback.

One MN registration per ciphersuite (NULL, AES-CBC and 3DES-CBC with HMAC-SHA1-96,
AES-CBC with AES-XCBC-MAC-96), captured with ``tshark -i lo``; the MN writes
``--tls-keylog`` and ``--sa-keylog``. tshark then reads the capture with the Lua
dissector: the container fields from the TLS key log, and the BU/BA through
Wireshark's own ESP and mip6 dissectors from the SA key log; the AES-XCBC-MAC-96 ICV
(which Wireshark's ESP code lacks) is checked by the Lua dissector. The HA is on 127.0.0.1
and the MN's care-of address is 127.0.0.2, so the SA key log's records can tell the
two directions apart by the HA's address.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from aaa_mip6 import pki, transform
from aaa_mip6.iana import MIPV6TLS_PORT
from aaa_mip6.keylog import esp_sa_records
from aaa_mip6.sa import SCOPE_ALL, HomeAgent, SecurityAssociation
from aaa_mip6.suites import SUITES as SUITES_BY_NAME
from aaa_mip6.suites import new_keys
from aaa_mip6.transform import PType, SaEndpoint
from lab.loopback import Echo, internet_checksum
from lab.processes import free_port, stop_process, wait_for_log_line
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup, mn_ids
from tests.support import Capture

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
DISSECTOR = ROOT / "etc" / "wireshark" / "mip6.lua"
MN_SCRIPT = Path(sys.executable).with_name("mip6-mn")
SUITES = ("NULL_SHA", "AES_128_CBC_SHA", "3DES_EDE_CBC_SHA", "AES_128_CBC_SHA256")
ESP_CHECKS_ICV = {"NULL_SHA", "AES_128_CBC_SHA", "3DES_EDE_CBC_SHA"}  # HMAC-SHA1-96
# AES-XCBC-MAC-96 (the *_SHA256 suites): Wireshark 4.0 has none, the Lua dissector checks it
LIFETIME = 600  # seconds asked for in the BU: 150 units of 4 s
CARE_OF = "127.0.0.2"
RUN_LIMIT = 60  # seconds for one mip6-mn run
START_LIMIT = 20.0  # seconds for mip6-ha to listen


@dataclass
class LabRun:
    directory: Path
    capture: Path
    tls_keylog: Path
    sa_keylog: Path
    ha_port: int
    hac_port: int
    registered: dict[str, dict]  # suite -> the MN's "registered" event


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory) -> LabRun:
    directory = tmp_path_factory.mktemp("wireshark")
    setup = make_setup(directory / "hac", identities=mn_ids(len(SUITES)))
    ha_port = free_port("127.0.0.1", socket.SOCK_DGRAM)
    ha_log_path = directory / "ha.log"
    with ha_log_path.open("w") as ha_log:
        ha = subprocess.Popen([sys.executable, "-m", "ha.cli", "--listen",
                               f"127.0.0.1:{ha_port}", "--store", setup.store_url,
                               "--log-level", "info"], stderr=ha_log)
    assert wait_for_log_line(ha, ha_log_path, "listening on", timeout=START_LIMIT,
                             what="mip6-ha"), ha_log_path.read_text()
    config = {**TEST_CONFIG, "sa": {"suites": list(SUITES)}}
    run = LabRun(directory, directory / "lab.pcapng", directory / "tls.keys",
                 directory / "sa.keys", ha_port, 0, {})
    try:
        with HacProcess(setup, ha=f"127.0.0.1:{ha_port}", config=config) as hac:
            run.hac_port = hac.port
            capture = Capture(run.capture, f"udp port {ha_port} or tcp port {hac.port}")
            try:
                capture.mark()
                for suite, identity in zip(SUITES, sorted(setup.psks)):
                    psk_file = directory / f"{identity}.psk"
                    pki.write_private(psk_file, setup.psks[identity].hex().encode() + b"\n")
                    done = subprocess.run(
                        [str(MN_SCRIPT), "register", "--hac", hac.address,
                         "--ca", str(setup.ca.cert_path), "--id", identity,
                         "--psk-file", str(psk_file), "--suites", suite,
                         "--care-of", CARE_OF, "--lifetime", str(LIFETIME), "--json",
                         "--tls-keylog", str(run.tls_keylog),
                         "--sa-keylog", str(run.sa_keylog)],
                        capture_output=True, text=True, timeout=RUN_LIMIT)
                    assert done.returncode == 0, done.stderr
                    run.registered[suite] = json.loads(done.stdout.splitlines()[-1])
                capture.mark()
            finally:
                capture.stop()
    finally:
        stop_process(ha)
    return run


def config_dir(directory: Path, sa_keylog: Path) -> Path:
    """A Wireshark configuration directory whose ESP SA table is the SA key log as written."""
    directory.mkdir(exist_ok=True)
    shutil.copyfile(sa_keylog, directory / "esp_sa")
    return directory


def decode(run: LabRun, fields: list[str], *, display_filter: str,
           config: Path | None = None, tls_keylog: Path | None = None,
           sa_keys: Path | None = None) -> list[dict[str, str]]:
    """One dict per packet matching ``display_filter``: field -> value ('' if absent)."""
    options = ["-o", f"mip6tls.port:{run.ha_port}", "-o", f"mip6hac.port:{run.hac_port}",
               "-o", "esp.enable_encryption_decode:TRUE",
               "-o", "esp.enable_authentication_check:TRUE"]
    if sa_keys is not None:
        options += ["-o", f"mip6tls.sa_keys:{sa_keys}"]
    if tls_keylog is not None:
        options += ["-o", f"tls.keylog_file:{tls_keylog}"]
    env = dict(os.environ)
    if config is not None:
        env["WIRESHARK_CONFIG_DIR"] = str(config)
    shown = subprocess.run(
        ["tshark", "-r", str(run.capture), "-X", f"lua_script:{DISSECTOR}", *options,
         "-Y", display_filter, "-T", "fields", "-E", "separator=|",
         *[option for field in fields for option in ("-e", field)]],
        capture_output=True, text=True, timeout=RUN_LIMIT, env=env, check=True)
    assert "Lua" not in shown.stderr and "rror" not in shown.stderr, shown.stderr
    return [dict(zip(fields, line.split("|"))) for line in shown.stdout.splitlines()]


PACKET_FIELDS = ["mip6tls.ptype", "mip6tls.spi", "mip6tls.seq", "esp.icv_good", "esp.icv_bad",
                 "mip6tls.icv_good", "mip6tls.icv_bad",
                 "mip6.mhtype", "mip6.bu.seqnr", "mip6.bu.lifetime", "ipv6.opt.mipv6.home_address",
                 "mip6.ba.status", "mip6.ba.seqnr", "mip6.ba.lifetime"]


def test_bu_and_ba_decode_with_the_sa_keylog(lab_run, tmp_path):
    rows = decode(lab_run, PACKET_FIELDS, display_filter="mip6tls",
                  config=config_dir(tmp_path / "ws", lab_run.sa_keylog))
    assert {row["mip6tls.spi"] for row in rows} == \
        {str(event["spi"]) for event in lab_run.registered.values()}
    for suite, event in lab_run.registered.items():
        mine = [row for row in rows if row["mip6tls.spi"] == str(event["spi"])]
        # a BU the MN had to send again under load is one more, with the next number
        updates = [row for row in mine if row["mip6.mhtype"] == "5"]
        acks = [row for row in mine if row["mip6.mhtype"] == "6"]
        assert len(updates) + len(acks) == len(mine) and updates and acks, mine
        assert [row["mip6tls.seq"] for row in updates] == \
            [str(number) for number in range(len(updates))]
        assert [row["mip6tls.seq"] for row in acks] == \
            [str(number) for number in range(len(acks))]
        assert {row["mip6tls.ptype"] for row in mine} == {"8"}
        # each transmission of a BU has its own BU sequence number (RFC 6275 §11.8)
        sent = [row["mip6.bu.seqnr"] for row in updates]
        answered = [row["mip6.ba.seqnr"] for row in acks]
        assert str(event["sequence"]) in answered and set(answered) <= set(sent)
        assert {row["mip6.bu.lifetime"] for row in updates} == {str(LIFETIME // 4)}
        assert {row["ipv6.opt.mipv6.home_address"] for row in updates} == \
            {event["home-address"]}
        assert {(row["mip6.ba.status"], row["mip6.ba.lifetime"]) for row in acks} == \
            {("0", str(event["lifetime"] // 4))}
        by_esp = suite in ESP_CHECKS_ICV
        assert {(row["esp.icv_good"], row["esp.icv_bad"]) for row in mine} == \
            {("1" if by_esp else "0", "0")}, suite
        assert {(row["mip6tls.icv_good"], row["mip6tls.icv_bad"]) for row in mine} == \
            {("", "") if by_esp else ("1", "0")}, suite


def test_a_wrong_integrity_key_shows_as_a_bad_icv(lab_run, tmp_path):
    spi = lab_run.registered["AES_128_CBC_SHA"]["spi"]
    tampered = tmp_path / "sa.keys"
    lines = lab_run.sa_keylog.read_text().splitlines()
    # flip the last hex digit of the integrity key (the last field) of every record
    tampered.write_text("".join(
        (line[:-2] + ("0" if line[-2] != "0" else "1") + line[-1:]
         if not line.startswith("#") else line) + "\n" for line in lines))
    rows = decode(lab_run, PACKET_FIELDS, display_filter=f"mip6tls.spi == {spi}",
                  config=config_dir(tmp_path / "ws", tampered))
    # Wireshark still decrypts and shows the packet, flagged: a tool to find the fault
    assert rows and {(row["esp.icv_bad"], row["esp.icv_good"]) for row in rows} == {("1", "0")}


def test_a_wrong_xcbc_key_in_the_preferences_file_shows_as_a_bad_icv(lab_run, tmp_path):
    """mip6tls.sa_keys names another key file than the profile's esp_sa: the Lua
    dissector checks the XCBC ICV with that one, the ESP dissector still decrypts with
    esp_sa."""
    spi = lab_run.registered["AES_128_CBC_SHA256"]["spi"]
    tampered = tmp_path / "xcbc.keys"
    tampered.write_text("".join(
        (line[:-2] + ("0" if line[-2] != "0" else "1") + line[-1:]
         if not line.startswith("#") else line) + "\n"
        for line in lab_run.sa_keylog.read_text().splitlines()))
    rows = decode(lab_run, PACKET_FIELDS, display_filter=f"mip6tls.spi == {spi}",
                  config=config_dir(tmp_path / "ws", lab_run.sa_keylog), sa_keys=tampered)
    assert rows and {(row["mip6tls.icv_bad"], row["mip6tls.icv_good"]) for row in rows} == \
        {("1", "0")}
    assert {row["mip6.mhtype"] for row in rows} == {"5", "6"}  # decrypted all the same


def _xcbc_packets(suite_name: str, spi: int) -> tuple[SecurityAssociation, list[bytes]]:
    """Echo requests MN -> HA and HA -> MN under an SA of ``suite_name``; the last one
    has one ICV bit flipped."""
    suite = SUITES_BY_NAME[suite_name]
    keys = new_keys(suite)
    sa = SecurityAssociation(
        spi=spi, suite=suite.name, mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey, validity_end=datetime.now(timezone.utc),
        scope=SCOPE_ALL, mn_id="mn@example.org")
    mn, ha = SaEndpoint(sa, "mn"), SaEndpoint(sa, "ha")
    echo = Echo(IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:c::2"), 4242, 7, b"ping")
    to_ha = [mn.protect(PType.ENCRYPTED_IP, echo.packet(), 41) for _ in range(2)]
    to_mn = ha.protect(PType.ENCRYPTED_IP, echo.packet(), 41)
    flipped = bytearray(mn.protect(PType.ENCRYPTED_IP, echo.packet(), 41))
    flipped[-5] ^= 0x10
    return sa, [_ipv4_udp("127.0.0.2", "127.0.0.1", 40000, MIPV6TLS_PORT, packet)
                for packet in to_ha + [bytes(flipped)]] + \
        [_ipv4_udp("127.0.0.1", "127.0.0.2", MIPV6TLS_PORT, 40000, to_mn)]


def test_the_lua_dissector_checks_the_xcbc_icv(tmp_path):
    """Both AES-XCBC-MAC-96 suites, both directions, keys from the profile's esp_sa: a
    good ICV shows good, one flipped bit shows bad with an expert item, and the ESP
    dissector decrypts (AES-CBC) or reads (NULL) the echo request either way."""
    ha = HomeAgent(None, IPv4Address("127.0.0.1"), MIPV6TLS_PORT)
    packets, records = [], []
    for spi, suite in ((0x0ABC001, "NULL_SHA256"), (0x0ABC002, "AES_128_CBC_SHA256")):
        sa, made = _xcbc_packets(suite, spi)
        packets += made
        records += esp_sa_records(sa, ha)
    capture = tmp_path / "xcbc.pcap"
    _pcap(capture, packets)
    config = tmp_path / "ws"
    config.mkdir()
    (config / "esp_sa").write_text("".join(f"{line}\n" for line in records))
    shown = subprocess.run(
        ["tshark", "-r", str(capture), "-X", f"lua_script:{DISSECTOR}",
         "-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
         "-T", "fields", "-E", "separator=|", "-e", "mip6tls.spi", "-e", "mip6tls.seq",
         "-e", "ip.src", "-e", "mip6tls.icv_good", "-e", "mip6tls.icv_bad",
         "-e", "mip6tls.icv_bad.expert",  # the expert item: present on the bad one
         "-e", "icmpv6.echo.identifier"],
        capture_output=True, text=True, timeout=RUN_LIMIT, check=True,
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(config)})
    assert "Lua" not in shown.stderr, shown.stderr
    rows = []
    for spi in (0x0ABC001, 0x0ABC002):
        rows += [f"{spi}|0|127.0.0.2|1|0||0x1092", f"{spi}|1|127.0.0.2|1|0||0x1092",
                 f"{spi}|2|127.0.0.2|0|1|1|0x1092",
                 f"{spi}|0|127.0.0.1|1|0||0x1092"]
    assert shown.stdout.splitlines() == rows


def test_without_keys_only_the_header_shows(lab_run, tmp_path):
    rows = decode(lab_run, PACKET_FIELDS, display_filter="mip6tls",
                  config=tmp_path)  # a configuration without ESP SAs
    assert {row["mip6tls.spi"] for row in rows} == \
        {str(event["spi"]) for event in lab_run.registered.values()}
    assert not any(row["mip6.mhtype"] for row in rows)


CONTAINER_FIELDS = ["mip6hac.version", "mip6hac.identifier", "mip6hac.length", "mip6hac.mn_id",
                    "mip6hac.auth_method", "mip6hac.status_code", "mip6hac.mip6_spi",
                    "mip6hac.mip6_ciphersuite", "mip6hac.mip6_mn_to_ha_ikey",
                    "mip6hac.mip6_ip6_hoa", "mip6hac.mip6_port", "tcp.srcport"]


def test_container_decodes_with_the_tls_keylog(lab_run, tmp_path):
    assert decode(lab_run, CONTAINER_FIELDS, display_filter="mip6hac") == []  # no key log
    rows = decode(lab_run, CONTAINER_FIELDS, display_filter="mip6hac",
                  tls_keylog=lab_run.tls_keylog)
    hac = str(lab_run.hac_port)
    responses = [row for row in rows if row["tcp.srcport"] == hac]
    requests = [row for row in rows if row["tcp.srcport"] != hac]
    # PSK: Init and Done, each answered
    assert [row["mip6hac.identifier"] for row in requests] == ["1", "2"] * len(SUITES)
    assert [row["mip6hac.identifier"] for row in responses] == ["1", "2"] * len(SUITES)
    assert {row["mip6hac.version"] for row in rows} == {"0"}
    assert [row["mip6hac.mn_id"] for row in requests[::2]] == mn_ids(len(SUITES))
    done = responses[1::2]
    assert [row["mip6hac.status_code"] for row in done] == ["200"] * len(SUITES)
    assert [row["mip6hac.mip6_spi"] for row in done] == \
        [str(lab_run.registered[suite]["spi"]) for suite in SUITES]
    assert [row["mip6hac.mip6_ciphersuite"] for row in done] == \
        ["{00 02}", "{00 2F}", "{00 0A}", "{00 3C}"]
    assert [IPv6Address(row["mip6hac.mip6_ip6_hoa"]) for row in done] == \
        [IPv6Address(lab_run.registered[suite]["home-address"]) for suite in SUITES]
    assert {row["mip6hac.mip6_port"] for row in done} == {str(lab_run.ha_port)}
    assert {row["mip6hac.mip6_mn_to_ha_ikey"] for row in done} == \
        {"(20 octets, masked)", "(16 octets, masked)"}


def test_keys_never_show_in_the_packet_tree(lab_run):
    tree = subprocess.run(
        ["tshark", "-r", str(lab_run.capture), "-X", f"lua_script:{DISSECTOR}",
         "-o", f"mip6hac.port:{lab_run.hac_port}", "-o", f"tls.keylog_file:{lab_run.tls_keylog}",
         "-Y", "mip6hac", "-V"], capture_output=True, text=True, timeout=RUN_LIMIT, check=True)
    assert "mip6-spi" in tree.stdout
    keys = [field[2:] for line in lab_run.sa_keylog.read_text().splitlines()
            if not line.startswith("#")
            for field in line.replace('"', "").split(",") if field.startswith("0x")
            and len(field) > 12]
    assert keys and not any(key in tree.stdout for key in keys)


def test_key_logs_are_private(lab_run):
    for path in (lab_run.tls_keylog, lab_run.sa_keylog):
        assert path.stat().st_mode & 0o777 == 0o600
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in lab_run.tls_keylog.read_text()


# --------------------------------------------------------------------------- data packets


def _ipv4_udp(source: str, destination: str, source_port: int, destination_port: int,
              payload: bytes) -> bytes:
    """An IPv4/UDP packet (UDP checksum 0: none, as IPv4 allows)."""
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         IPv4Address(source).packed, IPv4Address(destination).packed)
    return header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:] + udp


def _pcap(path: Path, packets: list[bytes]) -> None:
    """A classic pcap file of raw IP packets (LINKTYPE_RAW)."""
    records = b"".join(struct.pack("<IIII", 0, number, len(packet), len(packet)) + packet
                       for number, packet in enumerate(packets))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101) + records)


def test_plain_and_encrypted_ip_packets_reach_the_ip_dissectors(tmp_path):
    """PType 0 and PType 1 do not occur in a registration: made here with the project's
    own transform, as the MN sends them (MN -> HA)."""
    ha = HomeAgent(None, IPv4Address("127.0.0.1"), MIPV6TLS_PORT)
    suite = SUITES_BY_NAME["AES_128_CBC_SHA"]
    keys = new_keys(suite)
    sa = SecurityAssociation(
        spi=0x0ABCDEF, suite=suite.name, mn_to_ha_ikey=keys.mn_to_ha_ikey,
        ha_to_mn_ikey=keys.ha_to_mn_ikey, mn_to_ha_ekey=keys.mn_to_ha_ekey,
        ha_to_mn_ekey=keys.ha_to_mn_ekey, validity_end=datetime.now(timezone.utc),
        scope=SCOPE_ALL, mn_id="mn@example.org")
    endpoint = SaEndpoint(sa, "mn")
    echo = Echo(IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:c::2"), 4242, 7, b"ping")
    packets = [transform.encode_plain(echo.packet()),
               endpoint.protect(PType.ENCRYPTED_IP, echo.packet(), 41),
               endpoint.protect(PType.ENCRYPTED_IP, echo.packet(), 41)]
    capture = tmp_path / "data.pcap"
    _pcap(capture, [_ipv4_udp("127.0.0.2", "127.0.0.1", 40000, MIPV6TLS_PORT, packet)
                    for packet in packets])
    config = tmp_path / "ws"
    config.mkdir()
    (config / "esp_sa").write_text("".join(f"{line}\n" for line in esp_sa_records(sa, ha)))
    shown = subprocess.run(
        ["tshark", "-r", str(capture), "-X", f"lua_script:{DISSECTOR}",
         "-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
         "-T", "fields", "-E", "separator=|", "-e", "mip6tls.ptype", "-e", "mip6tls.spi",
         "-e", "mip6tls.seq", "-e", "esp.icv_good", "-e", "icmpv6.echo.identifier",
         "-e", "icmpv6.echo.sequence_number"],
        capture_output=True, text=True, timeout=RUN_LIMIT, check=True,
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(config)})
    assert shown.stdout.splitlines() == [
        "0|0|0||0x1092|7",  # 4242
        f"1|{0x0ABCDEF}|0|1|0x1092|7",
        f"1|{0x0ABCDEF}|1|1|0x1092|7",
    ]


# --------------------------------------------------------------------------- bad input


def _ipv4_tcp(source_port: int, destination_port: int, sequence: int, payload: bytes) -> bytes:
    """An IPv4/TCP segment (ACK|PSH) from 127.0.0.2 to 127.0.0.1; checksum not filled in."""
    tcp = struct.pack("!HHIIBBHHH", source_port, destination_port, sequence, 1, 5 << 4, 0x18,
                      65535, 0, 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                         IPv4Address("127.0.0.2").packed, IPv4Address("127.0.0.1").packed)
    return header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:] + tcp


def _container(first: int, identifier: int, content: bytes) -> bytes:
    return struct.pack("!BBH", first, identifier, len(content)) + content


def test_malformed_containers_are_flagged_not_lua_errors(tmp_path):
    """Containers on plain TCP (Decode As mip6hac): framing errors, lines that are no
    TV-header, unknown headers and values out of range are expert items, a key is
    masked, and a container split over two segments is put back together."""
    key = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4"
    good = _container(0, 1, b"mn-id:alice@example.org\r\nauth-method:psk\r\n\r\n")
    bad_framing = _container(0x20, 0, b"mn-id:bob@example.org\r\n\r\n")
    bad_lines = _container(0, 2, (f"no colon here\r\nx-unknown:1\r\nstatus-code:0x10\r\n"
                                  f"mip6-spi:99999999999999\r\nmip6-mn-to-ha-ikey:{key}\r\n"
                                  f"mip6-sas:1\r\n\r\n").encode())
    split = _container(0, 3, b"mn-id:carol@example.org\r\nauth-method:eap\r\n\r\n")
    truncated = _container(0, 4, b"mn-id:dave@example.org\r\n")[:-5]
    stream = [good + bad_framing, bad_lines, split[:7], split[7:], truncated]
    segments, sequence = [], 1
    for payload in stream:
        segments.append(_ipv4_tcp(40001, 5555, sequence, payload))
        sequence += len(payload)
    capture = tmp_path / "containers.pcap"
    _pcap(capture, segments)
    shown = subprocess.run(
        ["tshark", "-r", str(capture), "-X", f"lua_script:{DISSECTOR}",
         "-d", "tcp.port==5555,mip6hac", "-V"],
        capture_output=True, text=True, timeout=RUN_LIMIT, check=True,
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(tmp_path)})
    tree = shown.stdout
    assert "Lua Error" not in tree and "Lua Error" not in shown.stderr, tree
    assert "mn-id: alice@example.org" in tree and "auth-method: psk" in tree
    assert "Ver/Rsrvd not 0, Identifier 0 or Length 0" in tree
    # no colon, 0x10, 99999999999999
    assert tree.count("Expert Info (Warning/Malformed): Not a TV-header line") == 3
    assert "status 0x10" not in tree
    assert "Unknown TV-header" in tree and "mip6-sas: 1" in tree
    assert "mip6-mn-to-ha-ikey: (20 octets, masked)" in tree and key not in tree
    assert "mn-id: carol@example.org" in tree  # reassembled from two segments
    assert "dave" not in tree  # an incomplete container is not shown
