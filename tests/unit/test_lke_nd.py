"""The LKE Neighbor Discovery codecs and the LKE cryptography (aaa_mip6.lke.nd, .crypto)."""

import hmac
from dataclasses import replace
from hashlib import sha1
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6.errors import LkeAuthenticationError, LkeError, LkeKeyExchangeError, LkePublicKeyError
from aaa_mip6.lke import crypto
from aaa_mip6.lke.codepoints import DRAFT, EXPERIMENTAL
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
    RouterSolicitation,
    UnknownNdOption,
    decode_nd,
    solicited_node,
    verify_dad,
)

from .lke_harness import ar_key


ip6 = st.ip_addresses(v=6)
codes = st.sampled_from([EXPERIMENTAL, DRAFT])
kbms = st.binary(min_size=16, max_size=16)
lladdrs = st.binary(min_size=6, max_size=6)
prefixes = st.builds(lambda a, n: IPv6Network((a, n), strict=False), ip6, st.integers(0, 128))
prefix_options = st.builds(PrefixInformation, prefixes, st.integers(0, 2**32 - 1),
                           st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
unknown = st.builds(lambda t, n: UnknownNdOption(t, bytes(8 * n + 6)),
                    st.integers(9, 200), st.integers(0, 3))
dad_options = st.builds(DadAuthentication, st.integers(0, 2**32 - 1), ip6)


def _capability():
    return LkeCapability(7200, crypto.encode_public_key(ar_key()))


advertisements = st.builds(
    lambda lifetime, flags, options, with_key: RouterAdvertisement(
        lifetime, flags, options=tuple(options) + ((_capability(),) if with_key else ())),
    st.integers(0, 0xFFFF), st.sampled_from([0x20, 0xE0, 0]),
    st.lists(st.one_of(prefix_options, lladdrs.map(lambda a: LinkLayerAddress(1, a)), unknown),
             max_size=4), st.booleans())


@given(advertisements, ip6, ip6, codes)
def test_router_advertisements_round_trip(advertisement, source, destination, code_points):
    data = advertisement.encode(source, destination, code_points)
    assert decode_nd(data, source, destination, code_points).message == advertisement


@given(ip6, st.lists(st.one_of(lladdrs.map(lambda a: LinkLayerAddress(2, a)), unknown),
                     max_size=3), dad_options, kbms, codes, st.booleans())
def test_dad_messages_round_trip_and_verify(target, options, dad, kbm, code_points, solicit):
    message = (NeighborSolicitation(target, (*options, dad)) if solicit
               else NeighborAdvertisement(target, options=(*options, dad)))
    source = UNSPECIFIED if solicit else target
    destination = solicited_node(target) if solicit else ALL_NODES
    data = message.encode(source, destination, code_points, kbm=kbm)
    decoded = decode_nd(data, source, destination, code_points)
    assert verify_dad(decoded, kbm).nonce == dad.nonce
    signed = decoded.message.option(DadAuthentication)
    assert replace(decoded.message, options=(*options, replace(signed, hmac=dad.hmac))) == message


@given(ip6, dad_options, kbms, st.data())
def test_every_changed_octet_of_a_dad_reply_is_refused(target, dad, kbm, data):
    encoded = bytearray(NeighborAdvertisement(target, options=(dad,)).encode(
        target, ALL_NODES, kbm=kbm))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(LkeError):
        verify_dad(decode_nd(bytes(encoded), target, ALL_NODES), kbm)


@given(st.binary(max_size=200), ip6, ip6, codes)
def test_arbitrary_octets_raise_only_lke_error(data, source, destination, code_points):
    try:
        decode_nd(data, source, destination, code_points)
    except LkeError:
        pass


def test_a_dad_option_needs_kbm_and_a_plain_message_does_not_verify():
    target = IPv6Address("2001:db8::5")
    with pytest.raises(ValueError):
        NeighborSolicitation(target, (DadAuthentication(1, target),)).encode(
            UNSPECIFIED, solicited_node(target))
    plain = NeighborAdvertisement(target).encode(target, ALL_NODES)
    with pytest.raises(LkeAuthenticationError):
        verify_dad(decode_nd(plain, target, ALL_NODES), bytes(16))


def test_a_zero_length_option_and_two_dad_options_are_malformed():
    target = IPv6Address("2001:db8::5")
    zero = bytearray(NeighborAdvertisement(target, options=(LinkLayerAddress(2, bytes(6)),))
                     .encode(target, ALL_NODES))
    zero[25] = 0
    with pytest.raises(LkeError):
        decode_nd(bytes(zero), target, ALL_NODES)
    two = NeighborAdvertisement(target, options=(UnknownNdOption(254, bytes(46)),) * 2)
    with pytest.raises(LkeError, match="more than one DAD"):
        decode_nd(two.encode(target, ALL_NODES, kbm=bytes(16)), target, ALL_NODES)


def test_a_router_solicitation_round_trips():
    source = IPv6Address("fe80::5")
    message = RouterSolicitation((LinkLayerAddress(1, bytes(6)),))
    assert decode_nd(message.encode(source, IPv6Address("ff02::2")), source,
                     IPv6Address("ff02::2")).message == message


def test_the_capability_key_is_one_der_element_then_zero_padding():
    capability = _capability()
    value = capability.value(EXPERIMENTAL)
    assert LkeCapability.decode(value + bytes(6)) == capability
    with pytest.raises(LkeError):
        LkeCapability.decode(value + b"\x01")
    with pytest.raises(LkeError):
        LkeCapability.decode(value[:-1])
    with pytest.raises(ValueError):
        LkeCapability(0, capability.public_key)


def test_known_answer_dad_reply_and_what_its_hmac_covers():
    kbm, target, ar = bytes(range(16)), IPv6Address("2001:db8:1::5"), IPv6Address("2001:db8:1::1")
    message = NeighborAdvertisement(target, options=(
        LinkLayerAddress(2, bytes.fromhex("020000000005")), DadAuthentication(0x01020304, ar)))
    data = message.encode(target, ALL_NODES, kbm=kbm)
    assert data.hex() == (
        "8800b0b32000000020010db80001000000000000000000050201020000000005fe060000"
        "0102030420010db800010000000000000000000140d29769fb5320151a780802f5fa9a60"
        "d5439cb200000000")
    # HMAC-SHA1(Kbm, source | destination | the NA with Checksum zero, HMAC octets left out)
    covered = (target.packed + ALL_NODES.packed + data[:2] + b"\x00\x00" + data[4:56]
               + data[76:])
    assert data[56:76] == hmac.new(kbm, covered, sha1).digest()


# ------------------------------------------------------------------ crypto


def test_kbm_wrapping_round_trips_under_the_care_of_label():
    key, care_of = ar_key(), IPv6Address("2001:db8:1::5")
    wrapped = crypto.wrap_kbm(key.public_key(), bytes(range(16)), care_of)
    assert len(wrapped) == 256
    assert crypto.unwrap_kbm(key, wrapped, care_of) == bytes(range(16))
    with pytest.raises(LkeKeyExchangeError):
        crypto.unwrap_kbm(key, wrapped, IPv6Address("2001:db8:1::6"))
    with pytest.raises(LkeKeyExchangeError):
        crypto.unwrap_kbm(key, bytes(256), care_of)


def test_public_keys_are_spki_der_of_accepted_sizes():
    der = crypto.encode_public_key(ar_key())
    assert crypto.decode_public_key(der).key_size == 2048
    with pytest.raises(LkePublicKeyError):
        crypto.decode_public_key(der, min_bits=3072)
    with pytest.raises(LkePublicKeyError):
        crypto.decode_public_key(der[:-1])
    small = crypto.encode_public_key(crypto.generate_key(1024))
    with pytest.raises(LkePublicKeyError):
        crypto.decode_public_key(small)
    assert crypto.decode_public_key(small, min_bits=1024).key_size == 1024


def test_private_keys_round_trip_as_pem():
    key = ar_key()
    assert crypto.decode_private_key(crypto.encode_private_key(key)).private_numbers() == \
        key.private_numbers()
    with pytest.raises(ValueError):
        crypto.decode_private_key(b"not a key")


def test_known_answer_hmac_sha1_rfc_2202_case_2():
    assert crypto.hmac_sha1(b"Jefe", b"what do ya want for nothing?").hex() == \
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
