"""RADIUS accounting (RFC 2866): the Accounting-Request codec and the client's account call."""

import hashlib
import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from twisted.internet import defer
from twisted.trial import unittest

from aaa_mip6.aaa import AaaError
from aaa_mip6.errors import AaaLimitError
from aaa_mip6.radius import codec
from aaa_mip6.radius.codec import AccountingRecord, AcctStatus, RadiusError, TerminateCause
from aaa_mip6.radius.servers import RadiusServer, RetryPolicy
from aaa_mip6.twisted.radius_client import RadiusClient
from tests.unit.radius_fakes import (DICTIONARY, NAS, SECRET, FakeRadiusServer, VirtualUdpNetwork,
                                     sign_reply)

FAST = RetryPolicy(initial_timeout=0.05, max_timeout=0.1, transmissions=2, jitter=0,
                   dead_after=1, hold_down=30, probe=False)
STOP = AccountingRecord(AcctStatus.STOP, "1a2b3c4d", "mn1@example.org", 1_800_000_000,
                        ipaddress.IPv6Address("2001:db8:1::10"),
                        ipaddress.IPv4Address("198.51.100.7"), 3600, TerminateCause.ADMIN_RESET)
CODEC = codec.RadiusCodec(SECRET, NAS, DICTIONARY)


def attribute(kind: int, value: bytes) -> bytes:
    return bytes([kind, 2 + len(value)]) + value


def test_accounting_request_known_answer():
    """Every octet, and the Request Authenticator computed here with hashlib (RFC 2866 §3)."""
    sent = CODEC.encode_accounting_request(9, STOP)
    attributes = b"".join([
        attribute(40, struct.pack("!I", 2)), attribute(44, b"1a2b3c4d"),
        attribute(1, b"mn1@example.org"), attribute(32, b"hac.example.org"),
        attribute(4, bytes([127, 0, 0, 1])), attribute(61, struct.pack("!I", 5)),
        attribute(168, ipaddress.IPv6Address("2001:db8:1::10").packed),
        attribute(8, bytes([198, 51, 100, 7])), attribute(55, struct.pack("!I", 1_800_000_000)),
        attribute(46, struct.pack("!I", 3600)), attribute(49, struct.pack("!I", 6))])
    header = struct.pack("!BBH", 4, 9, 20 + len(attributes))
    authenticator = hashlib.md5(header + bytes(16) + attributes + SECRET).digest()
    assert sent.datagram == header + authenticator + attributes


def test_start_has_no_stop_attributes():
    start = AccountingRecord(AcctStatus.START, "00000101", "mn1", 1_800_000_000)
    decoded = pyrad_packet.AcctPacket(packet=CODEC.encode_accounting_request(1, start).datagram,
                                      secret=SECRET, dict=DICTIONARY)
    assert decoded["Acct-Status-Type"] == ["Start"]
    assert decoded["Acct-Session-Id"] == ["00000101"]
    assert not {46, 49, 8, 168} & set(decoded.keys())
    assert decoded.VerifyAcctRequest()


@given(st.integers(0, 255), st.text(min_size=1, max_size=60), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.sampled_from(list(TerminateCause)))
def test_accounting_request_round_trips_through_pyrad(identifier, user, stamp, seconds, cause):
    record = AccountingRecord(AcctStatus.STOP, "abc", user, stamp, None, None, seconds, cause)
    datagram = CODEC.encode_accounting_request(identifier, record).datagram
    decoded = pyrad_packet.AcctPacket(packet=datagram, secret=SECRET, dict=DICTIONARY)
    assert decoded.VerifyAcctRequest()
    assert decoded.id == identifier
    assert decoded["User-Name"] == [user]
    assert decoded[46] == [struct.pack("!I", seconds)]
    assert decoded[55] == [struct.pack("!I", stamp)]
    assert decoded[49] == [struct.pack("!I", cause)]


def test_too_long_user_name_is_refused():
    CODEC.encode_accounting_request(1, AccountingRecord(AcctStatus.START, "1", "u" * 253, 0))
    with pytest.raises(AaaLimitError, match="User-Name of 254 octets exceeds 253"):
        CODEC.encode_accounting_request(1, AccountingRecord(AcctStatus.START, "1", "u" * 254, 0))


def response(sent, code=5, secret=SECRET, identifier=None):
    return sign_reply(code, sent.identifier if identifier is None else identifier,
                      sent.packet.authenticator, b"", secret, message_authenticator=False)


def test_genuine_accounting_response_verifies():
    sent = CODEC.encode_accounting_request(3, STOP)
    CODEC.check_accounting_response(sent, response(sent))


@pytest.mark.parametrize("change, reason", [
    (dict(secret=b"other"), "bad-authenticator"), (dict(code=2), "unexpected-code"),
    (dict(identifier=4), "unknown-id")])
def test_forged_or_wrong_accounting_response_is_refused(change, reason):
    sent = CODEC.encode_accounting_request(3, STOP)
    with pytest.raises(RadiusError) as caught:
        CODEC.check_accounting_response(sent, response(sent, **change))
    assert caught.value.reason == reason


