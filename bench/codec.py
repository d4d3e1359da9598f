"""Codec benchmarks: one JSON line per figure on stdout.

A machine's speed changes every absolute number, so the headline figures are
ratios against a baseline timed in the same run, interleaved with the code under
test so that load from other processes hits both alike. Absolute rates are
printed too, for capacity planning on the machine at hand.

Run: ``.venv/bin/python bench/codec.py`` (``make bench`` runs every bench script).
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import json
import os
import sys
import time
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# This checkout's code, not whichever tree the venv has installed (as the other benches).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aaa_mip6 import authenticator, messages  # noqa: E402
from aaa_mip6.messages import HacDone, Provision  # noqa: E402
from aaa_mip6.iana import MIPV6TLS_PORT, NEXT_HEADER_IPV6  # noqa: E402
from aaa_mip6.sa import SCOPE_ALL, Bootstrap, HomeAgent, SecurityAssociation  # noqa: E402
from aaa_mip6.suites import (  # noqa: E402
    AES_128_CBC, HMAC_SHA1_96, NULL, SUITES, TRIPLE_DES_CBC, new_keys)
from aaa_mip6.transform import PType, SaEndpoint  # noqa: E402

PAYLOAD_LENGTH = 1400  # a tunneled packet that still fits a 1500-octet path
TARGET_RATIO = {"AES_128_CBC_SHA": 1.5}
CALLS_PER_ROUND = 1000
ROUNDS = 7


def _seconds_per_call(function, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def _interleaved_best(candidate, baseline) -> tuple[float, float]:
    """Best seconds per call of each, timed in alternating rounds."""
    candidate_best = baseline_best = float("inf")
    for _ in range(ROUNDS):
        candidate_best = min(candidate_best, _seconds_per_call(candidate, CALLS_PER_ROUND))
        baseline_best = min(baseline_best, _seconds_per_call(baseline, CALLS_PER_ROUND))
    return candidate_best, baseline_best


_BARE_CIPHER = {AES_128_CBC: algorithms.AES, TRIPLE_DES_CBC: TripleDES}


def _bare_cbc(algorithm, key: bytes, iv: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithm(key), modes.CBC(iv))
    context = cipher.decryptor() if decrypt else cipher.encryptor()
    return context.update(data) + context.finalize()


def _bare_mac(suite, key: bytes, data: bytes) -> bytes:
    """The MAC as a direct `cryptography` call: HMAC-SHA1, or for AES-XCBC-MAC (which
    `cryptography` lacks) its core, one AES-CBC pass with a zero IV."""
    if suite.integrity is HMAC_SHA1_96:
        mac = hmac.HMAC(key, hashes.SHA1())
        mac.update(data)
        return mac.finalize()[:12]
    padded = data + bytes(-len(data) % 16)
    return _bare_cbc(algorithms.AES, key, bytes(16), padded)[-16:][:12]


def _baseline(suite, ikey: bytes, ekey: bytes):
    """Encrypt+MAC then MAC-verify+decrypt of the same octets, no framing."""
    block = suite.block_size
    data = os.urandom(PAYLOAD_LENGTH + 2 + -(PAYLOAD_LENGTH + 2) % block)
    cipher = _BARE_CIPHER.get(suite.confidentiality)
    iv = os.urandom(suite.iv_length)

    def round_trip() -> None:
        sealed = data if cipher is None else _bare_cbc(cipher, ekey, iv, data)
        tag = _bare_mac(suite, ikey, sealed)
        if not constant_time.bytes_eq(_bare_mac(suite, ikey, sealed), tag):
            raise AssertionError("baseline MAC mismatch")
        if cipher is not None:
            _bare_cbc(cipher, ekey, iv, sealed, decrypt=True)

    return round_trip


def _baseline_name(suite) -> str:
    cipher = ""
    if suite.confidentiality is not NULL:
        cipher = f"{suite.confidentiality.name} encrypt+decrypt, "
    mac = "HMAC-SHA1" if suite.integrity is HMAC_SHA1_96 else "AES-128-CBC pass (XCBC core)"
    return f"cryptography: {cipher}{mac} tag+verify"


def transform_figures():
    """Protect (MN) + unprotect (HA) of a 1400-octet tunneled packet, per suite."""
    payload = os.urandom(PAYLOAD_LENGTH)
    for name, suite in SUITES.items():
        keys = new_keys(suite)
        sa = SecurityAssociation(
            spi=0x1234, suite=name, **dataclasses.asdict(keys),
            validity_end=datetime(2099, 1, 1, tzinfo=timezone.utc), scope=SCOPE_ALL,
            mn_id="bench@example.org",
        )
        mn, ha = SaEndpoint(sa, "mn"), SaEndpoint(sa, "ha")

        def candidate() -> None:
            ha.unprotect(mn.protect(PType.ENCRYPTED_IP, payload, NEXT_HEADER_IPV6))

        baseline = _baseline(suite, keys.mn_to_ha_ikey, keys.mn_to_ha_ekey)
        ours, bare = _interleaved_best(candidate, baseline)
        ratio = {
            "figure": "transform_vs_bare_cryptography",
            "suite": name,
            "payload_octets": PAYLOAD_LENGTH,
            "value": round(ours / bare, 3),
            "unit": "ratio",
            "baseline": _baseline_name(suite),
        }
        if name in TARGET_RATIO:
            ratio["target"] = TARGET_RATIO[name]
        yield ratio
        yield {
            "figure": "transform_packets_per_second",
            "suite": name,
            "payload_octets": PAYLOAD_LENGTH,
            "value": round(1 / ours),
            "unit": "protect+unprotect/s",
            "baseline_value": round(1 / bare),
        }


def _full_hac_done() -> HacDone:
    """A PSK HAC Done carrying every SA and bootstrapping header RFC 6618 defines."""
    suite = SUITES["AES_128_CBC_SHA"]
    keys = new_keys(suite)
    bootstrap = Bootstrap(
        home_agent=HomeAgent(IPv6Address("2001:db8::1"), IPv4Address("192.0.2.1"), MIPV6TLS_PORT),
        home_address6=IPv6Address("2001:db8::1:2"), home_address4=IPv4Address("192.0.2.77"),
        home_prefix6=IPv6Network("2001:db8::/64"), home_prefix4=IPv4Network("192.0.2.0/24"),
        dns6=IPv6Address("2001:db8::53"), dns4=IPv4Address("192.0.2.53"),
    )
    provision = Provision(
        spi=123456, suite=suite.code, scope=SCOPE_ALL,
        validity_end=datetime(2030, 1, 1, tzinfo=timezone.utc), bootstrap=bootstrap,
        **dataclasses.asdict(keys),
    )
    return HacDone(status=200, mn_rand=os.urandom(32), hac_rand=os.urandom(32),
                   provision=provision)


def done_message_figures():
    """Encode (HAC) + decode and verify (MN) of a full HAC Done message.

    Baseline: the stdlib's HTTP header parser (``http.client.parse_headers``, no
    value checks) on the same octets plus the two HMAC-SHA256 computations the
    message needs anyway — what a minimal, unvalidated codec would cost.
    """
    message = _full_hac_done()
    psk, binding = os.urandom(32), os.urandom(32)
    content = messages.encode(message, psk, binding)
    signed = content[: content.rindex(b"auth:")]

    def candidate() -> None:
        received = messages.decode_response(messages.encode(message, psk, binding), HacDone)
        received.verify(psk, binding)

    def baseline() -> None:
        http.client.parse_headers(io.BytesIO(content))
        authenticator.compute(psk, authenticator.Sender.HAC, signed, binding)
        authenticator.compute(psk, authenticator.Sender.HAC, signed, binding)

    ours, bare = _interleaved_best(candidate, baseline)
    yield {
        "figure": "hac_done_encode_decode_per_second",
        "value": round(1 / ours),
        "unit": "messages/s",
        "content_octets": len(content),
    }
    yield {
        "figure": "hac_done_codec_vs_unvalidated_parse",
        "value": round(ours / bare, 3),
        "unit": "ratio",
        "baseline": "http.client.parse_headers + 2x HMAC-SHA256 on the same octets",
    }


# Every figure producer, in print order: a zero-argument callable yielding
# JSON-ready dicts.
FIGURES = [transform_figures, done_message_figures]


def main() -> int:
    for producer in FIGURES:
        for figure in producer():
            print(json.dumps(figure), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
