"""lab.servers.freediameter.relay_config: the agent's extensions and whitelist lines."""

from __future__ import annotations

from aaa_mip6 import pki
from lab.servers.freediameter import EXTENSION_DIR, PeerSpec, relay_config


def test_agent_config_loads_extensions_and_the_whitelist(tmp_path):
    ca = pki.make_ca(tmp_path, "ca")
    own = pki.make_cert(tmp_path, ca, "relay", dns_names=("relay.example.com",),
                        client=True, server=True)
    whitelist = tmp_path / "acl_wl.conf"
    text = relay_config(own, ca, [PeerSpec("gw1.example.net", 4000)], 3868, 5658,
                        extensions=(EXTENSION_DIR / "rt_load_balance.fdx",),
                        whitelist=whitelist)
    lines = text.splitlines()
    assert f'LoadExtension = "{EXTENSION_DIR}/rt_load_balance.fdx";' in lines
    assert f'LoadExtension = "{EXTENSION_DIR}/acl_wl.fdx" : "{whitelist}";' in lines
    assert "SecPort = 5658;" in lines
    assert any(line.startswith('ConnectPeer = "gw1.example.net"') and "Port = 4000;" in line
               for line in lines)


def test_relay_config_without_agent_options_loads_nothing(tmp_path):
    ca = pki.make_ca(tmp_path, "ca")
    own = pki.make_cert(tmp_path, ca, "relay", client=True)
    assert "LoadExtension" not in relay_config(own, ca, [], 3868, 5658)
