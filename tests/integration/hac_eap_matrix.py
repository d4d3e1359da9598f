"""The EAP checks through a running ``mip6-hac``, for any path behind it (RADIUS, Diameter).

:class:`HacEapMatrix` holds the interop matrix's cases as test methods; a test module
subclasses it (``class TestHacRadius(HacEapMatrix)``) and provides the fixtures it
names. :func:`bootstrap` runs one EAP bootstrap of the MN through a HAC.
"""

from __future__ import annotations

import ipaddress

import pytest

from aaa_mip6.twisted.tls import ClientTLS
from lab.reactors import run_on_fresh_reactor
from lab.servers.hac import HOA_PREFIX, HacProcess
from mn import client
from mn.bootstrap import BootstrapFailed, EapBootstrap
from mn.eap import EapCredentials
from mn.eap.peer import EapPeer
from tests.integration import interop_report
from tests.integration.interop_report import (
    ACCEPT_CASES,
    UNKNOWN_CA_CASES,
    WRONG_PASSWORD_CASES,
    Case,
)


def bootstrap(hac: HacProcess, method: str, creds: EapCredentials) -> tuple:
    """(result, peer) of one EAP bootstrap through ``hac``."""
    peer = EapPeer(method, creds)
    machine = EapBootstrap(creds.identity, peer)

    async def scenario(reactor):
        tls = ClientTLS(hac.host, hac.setup.ca.cert_path)
        return await client.bootstrap(reactor, tls, hac.port, machine)

    return run_on_fresh_reactor(scenario), peer


def _ids(cases: list[Case]) -> list[str]:
    return [case.test_id for case in cases]


class HacEapMatrix:
    """The matrix cases through a running HAC.

    A module using it provides the fixtures ``hac`` (a running :class:`HacProcess`)
    and ``eap_server`` (the FreeRadius or Hostapd at the far end).
    """

    @staticmethod
    def run(hac: HacProcess, eap_server, case: Case, creds: EapCredentials) -> tuple:
        reason = interop_report.unsupported(eap_server, case)
        if reason is not None:
            pytest.skip(reason)
        return bootstrap(hac, case.method, creds)

    @pytest.mark.parametrize("case", ACCEPT_CASES, ids=_ids(ACCEPT_CASES))
    def test_accept(self, hac, eap_server, case):
        creds = case.credentials(eap_server)
        result, peer = self.run(hac, eap_server, case, creds)
        assert peer.success and peer.method_done
        if case.tls:
            assert peer.method.engine.tls_version == f"TLSv{case.tls}"
        # the HAC verified the Done auth with the AAA's MSK: both ends hold this one
        assert (None if peer.msk is None else len(peer.msk)) == interop_report.msk_length(case)
        sa, boot = result
        assert sa.mn_id == creds.identity and sa.home_address6 == boot.home_address6
        framed6 = getattr(eap_server, "framed_ipv6_address", None)
        if framed6 is None:  # hostapd sends no home address: the HAC's pool gives one
            assert boot.home_address6 in ipaddress.IPv6Network(HOA_PREFIX)
        else:
            assert boot.home_address6 == ipaddress.IPv6Address(framed6)
            assert boot.home_address4 == ipaddress.IPv4Address(eap_server.framed_ip_address)
            assert boot.home_prefix6 == eap_server.home_link_prefix  # RFC 5447, not the pool

    @pytest.mark.parametrize("case", WRONG_PASSWORD_CASES, ids=_ids(WRONG_PASSWORD_CASES))
    def test_wrong_password_gives_401(self, hac, eap_server, case):
        with pytest.raises(BootstrapFailed) as caught:
            self.run(hac, eap_server, case, case.wrong_password(eap_server))
        if case.method != "pwd":
            assert (caught.value.reason, caught.value.status) == ("status", 401)
            return
        assert caught.value.reason == "bad-auth"  # RFC 5931: the peer never sends its Confirm
        result, _ = self.run(hac, eap_server, case, case.credentials(eap_server))
        assert result.sa.spi  # and the HAC serves the next MN

    @pytest.mark.parametrize("case", UNKNOWN_CA_CASES, ids=_ids(UNKNOWN_CA_CASES))
    def test_unknown_client_ca_gives_401(self, hac, eap_server, case, tmp_path):
        foreign = interop_report.make_foreign_client(tmp_path)
        with pytest.raises(BootstrapFailed) as caught:
            self.run(hac, eap_server, case, case.foreign_client(eap_server, foreign))
        assert (caught.value.reason, caught.value.status) == ("status", 401)
