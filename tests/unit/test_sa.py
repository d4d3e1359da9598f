from datetime import datetime, timezone

from aaa_mip6.errors import InvalidInput, IntegrityError, ReplayError
from aaa_mip6.sa import SecurityAssociation


def test_sa_repr_hides_keys():
    sa = SecurityAssociation(
        spi=7, suite="AES_128_CBC_SHA", mn_to_ha_ikey=b"\xaa" * 20, ha_to_mn_ikey=b"\xbb" * 20,
        mn_to_ha_ekey=b"\xcc" * 16, ha_to_mn_ekey=b"\xdd" * 16,
        validity_end=datetime(2030, 1, 1, tzinfo=timezone.utc), scope=1, mn_id="mn@example.org",
    )
    text = repr(sa)
    assert "spi=7" in text
    for key in (b"\xaa", b"\xbb", b"\xcc", b"\xdd"):
        assert key.hex() * 4 not in text and repr(key * 4)[2:-1] not in text


def test_error_reasons_are_distinct_for_drop_counters():
    assert IntegrityError("x").reason == "bad-icv"
    assert ReplayError("x").reason == "replay"
    assert InvalidInput("x", reason="unknown-spi").reason == "unknown-spi"
    assert issubclass(IntegrityError, InvalidInput)
