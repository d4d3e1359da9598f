"""Milenage and GSM-Milenage against every 3GPP conformance test set, and the AuC/USIM
round trips built on them (AUTN check, AUTS resynchronisation)."""

import pytest
from hypothesis import given, strategies as st

from aaa_mip6.milenage import Milenage, MilenageError, gsm_from_vector, opc_from_op

from .milenage_vectors import GSM_MILENAGE, MILENAGE


def _bytes(*values):
    return [bytes.fromhex(value) for value in values]


@pytest.mark.parametrize("row", MILENAGE, ids=[f"35.208-set{n}" for n in range(1, 21)])
def test_milenage_test_sets(row):
    k, rand, sqn, amf, op, opc, f1, f1s, f2, f3, f4, f5, f5s = _bytes(*row)
    assert opc_from_op(k, op) == opc
    subscriber = Milenage(k, opc)
    assert subscriber.f1(rand, sqn, amf) == (f1, f1s)
    vector = subscriber.f2345(rand)
    assert (vector.res, vector.ck, vector.ik, vector.ak, vector.ak_resync) == (f2, f3, f4, f5, f5s)


@pytest.mark.parametrize("row", GSM_MILENAGE, ids=[f"55.205-set{n}" for n in range(1, 20)])
def test_gsm_milenage_test_sets(row):
    ki, rand, opc, sres1, _sres2, kc = _bytes(*row)
    assert Milenage(ki, opc).gsm_triplet(rand) == (sres1, kc)


def test_autn_from_the_auc_verifies_on_the_usim_and_returns_its_sqn():
    k, rand, sqn, amf, _, opc, f1, *_ = _bytes(*MILENAGE[2])
    subscriber = Milenage(k, opc)
    autn, network = subscriber.generate(rand, sqn, amf)
    assert autn[8:] == f1 and autn[6:8] == amf
    assert subscriber.check_autn(rand, autn) == (sqn, network)


@pytest.mark.parametrize("octet", range(16))
def test_a_changed_autn_octet_fails_the_mac_or_changes_the_sqn(octet):
    k, rand, sqn, amf, _, opc, *_ = _bytes(*MILENAGE[0])
    subscriber = Milenage(k, opc)
    autn, _ = subscriber.generate(rand, sqn, amf)
    forged = bytearray(autn)
    forged[octet] ^= 0x01
    with pytest.raises(MilenageError, match="MAC-A"):
        subscriber.check_autn(rand, bytes(forged))


def test_another_subscriber_key_fails_the_autn_check():
    k, rand, sqn, amf, _, opc, *_ = _bytes(*MILENAGE[0])
    autn, _ = Milenage(k, opc).generate(rand, sqn, amf)
    with pytest.raises(MilenageError):
        Milenage(bytes(16), opc).check_autn(rand, autn)


@given(sqn=st.binary(min_size=6, max_size=6), rand=st.binary(min_size=16, max_size=16))
def test_auts_carries_the_usim_sqn_to_the_auc(sqn, rand):
    k, _, _, _, _, opc, *_ = _bytes(*MILENAGE[5])
    subscriber = Milenage(k, opc)
    assert subscriber.sqn_from_auts(rand, subscriber.auts(rand, sqn)) == sqn


def test_a_forged_auts_is_refused():
    k, rand, sqn, _, _, opc, *_ = _bytes(*MILENAGE[5])
    subscriber = Milenage(k, opc)
    auts = bytearray(subscriber.auts(rand, sqn))
    auts[-1] ^= 0x80
    with pytest.raises(MilenageError, match="MAC-S"):
        subscriber.sqn_from_auts(rand, bytes(auts))


@pytest.mark.parametrize("k, opc", [(bytes(15), bytes(16)), (bytes(16), bytes(17))])
def test_wrong_sizes_name_the_field(k, opc):
    with pytest.raises(MilenageError, match="K must be 16|OPc must be 16"):
        Milenage(k, opc)


def test_vector_repr_hides_the_keys():
    k, rand, *_ = _bytes(*MILENAGE[0][:2])
    vector = Milenage(k, bytes(16)).f2345(rand)
    assert vector.ck.hex() not in repr(vector) and "hidden" in repr(vector)


def test_gsm_from_vector_is_c2_and_c3():
    k, rand, _, _, _, opc, *_ = _bytes(*MILENAGE[0])
    vector = Milenage(k, opc).f2345(rand)
    sres, kc = gsm_from_vector(vector)
    assert sres == bytes(a ^ b for a, b in zip(vector.res[:4], vector.res[4:]))
    assert len(kc) == 8
