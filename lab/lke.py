"""``mip6-lab lke --netns``: Local Key Exchange (draft-liu-mobileip-lke-01) in network
namespaces (root): the previous access router keeps delivering what is sent to the MN's
previous care-of address after the MN moved.

Topology (documentation addresses; every namespace ``lke<random>-<name>``)::

    cn 2001:db8:c::2 --- rt (core router) --- 2001:db8:d::/64 --- ha: mip6-ha + mip6-hac
                          |        |                                (2001:db8::1, home
                 2001:db8:e1::/64  2001:db8:e2::/64                  2001:db8:1::/64)
                          |        |
         ar1: mip6-ar, br1 2001:db8:a1::1/64    ar2: mip6-ar, br2 2001:db8:a2::1/64
              |      |      |      |                 |      |
             mn    mnc    atk    vic                mn     mnc    (link 2, after the move)

``mn`` runs ``mip6-mn up --lke``; ``mnc`` (the control) runs ``mip6-mn up`` without it.
Both start on link 1 (care-of 2001:db8:a1::100 and ::200) and register with the HA; once
``mn`` and AR1 share a DAD-confirmed LBSA, AR1 is restarted (the LBSA must come back from
its state file). Then both move to link 2 (::100 and ::200 of 2001:db8:a2::/64) while the
correspondent streams UDP to their link-1 care-of addresses; the lab counts what arrives
at the old addresses after the move, and what ``mn`` echoes from its old address back to
the correspondent (only AR1's reverse tunnel can carry it: ``rt`` refuses link 1's
addresses from link 2). AR1 asks for the optional Finished. ``atk`` and ``vic`` are
other hosts on link 1: ``atk`` sends a forged Key Exchange Request for the MN's care-of
address and answers the DAD probe AR1 makes for ``vic`` (which runs an honest key
exchange); after the move the lab replays the MN's Binding Update to AR1. Each must be
refused and counted by AR1.

The last line of the output is the JSON verdict.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from ipaddress import IPv6Address
from pathlib import Path

from aaa_mip6 import pki
from aaa_mip6.addresses import format_host_port
from aaa_mip6.iana import MIPV6TLS_PORT

from . import lke_attacks
from .common import HOA_PREFIX, MN_DOMAIN, hac_settings, make_files
from .netns import LabError, _run, _script, accepts_tcp, in_namespace, read_events
from .processes import stop_process
from .servers.hac import toml_text

HA_ADDRESS = IPv6Address("2001:db8::1")
HAC_PORT = 4433
HAC_ENDPOINT = format_host_port(HA_ADDRESS, HAC_PORT)
CN_ADDRESS = IPv6Address("2001:db8:c::2")
LINK_PREFIX = {1: "2001:db8:a1::", 2: "2001:db8:a2::"}
AR_ADDRESS = {1: IPv6Address("2001:db8:a1::1"), 2: IPv6Address("2001:db8:a2::1")}
MN_HOST, CONTROL_HOST, ATTACKER_HOST, VICTIM_HOST = 0x100, 0x200, 0x66, 0x77
STREAM_PORT = 9000
STREAM_INTERVAL = 0.005  # seconds between the correspondent's datagrams
STREAM_BEFORE = 0.5  # seconds of the flow before the move
STREAM_AFTER = 2.0  # seconds of the flow after the move
EVENT_TIMEOUT = 25.0  # seconds to wait for a registration or an LKE step
COUNTER_TIMEOUT = 5.0  # seconds to wait for AR1 to count a refusal


STOP = threading.Event()
"""Set by SIGTERM or SIGINT (:func:`stop_requested`): the lab stops at its next wait, so
that no signal lands between starting a process and recording it for the clean-up."""


def stop_requested(*_) -> None:
    STOP.set()


def _check_stop() -> None:
    if STOP.is_set():
        raise KeyboardInterrupt


def _pause(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        _check_stop()
        time.sleep(min(0.1, left))


def address(link: int, host: int) -> IPv6Address:
    return IPv6Address(LINK_PREFIX[link]) + host


class _Flow:
    """The correspondent's UDP stream to one care-of address and what arrived there.

    Every datagram carries its sequence number; the receiver (a socket bound to the
    care-of address in the MN's namespace) records those it gets and echoes each back
    from that address, which for the LKE MN after the move means through its reverse
    tunnel to AR1.
    """

    def __init__(self, lab: LkeLab, namespace: str, target: IPv6Address):
        self.lab = lab
        self.namespace = namespace
        self.target = target
        self.received: set[int] = set()
        self.echoed: set[int] = set()
        self.sent = 0
        self.moved_at_sequence: int | None = None
        self.bound_at_sequence: int | None = None
        self._receiver = in_namespace(namespace, self._bind)
        self._echo_socket = in_namespace(lab.name("cn"), self._bind_echo)
        self._stop = threading.Event()

    def _bind(self) -> socket.socket:
        receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        receiver.bind((str(self.target), STREAM_PORT))
        receiver.settimeout(0.2)
        return receiver

    @staticmethod
    def _bind_echo() -> socket.socket:
        sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sender.bind((str(CN_ADDRESS), 0))
        sender.settimeout(0.2)
        return sender

    def start(self) -> None:
        for work in (self._send, self._receive, self._collect_echoes):
            threading.Thread(target=work, daemon=True).start()

    def mark_move(self) -> None:
        self.moved_at_sequence = self.sent

    def mark_bound(self) -> None:
        """The previous AR's binding is in place: from here on nothing should be lost."""
        self.bound_at_sequence = self.sent

    def stop(self) -> None:
        self._stop.set()
        time.sleep(0.4)  # the last datagrams in flight
        self._receiver.close()
        self._echo_socket.close()

    def _send(self) -> None:
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            try:
                self._echo_socket.sendto(struct.pack("!I", sequence) + bytes(60),
                                         (str(self.target), STREAM_PORT))
            except OSError:
                pass  # no route for a moment: counted as sent, never received
            self.sent = sequence
            time.sleep(STREAM_INTERVAL)

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._receiver.recvfrom(2048)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if len(data) < 4:
                continue
            self.received.add(struct.unpack("!I", data[:4])[0])
            try:
                self._receiver.sendto(data[:4], peer)
            except OSError:
                pass

    def _collect_echoes(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self._echo_socket.recvfrom(2048)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if len(data) >= 4:
                self.echoed.add(struct.unpack("!I", data[:4])[0])

    @property
    def sent_after_move(self) -> int:
        return self.sent - (self.moved_at_sequence or 0)

    @property
    def received_after_move(self) -> int:
        return sum(1 for number in self.received if number > (self.moved_at_sequence or 0))

    @property
    def sent_after_bound(self) -> int:
        return self.sent - (self.bound_at_sequence or 0)

    @property
    def received_after_bound(self) -> int:
        return sum(1 for number in self.received if number > (self.bound_at_sequence or 0))

    @property
    def echoed_after_move(self) -> int:
        return sum(1 for number in self.echoed if number > (self.moved_at_sequence or 0))


class _MobileNode:
    """``mip6-mn up`` in a namespace with a leg on each access link; its JSON events."""

    def __init__(self, lab: LkeLab, label: str, host: int, lke: bool):
        self.lab = lab
        self.label = label
        self.namespace = lab.name(label)
        self.host = host
        self.lke = lke
        self.mn_id = f"{label}@{MN_DOMAIN}"
        self.process: subprocess.Popen | None = None
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []

    def care_of(self, link: int) -> IPv6Address:
        return address(link, self.host)

    def ip(self, *arguments: str) -> None:
        _run("ip", "-n", self.namespace, *arguments)

    def on_link(self, link: int) -> None:
        """Care-of address on link ``link``, the other link down and its addresses gone."""
        here, there = f"l{link}", f"l{3 - link}"
        self.ip("link", "set", here, "up")
        self.ip("address", "add", f"{self.care_of(link)}/64", "dev", here, "nodad")
        self.ip("-6", "route", "replace", "default", "via", str(AR_ADDRESS[link]), "dev", here)
        self.ip("link", "set", there, "down")
        self.ip("-6", "address", "flush", "dev", there, "scope", "global")

    def start(self, files) -> None:
        psk_file = self.lab.directory / f"{self.label}.psk"
        pki.write_private(psk_file, files.psks[self.mn_id].hex().encode() + b"\n")
        command = [_script("mip6-mn"), "up", "--hac", HAC_ENDPOINT,
                   "--ca", str(files.ca.cert_path), "--id", self.mn_id,
                   "--psk-file", str(psk_file), "--lifetime", "120", "--watch", "0.2",
                   "--json"]
        if self.lke:
            command += ["--lke"]
        log = open(self.lab.directory / f"{self.label}.log", "wb")
        self.process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *command],
                                        stdout=subprocess.PIPE, stderr=log,
                                        stdin=subprocess.DEVNULL, text=True)
        log.close()
        self.lab.processes.append(self.process)
        threading.Thread(target=read_events, args=(self.process, self.events),
                         daemon=True).start()

    def wait_for(self, wanted: str, **fields) -> dict:
        """The next event ``wanted`` whose fields match; LabError on failure or timeout."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            _check_stop()
            try:
                event = self.events.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() < deadline:
                    continue
                raise LabError(f"{self.label}: no {wanted} event within {EVENT_TIMEOUT:g} s; "
                               f"see {self.lab.directory}/{self.label}.log") from None
            self.seen.append(event)
            if event["event"] in ("failed", "exited"):
                raise LabError(f"{self.label}: mip6-mn {event['event']}: "
                               f"{event.get('reason', 'see its log')}")
            if event["event"] == wanted and all(str(event.get(key)) == str(value)
                                                for key, value in fields.items()):
                return event


class LkeLab:
    """The namespaces, links and processes of one run; :meth:`close` removes them all."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.tag = f"lke{secrets.token_hex(3)}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.routers: dict[int, subprocess.Popen] = {}
        self.mn = _MobileNode(self, "mn", MN_HOST, lke=True)
        self.control = _MobileNode(self, "mnc", CONTROL_HOST, lke=False)

    def name(self, label: str) -> str:
        return f"{self.tag}-{label}"

    @staticmethod
    def address_of(label: str) -> IPv6Address:
        return address(1, {"atk": ATTACKER_HOST, "vic": VICTIM_HOST}[label])

    @staticmethod
    def ar_address(link: int) -> IPv6Address:
        return AR_ADDRESS[link]

    def ip(self, label: str, *arguments: str) -> None:
        _run("ip", "-n", self.name(label), *arguments)

    def sysctl(self, label: str, *settings: str) -> None:
        _run("ip", "netns", "exec", self.name(label), "sysctl", "-q", "-w", *settings)

    def add_namespace(self, label: str, router: bool = False) -> None:
        _run("ip", "netns", "add", self.name(label))
        self.namespaces.append(self.name(label))
        # No DAD wait for the lab's own addresses, no SLAAC: every address is set by hand.
        self.sysctl(label, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
                    f"net.ipv6.conf.all.forwarding={int(router)}")
        self.ip(label, "link", "set", "lo", "up")

    def veth(self, left: str, left_name: str, right: str, right_name: str) -> None:
        self.ip(left, "link", "add", left_name, "type", "veth", "peer", "name", right_name,
                "netns", self.name(right))
        for label, name in ((left, left_name), (right, right_name)):
            self.sysctl(label, f"net.ipv6.conf.{name}.accept_dad=0",
                        f"net.ipv6.conf.{name}.accept_ra=0")
            self.ip(label, "link", "set", name, "up")

    def wire(self) -> None:
        for label in ("rt", "ha", "ar1", "ar2"):
            self.add_namespace(label, router=True)
        for label in ("cn", "mn", "mnc", "atk", "vic"):
            self.add_namespace(label)
        # the core: correspondent, home network, the two access routers' uplinks
        for peer, device, net in (("cn", "cn0", "c"), ("ha", "up0", "d"), ("ar1", "up0", "e1"),
                                  ("ar2", "up0", "e2")):
            self.veth("rt", f"rt-{peer}", peer, device)
            self.ip("rt", "address", "add", f"2001:db8:{net}::1/64", "dev", f"rt-{peer}")
            self.ip(peer, "address", "add", f"2001:db8:{net}::2/64", "dev", device)
            self.ip(peer, "-6", "route", "add", "default", "via", f"2001:db8:{net}::1")
        for prefix, net in ((f"{HA_ADDRESS}/128", "d"), (HOA_PREFIX, "d"),
                            ("2001:db8:a1::/64", "e1"), ("2001:db8:a2::/64", "e2")):
            self.ip("rt", "-6", "route", "add", prefix, "via", f"2001:db8:{net}::2")
        # Ingress filtering at the core: link 1's addresses only from AR1's side, so what the
        # MN sends from its previous care-of address after the move counts only if AR1
        # forwarded it (reverse tunnel), not if link 2 let it through.
        self.ip("rt", "-6", "rule", "add", "from", "2001:db8:a1::/64", "iif", "rt-ar2",
                "prohibit")
        self.ip("ha", "address", "add", f"{HA_ADDRESS}/128", "dev", "lo")
        # the access links: a bridge in each AR's namespace, one port per host on the link
        for link in (1, 2):
            router = f"ar{link}"
            self.ip(router, "link", "add", f"br{link}", "type", "bridge")
            self.sysctl(router, f"net.ipv6.conf.br{link}.accept_dad=0")
            self.ip(router, "address", "add", f"{AR_ADDRESS[link]}/64", "dev", f"br{link}")
            self.ip(router, "link", "set", f"br{link}", "up")
            hosts = [("mn", f"l{link}"), ("mnc", f"l{link}")]
            if link == 1:
                hosts += [("atk", "l1"), ("vic", "l1")]
            for label, device in hosts:
                port = f"p-{label}"
                self.veth(router, port, label, device)
                self.ip(router, "link", "set", port, "master", f"br{link}")
        for label, host in (("atk", ATTACKER_HOST), ("vic", VICTIM_HOST)):
            self.ip(label, "address", "add", f"{address(1, host)}/64", "dev", "l1")
            self.ip(label, "-6", "route", "add", "default", "via", str(AR_ADDRESS[1]))
        for node in (self.mn, self.control):
            node.on_link(1)

    def spawn(self, label: str, name: str, command: list[str],
              append: bool = False) -> subprocess.Popen:
        with open(self.directory / f"{name}.log", "ab" if append else "wb") as log:
            process = subprocess.Popen(["ip", "netns", "exec", self.name(label), *command],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def start_home(self, files) -> None:
        settings = hac_settings(files, HAC_ENDPOINT, {"ip6": str(HA_ADDRESS),
                                                      "port": MIPV6TLS_PORT})
        config = self.directory / "hac.toml"
        config.write_text(toml_text(settings))
        self.spawn("ha", "ha", [
            _script("mip6-ha"), "--listen", format_host_port(HA_ADDRESS, MIPV6TLS_PORT),
            "--home-agent", str(HA_ADDRESS), "--store", files.store_url,
            "--tun", "mip6ha0", "--tun-route", HOA_PREFIX])
        self.spawn("ha", "hac", [_script("mip6-hac"), "--config", str(config)])
        self._wait_listening("ha", HA_ADDRESS, HAC_PORT, "mip6-hac")

    def start_routers(self) -> None:
        for link in (1, 2):
            self.start_router(link)
        for link in (1, 2):
            self._wait_for(lambda link=link: self.status_file(link).exists(),
                           f"mip6-ar on link {link} did not start; see ar{link}.log")

    def start_router(self, link: int, append: bool = False) -> None:
        self.routers[link] = self.spawn(f"ar{link}", f"ar{link}", [
            _script("mip6-ar"), "--interface", f"br{link}",
            "--address", str(AR_ADDRESS[link]), "--prefix", f"{LINK_PREFIX[link]}/64",
            "--key", str(self.directory / f"ar{link}.key"), "--generate-key",
            "--state", str(self.directory / f"ar{link}.state"),
            "--tun", "lketun0", "--ra-interval", "0.5", "--request-finished",
            "--status-file", str(self.status_file(link))], append=append)

    def restart_router(self, link: int) -> int:
        """Stop ``mip6-ar`` on ``link`` and start it again; the LBSAs it restored."""
        stop_process(self.routers[link])
        self.status_file(link).unlink(missing_ok=True)
        self.start_router(link, append=True)
        self._wait_for(lambda: self.status_file(link).exists(),
                       f"mip6-ar on link {link} did not start again; see ar{link}.log")
        return self.ar_status(link).get("lbsas", {}).get("valid", 0)

    def status_file(self, link: int) -> Path:
        return self.directory / f"ar{link}-status.json"

    def ar_status(self, link: int) -> dict:
        try:
            return json.loads(self.status_file(link).read_text())
        except (OSError, ValueError):
            return {}

    def refused(self, link: int) -> dict[str, int]:
        return self.ar_status(link).get("counters", {})

    def _wait_for(self, condition, what: str, timeout: float = EVENT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _check_stop()
            if condition():
                return
            time.sleep(0.05)
        raise LabError(f"{what} (within {timeout:g} s; logs in {self.directory})")

    def _wait_listening(self, label: str, host, port: int, what: str) -> None:
        self._wait_for(lambda: in_namespace(self.name(label), lambda: accepts_tcp(host, port)),
                       f"{what} did not start listening")

    def close(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def lke_passed(verdict: dict) -> bool:
    """Whether the verdict proves the forwarding, the control's loss, the home
    registration and every refusal."""
    return (verdict.get("forwarded_after_move", 0) > 0 and verdict.get("lost_without_lke", 0) > 0
            and verdict.get("home_registered") is True
            and all(verdict.get("refused", {}).get(case, 0) >= 1 for case in lke_attacks.CASES))


def check_ready() -> None:
    """LabError naming what this machine lacks for the lab (root, ip, TUN)."""
    if os.geteuid() != 0:
        raise LabError("lke --netns needs root (network namespaces, raw sockets, TUN devices)")
    if shutil.which("ip") is None:
        raise LabError("lke --netns needs the ip command (iproute2)")
    if not os.path.exists("/dev/net/tun"):
        raise LabError("lke --netns needs /dev/net/tun")


def run_lke(directory: Path, out) -> dict:
    """The LKE lab; its verdict (also printed as the last line). LabError if it cannot run."""
    check_ready()
    lab = LkeLab(directory)
    files = make_files(directory, [lab.mn.mn_id, lab.control.mn_id], (str(HA_ADDRESS),))
    verdict: dict = {}
    try:
        lab.wire()
        lab.start_home(files)
        lab.start_routers()
        print(f"mip6-lab: namespaces {lab.tag}-{{rt,cn,ha,ar1,ar2,mn,mnc,atk,vic}}; "
              f"files in {directory}", file=out, flush=True)
        verdict = _scenario(lab, files, out)
    finally:
        lab.close()
    print(json.dumps(verdict, sort_keys=True), file=out, flush=True)
    return verdict


def _scenario(lab: LkeLab, files, out) -> dict:
    _check_stop()
    for node in (lab.mn, lab.control):
        node.start(files)
    for node in (lab.mn, lab.control):
        node.wait_for("registered", **{"care-of-address": node.care_of(1)})
    print("mip6-lab: both MNs registered from link 1", file=out, flush=True)
    lab.mn.wait_for("lke-established", ar=AR_ADDRESS[1])
    lab._wait_for(lambda: lab.ar_status(1).get("lbsas", {}).get("valid", 0) >= 1,
                  "AR1 never confirmed the MN's LBSA (authenticated DAD)")
    print("mip6-lab: MN and AR1 share an LBSA (key exchange and authenticated DAD done)",
          file=out, flush=True)
    restored = lab.restart_router(1)
    print(f"mip6-lab: AR1 restarted with {restored} LBSA(s) from its state file",
          file=out, flush=True)

    refused_before = dict(lab.refused(1))
    lke_attacks.forged_key_exchange(lab)
    lke_attacks.impostor_dad(lab)
    sniffer = lke_attacks.BindingUpdateSniffer(lab)

    flows = [_Flow(lab, lab.mn.namespace, lab.mn.care_of(1)),
             _Flow(lab, lab.control.namespace, lab.control.care_of(1))]
    for flow in flows:
        flow.start()
    _pause(STREAM_BEFORE)
    for flow, node in zip(flows, (lab.mn, lab.control)):
        flow.mark_move()
        node.on_link(2)
    print("mip6-lab: both MNs moved to link 2", file=out, flush=True)
    home_registered = all(
        node.wait_for("registered", **{"care-of-address": node.care_of(2)})["status"] == 0
        for node in (lab.mn, lab.control))
    lab.mn.wait_for("lke-bound", ar=AR_ADDRESS[1])
    flows[0].mark_bound()
    lab.mn.process.send_signal(signal.SIGUSR1)  # the MN's own view: who forwards what
    forwarded_by = lab.mn.wait_for("status")["lke"]["forwarded-by"]
    _pause(STREAM_AFTER)
    for flow in flows:
        flow.stop()
    lke_attacks.replay_binding_update(lab, sniffer)

    refused = {}
    for case, reason in lke_attacks.CASES.items():
        lab._wait_for(lambda r=reason: lab.refused(1).get(r, 0) > refused_before.get(r, 0),
                      f"AR1 did not count the {case} as {reason}", COUNTER_TIMEOUT)
        refused[case] = lab.refused(1)[reason] - refused_before.get(reason, 0)
    lke, control = flows
    return {
        "forwarded_after_move": lke.received_after_move,
        "sent_after_move": lke.sent_after_move,
        "forwarded_after_bound": lke.received_after_bound,
        "sent_after_bound": lke.sent_after_bound,
        "reverse_tunneled_after_move": lke.echoed_after_move,
        "lost_without_lke": control.sent_after_move - control.received_after_move,
        "control_sent_after_move": control.sent_after_move,
        "home_registered": home_registered,
        "mn_forwarded_by": forwarded_by,
        "ar1_lbsas_after_restart": restored,
        "refused": refused,
        "ar1_counters": lab.refused(1),
    }
