import hashlib
import hmac
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from aaa_mip6 import authenticator, pki
from aaa_mip6.authenticator import Sender
from aaa_mip6.errors import AuthenticatorError


@pytest.fixture(scope="module")
def rsa_ca(tmp_path_factory):
    return pki.make_ca(tmp_path_factory.mktemp("ca"), key_type="rsa")


@pytest.mark.parametrize("algorithm, digest", [
    (hashes.SHA256(), hashlib.sha256),
    (hashes.SHA384(), hashlib.sha384),
    (hashes.SHA512(), hashlib.sha512),
])
def test_channel_binding_hashes_the_der_with_the_signature_hash(tmp_path, rsa_ca, algorithm,
                                                                digest):
    cert = pki.make_cert(tmp_path, rsa_ca, "hac", dns_names=("hac.example",),
                         hash_algorithm=algorithm)
    assert authenticator.channel_binding(cert.cert_der) == digest(cert.cert_der).digest()


def test_channel_binding_of_an_ecdsa_certificate(tmp_path):
    ca = pki.make_ca(tmp_path)
    cert = pki.make_cert(tmp_path, ca, "hac", dns_names=("hac.example",))
    assert authenticator.channel_binding(cert.cert_der) == hashlib.sha256(cert.cert_der).digest()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_channel_binding_uses_sha256_for_a_sha1_signature(tmp_path):
    # cryptography no longer signs with SHA-1, so aaa_mip6.pki cannot make this one.
    der_path = tmp_path / "sha1.der"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "k.pem"), "-out", str(der_path), "-outform", "DER",
         "-sha1", "-subj", "/CN=hac", "-days", "1"],
        check=True, capture_output=True,
    )
    der = der_path.read_bytes()
    assert isinstance(x509.load_der_x509_certificate(der).signature_hash_algorithm, hashes.SHA1)
    assert authenticator.channel_binding(der) == hashlib.sha256(der).digest()


def test_channel_binding_is_undefined_without_a_signature_hash():
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hac")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .sign(key, None)
    )
    with pytest.raises(AuthenticatorError) as caught:
        authenticator.channel_binding(cert.public_bytes(serialization.Encoding.DER))
    assert caught.value.reason == "channel-binding"


@given(st.binary(max_size=200))
def test_channel_binding_of_garbage_only_raises_authenticator_error(der):
    try:
        authenticator.channel_binding(der)
    except AuthenticatorError:
        pass


KEY = b"psk-0123456789"
SIGNED = b"mn-rand:" + b"00" * 32 + b"\r\n"
CB = hashlib.sha256(b"certificate").digest()


def test_compute_is_hmac_sha256_over_label_message_and_binding():
    assert authenticator.compute(KEY, Sender.MN, SIGNED, CB) == hmac.new(
        KEY, b"MN" + SIGNED + CB, hashlib.sha256).digest()
    assert authenticator.compute(KEY, Sender.HAC, SIGNED, CB) == hmac.new(
        KEY, b"HAC" + SIGNED + CB, hashlib.sha256).digest()


def test_labels_separate_the_directions_and_draft01_has_none():
    mn = authenticator.compute(KEY, Sender.MN, SIGNED, CB)
    hac = authenticator.compute(KEY, Sender.HAC, SIGNED, CB)
    draft = authenticator.compute(KEY, Sender.MN, SIGNED, CB, draft01=True)
    assert len({mn, hac, draft}) == 3
    assert draft == authenticator.compute(KEY, Sender.HAC, SIGNED, CB, draft01=True)
    assert draft == hmac.new(KEY, SIGNED + CB, hashlib.sha256).digest()


def test_eap_key_is_the_octet_one():
    assert authenticator.EAP_KEY == b"\x31"


def test_verify_accepts_the_right_auth():
    auth = authenticator.compute(KEY, Sender.HAC, SIGNED, CB)
    authenticator.verify(KEY, Sender.HAC, SIGNED, CB, auth)
    authenticator.verify(KEY, Sender.HAC, SIGNED, CB,
                         authenticator.compute(KEY, Sender.HAC, SIGNED, CB, draft01=True),
                         draft01=True)


@pytest.mark.parametrize("change", ["key", "sender", "signed", "binding", "draft01", "short"])
def test_verify_rejects_any_difference(change):
    auth = authenticator.compute(KEY, Sender.MN, SIGNED, CB)
    args = {"key": KEY, "sender": Sender.MN, "signed_octets": SIGNED, "channel_binding": CB,
            "received": auth}
    if change == "key":
        args["key"] = KEY + b"x"
    elif change == "sender":
        args["sender"] = Sender.HAC
    elif change == "signed":
        args["signed_octets"] = SIGNED.replace(b"00", b"01", 1)
    elif change == "binding":
        args["channel_binding"] = hashlib.sha256(b"another certificate").digest()
    elif change == "draft01":
        args["draft01"] = True
    else:
        args["received"] = auth[:16]
    with pytest.raises(AuthenticatorError) as caught:
        authenticator.verify(**args)
    assert caught.value.reason == "bad-auth"
    assert KEY.decode() not in str(caught.value)


@pytest.mark.parametrize("key, binding", [(b"", CB), (KEY, b"")])
def test_empty_key_or_binding_is_refused(key, binding):
    with pytest.raises(ValueError):
        authenticator.compute(key, Sender.MN, SIGNED, binding)
