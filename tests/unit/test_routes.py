"""aaa_mip6.twisted.routes: the kernel's source address towards a remote one."""

import ipaddress

import pytest

from aaa_mip6.twisted.routes import source_address_towards


def test_source_address_towards_loopback():
    assert source_address_towards(ipaddress.ip_address("127.0.0.1")) == \
        ipaddress.ip_address("127.0.0.1")


def test_no_route_raises_os_error():
    with pytest.raises(OSError):  # link-local multicast without an interface: no route
        source_address_towards(ipaddress.ip_address("ff02::1"))
