"""The control protocol (codec), its Twisted UNIX-socket server and the blocking client."""

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from aaa_mip6 import control
from aaa_mip6.control import ControlError
from aaa_mip6.control_client import Unreachable, ask
from aaa_mip6.twisted.control import listen_control


@given(st.binary(max_size=300))
def test_garbage_is_a_control_error_or_a_request(line):
    try:
        request = control.decode_request(line)
    except ControlError as error:
        assert str(error)
    else:
        assert isinstance(request["verb"], str)


@pytest.mark.parametrize("line, message", [
    (b"revoke 7", "not a JSON object"), (b"[1]", "not a JSON object"),
    (b'{"spi": 7}', 'no "verb"'), (b'{"verb": 3}', 'no "verb"'),
    (b"x" * (control.MAX_LINE + 1), "longer than"),
])
def test_bad_requests_name_the_problem(line, message):
    with pytest.raises(ControlError, match=message):
        control.decode_request(line)


def test_request_round_trip_leaves_out_unset_arguments():
    line = control.encode_request("sas", spi=7, mn_id=None)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert control.decode_request(line) == {"verb": "sas", "spi": 7}


@pytest.mark.parametrize("value", [-1, "7", 1.5, True])
def test_integer_argument_refuses_what_is_not_a_count(value):
    with pytest.raises(ControlError, match='"spi"'):
        control.integer_argument({"spi": value}, "spi")


def test_reply_of_values_json_cannot_hold_is_their_text():
    import ipaddress
    line = control.encode_reply(control.ok(address=ipaddress.ip_address("2001:db8::1")))
    assert control.decode_reply(line) == {"ok": True, "address": "2001:db8::1"}


class ControlSocketTest(unittest.TestCase):
    def setUp(self):
        self.directory = Path(tempfile.mkdtemp())
        self.path = self.directory / "control.sock"

        def echo(request):
            return control.ok(echo=request)

        def later(request):
            return defer.succeed(control.ok(later=True))

        def refuse(request):
            raise ControlError("no such SA")

        def broken(request):
            raise RuntimeError("secret-ish detail")

        self.port = listen_control(self.path, {"echo": echo, "later": later,
                                               "refuse": refuse, "broken": broken}, reactor)
        self.addCleanup(lambda: self.port.stopListening())

    def ask(self, verb, **arguments):
        return threads.deferToThread(ask, self.path, "mip6-test", verb, timeout=5,
                                     **arguments)

    def test_socket_is_private(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertTrue(stat.S_ISSOCK(os.stat(self.path).st_mode))

    @defer.inlineCallbacks
    def test_verbs_answer(self):
        reply = yield self.ask("echo", spi=3)
        self.assertEqual(reply, {"ok": True, "echo": {"verb": "echo", "spi": 3}})
        reply = yield self.ask("later")
        self.assertEqual(reply, {"ok": True, "later": True})

    @defer.inlineCallbacks
    def test_errors_are_replies(self):
        reply = yield self.ask("refuse")
        self.assertEqual(reply, {"ok": False, "error": "no such SA"})
        reply = yield self.ask("broken")
        self.assertFalse(reply["ok"])
        self.assertNotIn("secret", reply["error"])
        reply = yield self.ask("nonsense")
        self.assertIn("known: broken, echo, later, refuse", reply["error"])

    @defer.inlineCallbacks
    def test_garbage_line_gets_an_error_and_the_socket_serves_on(self):
        def raw():
            import socket
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(self.path))
                sock.sendall(b"\xff{not json\n")
                return json.loads(sock.makefile("rb").readline())
        reply = yield threads.deferToThread(raw)
        self.assertFalse(reply["ok"])
        reply = yield self.ask("echo")
        self.assertTrue(reply["ok"])

    @defer.inlineCallbacks
    def test_an_old_socket_is_replaced(self):
        import socket
        yield self.port.stopListening()
        with socket.socket(socket.AF_UNIX) as stale:  # a crashed program's socket
            if self.path.exists():
                self.path.unlink()
            stale.bind(str(self.path))
        self.assertTrue(self.path.is_socket())
        self.port = listen_control(self.path, {"echo": lambda request: control.ok()}, reactor)
        reply = yield self.ask("echo")
        self.assertTrue(reply["ok"])


def test_nobody_listening_is_one_line_naming_the_flag(tmp_path):
    with pytest.raises(Unreachable) as raised:
        ask(tmp_path / "none.sock", "mip6-ha", "stats")
    assert str(raised.value) == (f"no mip6-ha listening on {tmp_path / 'none.sock'} "
                                 f"(is it running with --control {tmp_path / 'none.sock'}?)")


class ControlSocketPlaceTest(unittest.TestCase):
    def test_a_live_socket_is_not_taken_over_and_a_bad_directory_names_the_key(self):
        from aaa_mip6.errors import ConfigError, StartupError
        path = Path(tempfile.mkdtemp()) / "c.sock"
        port = listen_control(path, {}, reactor)
        self.addCleanup(port.stopListening)
        with self.assertRaises(StartupError) as raised:
            listen_control(path, {}, reactor)
        self.assertIn("another program listens there", str(raised.exception))
        with self.assertRaises(ConfigError) as raised:
            listen_control(path.parent / "missing" / "c.sock", {}, reactor)
        self.assertTrue(str(raised.exception).startswith("control.socket "))


def test_hac_stats_total_adds_the_workers_counters_nested_ones_too():
    from hac.control import worker_socket
    from hac.verbs import total
    first = {"ok": True, "pid": 10, "worker": 0, "workers": 2, "connections": 1,
             "bootstraps": {"200": 3}, "refused": {"cap": 0, "rate": 1}}
    second = {"ok": True, "pid": 11, "worker": 1, "workers": 2, "connections": 2,
              "bootstraps": {"200": 1, "401": 2}, "refused": {"cap": 0, "rate": 0}}
    assert total([first, second]) == {"connections": 3, "bootstraps": {"200": 4, "401": 2},
                                      "refused": {"cap": 0, "rate": 1}}
    assert worker_socket(Path("/run/mip6/hac.sock"), 0) == Path("/run/mip6/hac.sock")
    assert worker_socket(Path("/run/mip6/hac.sock"), 3) == Path("/run/mip6/hac.sock.3")
