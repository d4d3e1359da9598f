"""EAP bootstrap over Diameter end to end: MN -> a real ``mip6-hac`` (aaa.backend =
diameter) -> Diameter EAP over TLS -> freeDiameterd (relay) -> ``mip6-aaa-gw`` -> FreeRADIUS.

The HAC runs EAP only, without a PSK file. The relay connects to the HAC's
``diameter.listen`` and to the gateway (freeDiameter only accepts peers it knows), and
routes the DERs by Destination-Realm. Every matrix case of test_hac_eap_radius.py
runs through this chain (the "via HAC, Diameter, mip6-aaa-gw" column of the interop
matrix): a success means the HAC verified the MN's Done with the MSK that crossed as
EAP-Master-Session-Key; a wrong password gives 401. One more HAC connects straight
to a gateway (``--diameter-peer``), set up with flags only; a HAC without an open
Diameter peer answers 503 with its ``diameter.retry_after``.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest

from aaa_mip6 import pki
from lab.processes import free_port
from lab.servers.freediameter import PeerSpec, run_relay
from lab.servers.hac import TEST_CONFIG, HacProcess, make_setup
from mn.bootstrap import BootstrapFailed
from mn.eap import EapCredentials
from tests.integration import interop_report
from tests.integration.gateway import GW_HOST, GW_REALM, gateway_process
from tests.integration.hac_eap_matrix import HacEapMatrix, bootstrap
from tests.integration.interop_report import PATH_HAC_DIAMETER, Case

pytestmark = pytest.mark.integration

HAC_HOST, HAC_REALM = "hac.example.org", "example.org"
READY_LIMIT = 40.0  # seconds for the Diameter connections to open (a loaded machine)
NOT_ROUTED_YET = (503, 504)  # no open Diameter peer / the relay has no route yet


class EapOnlyHac(HacProcess):
    """A HAC that runs EAP only and has no PSK file (``credentials.psk_file`` unset)."""

    def command(self, port: int) -> list[str]:
        command = super().command(port)
        index = command.index("--psk-file")
        return command[:index] + command[index + 2:]


def diameter_settings(ca: pki.Identity, own: pki.Identity, **more) -> dict:
    """The [diameter] table of a HAC with identity ``own`` (a certificate naming HAC_HOST)."""
    return {"origin_host": HAC_HOST, "origin_realm": HAC_REALM, "destination_realm": GW_REALM,
            "ca": str(ca.cert_path), "cert": str(own.cert_path), "key": str(own.key_path),
            "watchdog": 6.0, **more}


def wait_until_routed(hac: HacProcess, server) -> None:
    """Bootstrap once (md5) until the Diameter chain is up end to end."""
    deadline = time.monotonic() + READY_LIMIT
    creds = Case("md5").credentials(server)
    while True:
        try:
            bootstrap(hac, "md5", creds)
            return
        except BootstrapFailed as failure:
            if failure.status not in NOT_ROUTED_YET or time.monotonic() > deadline:
                raise AssertionError(f"{failure}; HAC log:\n{hac.log_tail()}") from None
            time.sleep(0.5)


@pytest.fixture(scope="session", autouse=True)
def interop_matrix_report(request) -> interop_report.InteropReport:
    """This module's cells in the session's matrix (docs/interop.md at the end)."""
    return interop_report.join(request.config, __name__,
                               interop_report.param_cell(PATH_HAC_DIAMETER, "FreeRADIUS"))


@pytest.fixture(scope="module")
def eap_server(freeradius):
    return freeradius


@pytest.fixture(scope="module")
def hac(tmp_path_factory, eap_server):
    """The whole chain, once for the module; yields the running HAC."""
    directory = tmp_path_factory.mktemp("hac-diameter")
    ports = {HAC_HOST: free_port(), GW_HOST: free_port()}
    peers = [PeerSpec(host, port) for host, port in ports.items()]
    with run_relay(directory, peers, start=False) as relay:
        own = relay.credentials[GW_HOST]
        with gateway_process(directory, eap_server, "--origin-host", GW_HOST,
                             "--listen", f"127.0.0.1:{ports[GW_HOST]}",
                             "--cert", str(own.cert_path), "--key", str(own.key_path),
                             "--peer-ca", str(relay.ca.cert_path)):
            config = {**TEST_CONFIG, "auth": {"methods": ["eap"]},
                      "aaa": {"backend": "diameter"},
                      "diameter": diameter_settings(
                          relay.ca, relay.credentials[HAC_HOST],
                          listen=f"127.0.0.1:{ports[HAC_HOST]}")}
            with EapOnlyHac(make_setup(directory / "hac"), config=config) as process:
                # The gateway and the HAC listen, so the relay's first connections
                # succeed; it routes once it has exchanged capabilities with both.
                relay.start()
                relay.wait_open(list(ports), READY_LIMIT)
                yield process


class TestHacDiameter(HacEapMatrix):
    """Every matrix case, HAC -> Diameter -> freeDiameterd -> mip6-aaa-gw -> FreeRADIUS."""


def test_hac_connects_to_its_diameter_peer_set_up_by_flags(tmp_path, freeradius):
    ca = pki.make_ca(tmp_path, "diameter-ca")
    gateway = pki.make_cert(tmp_path, ca, "gw", dns_names=(GW_HOST,))
    own = pki.make_cert(tmp_path, ca, "hac-diameter", dns_names=(HAC_HOST,), client=True)
    port = free_port()
    flags = ["--aaa-backend", "diameter", "--diameter-origin-host", HAC_HOST,
             "--diameter-origin-realm", HAC_REALM, "--diameter-realm", GW_REALM,
             "--diameter-peer", f"{GW_HOST}=127.0.0.1:{port}",
             "--diameter-ca", str(ca.cert_path), "--diameter-cert", str(own.cert_path),
             "--diameter-key", str(own.key_path)]
    config = {**TEST_CONFIG, "diameter": {"watchdog": 6.0}}
    with gateway_process(tmp_path, freeradius, "--origin-host", GW_HOST,
                         "--listen", f"127.0.0.1:{port}", "--cert", str(gateway.cert_path),
                         "--key", str(gateway.key_path), "--peer-ca", str(ca.cert_path)), \
            HacProcess(make_setup(Path(tmp_path) / "hac"), config=config,
                       extra_args=flags) as process:
        wait_until_routed(process, freeradius)
        case = Case("mschapv2")
        result, peer = bootstrap(process, "mschapv2", case.credentials(freeradius))
        with pytest.raises(BootstrapFailed) as caught:
            bootstrap(process, "mschapv2", case.wrong_password(freeradius))
    assert len(peer.msk) == interop_report.msk_length(case) and result.sa.spi
    assert (caught.value.reason, caught.value.status) == ("status", 401)


def test_no_open_diameter_peer_gives_503_with_retry_after(tmp_path):
    ca = pki.make_ca(tmp_path, "diameter-ca")
    own = pki.make_cert(tmp_path, ca, "hac-diameter", dns_names=(HAC_HOST,))
    config = {**TEST_CONFIG, "auth": {"methods": ["eap"]}, "aaa": {"backend": "diameter"},
              "diameter": diameter_settings(ca, own, listen=f"127.0.0.1:{free_port()}",
                                            retry_after=120)}
    with EapOnlyHac(make_setup(tmp_path / "hac"), config=config) as process:
        asked = datetime.datetime.now(datetime.timezone.utc)
        with pytest.raises(BootstrapFailed) as caught:
            bootstrap(process, "md5", EapCredentials("mn1@example.org", "password"))
    assert (caught.value.reason, caught.value.status) == ("status", 503)
    assert caught.value.retry_after - asked > datetime.timedelta(seconds=100)