def acknowledge(request):
    return sign_reply(5, request.id, request.authenticator, b"", message_authenticator=False)


class AccountClientTests(unittest.TestCase):
    """On a VirtualUdpNetwork: the 50 ms retransmission timer races no reply."""

    def client(self, handler):
        self.network = VirtualUdpNetwork()
        fake = FakeRadiusServer(handler, SECRET)
        port = self.network.listenUDP(0, fake, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        server = RadiusServer(ipaddress.IPv4Address("127.0.0.1"), port.getHost().port, SECRET)
        client = RadiusClient([server], NAS, policy=FAST, dictionary=DICTIONARY,
                              reactor=self.network)
        self.addCleanup(client.stop)
        return fake, client

    @defer.inlineCallbacks
    def test_account_fires_on_the_accounting_response(self):
        fake, client = self.client(acknowledge)
        result = yield self.network.run_until(client.account(STOP))
        self.assertIsNone(result)
        self.assertEqual(fake.received[0].code, pyrad_packet.AccountingRequest)
        self.assertEqual(client.counters["accounting-response"], 1)

    @defer.inlineCallbacks
    def test_unanswered_account_is_retransmitted_then_fails(self):
        fake, client = self.client(lambda request: None)
        with self.assertRaises(AaaError):
            yield self.network.run_until(client.account(STOP))
        self.assertEqual(len(fake.received), FAST.transmissions)
        self.assertEqual(client.counters["retransmitted"], 1)


# -- the HAC's accounting of SAs (hac.accounting) --------------------------------------


def sa_record(spi=0x1A2B, created=1_800_000_000):
    from datetime import datetime, timezone

    from aaa_mip6.sa import SecurityAssociation
    from aaa_mip6.store import SARecord
    sa = SecurityAssociation(spi, "AES_128_CBC_SHA", b"i" * 20, b"j" * 20, b"e" * 16, b"f" * 16,
                             datetime.fromtimestamp(created + 86_400, timezone.utc), 1,
                             "mn1@example.org", ipaddress.IPv6Address("2001:db8:1::10"))
    return SARecord(sa, "hac1", None, datetime.fromtimestamp(created, timezone.utc))


def test_start_and_stop_records_of_an_sa():
    from hac.accounting import start_record, stop_record
    record = sa_record()
    assert start_record(record, 1_800_000_005) == AccountingRecord(
        AcctStatus.START, "00001a2b", "mn1@example.org", 1_800_000_005,
        ipaddress.IPv6Address("2001:db8:1::10"))
    stop = stop_record(record, 1_800_000_090, TerminateCause.ADMIN_RESET)
    assert (stop.status, stop.session_id, stop.session_time, stop.terminate_cause) == (
        AcctStatus.STOP, "00001a2b", 90, TerminateCause.ADMIN_RESET)
    assert stop_record(record, 1_799_999_000, TerminateCause.ADMIN_RESET).session_time == 0


class _Client:
    def __init__(self, result):
        self.result = result
        self.sent = []

    def account(self, record):
        self.sent.append(record)
        return defer.succeed(None) if self.result is None else defer.fail(self.result)


def test_accounting_sends_start_and_revoke_stop_and_counts_answers():
    from hac.accounting import Accounting
    client = _Client(None)
    accounting = Accounting(client, lambda: 1_800_000_060.7)
    accounting.started(sa_record())
    accounting.revoked(sa_record())
    assert [(r.status, r.terminate_cause, r.session_time) for r in client.sent] == [
        (AcctStatus.START, None, None), (AcctStatus.STOP, TerminateCause.ADMIN_RESET, 60)]
    assert accounting.counters == {"start-answered": 1, "stop-answered": 1}


def test_unanswered_accounting_is_logged_and_counted_never_raised(caplog):
    from hac.accounting import Accounting
    accounting = Accounting(_Client(AaaError("no answer from RADIUS server 127.0.0.1:1813")),
                            lambda: 1_800_000_000)
    accounting.started(sa_record())
    assert accounting.counters == {"start-failed": 1}
    assert "RADIUS accounting Start of SA 00001a2b (mn-id=mn1@example.org) not answered: " \
           "no answer from RADIUS server 127.0.0.1:1813" in caplog.text


def test_expired_sa_gets_a_session_timeout_stop_at_its_validity_end_unless_revoked():
    from hac.accounting import Accounting
    client = _Client(None)
    accounting = Accounting(client, lambda: 1_900_000_000)
    record = sa_record()
    accounting.expired(record)
    accounting.expired(revoked_copy(record))
    assert [(r.status, r.terminate_cause, r.session_time, r.event_timestamp)
            for r in client.sent] == [
        (AcctStatus.STOP, TerminateCause.SESSION_TIMEOUT, 86_400, 1_800_086_400)]


def revoked_copy(record):
    import dataclasses
    return dataclasses.replace(record, sa=record.sa.replace(revoked=True))
