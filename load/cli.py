"""``mip6-load``: a load generator for RFC 6618 labs, N simulated MNs against real HACs and HAs.

What strongSwan's load-tester is for IKE: MNs ``mn0@example.org`` ... bootstrap at a
fixed rate (PSK from the HAC's own PSK file, or an EAP method ``mip6-mn`` speaks),
optionally register with the HA and keep their bindings (refresh, keep-alive packets,
back to the HAC on 176 or a silent HA). One process by default; ``--processes P``
starts P copies of itself, each with every P-th MN, and merges their events. The last
line on stdout is the report as one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aaa_mip6 import program
from aaa_mip6.control_client import flatten
from aaa_mip6.errors import ConfigError, InvalidInput
from aaa_mip6.twisted.tls import ClientTLS
from hac.credentials import load_psk_file
from mn import cli as mn_cli
from mn.bootstrap import DEFAULT_SUITES, EapBootstrap, PskBootstrap
from mn.eap.peer import EapPeer
from mn.hacset import HacSet
from mn.mobility import DEFAULT_LIFETIME, DEFAULT_MAX_ATTEMPTS

from .core import Event, Recorder

PROGRAM = "mip6-load"
DEFAULT_PATTERN = "mn{n}@example.org"
LOAD_EAP_METHODS = ("md5", "gtc", "mschapv2", "pwd", "peap", "ttls", "tls")
PIPE_PROGRESS_EVERY = 5  # progress lines to a pipe or file: one every this many seconds
CHILD_POLL = 0.2  # seconds between reads of the children's event files
SOCKETS_PER_MN = 2  # the TLS connection and the UDP socket to the HA

EPILOG = """\
Each MN is PATTERN with {n} its number (0..N-1): mn{n}@example.org gives mn0@example.org,
mn1@example.org, ... With a PSK, --psk-file is the HAC's own PSK file (NAI HEX a line,
as `mip6-lab` and the HAC's credentials.psk_file write it) and must hold every MN's key.
With --eap every MN uses the same password (or --cert/--key for tls); --identity may
be a PATTERN too.

Schedule: MN k starts at k/RATE seconds. --duration (default N/RATE) ends the run;
without --repeat each MN starts once and, with --register, keeps its binding until
the end (refreshing it, sending a keep-alive every --keepalive seconds, going back to
the HAC on BA status 176 or when the HA stops answering: the failover a lab measures).
With --repeat the starts go on at RATE until the end, round robin over the MNs that
are not busy; a start that finds every MN busy counts as a missed slot.

Output: a progress line on stderr each second (to a terminal; every 5 s otherwise)
unless --quiet; the report as one JSON object on the last stdout line: settings,
elapsed_s, ok and failed per step (bootstrap, register, rebootstrap, reregister),
rate_per_s, latency_s per step (p50, p90, p99, max, mean; nearest-rank), failures
by_status (the HAC's status code, the BA status, or a reason: connect, timeout,
no-answer, ...) and by_step (bootstrap:connect, bootstrap:init, register, ...),
counters, and with --register registered_at_end and mns_not_registered.
--csv FILE writes the same report as key,value rows; --events FILE a JSON line per
attempt {"t", "mn", "step", "status", "latency_s", "spi", "ha", "at", "hac"} (t:
seconds since the start; "at": where a bootstrap failed; "hac": the HAC a bootstrap
last tried); --plot FILE.png the rates and latencies over time.

Exit status: 0 the run completed (read the report for failures); 1 it could not run;
2 bad flags or files.
"""


class _Parser(argparse.ArgumentParser):
    """Bad flags are one line and exit status 2."""

    def error(self, message: str):
        self.exit(program.EXIT_CONFIG, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROGRAM, description="A load generator for RFC 6618 labs: N "
                     "simulated MNs bootstrap with real HACs (PSK or EAP) at a fixed rate, "
                     "and optionally register with the HAs and keep their bindings.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    program.add_version_flag(parser)
    parser.add_argument("--hac", required=True, action="append", metavar="HOST:PORT[,...]",
                        help="the HAC(s), tried in order as by mip6-mn (repeatable)")
    parser.add_argument("--ca", required=True, type=Path, metavar="PEM",
                        help="CA certificate(s) the HAC certificates must chain to")
    parser.add_argument("--mns", type=int, default=1, metavar="N",
                        help="simulated MNs (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, metavar="R",
                        help="new bootstraps per second (default: %(default)s)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="length of the run (default: N/R, each MN starts once)")
    parser.add_argument("--repeat", action="store_true",
                        help="keep starting bootstraps at R per second until the end")
    parser.add_argument("--id-pattern", default=DEFAULT_PATTERN, metavar="PATTERN",
                        help="the MNs' NAIs, {n} the number (default: %(default)s)")
    parser.add_argument("--first", type=int, default=0, metavar="K",
                        help="number of the first MN (default: %(default)s)")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--psk-file", type=Path, metavar="FILE",
                        help="the HAC's PSK file (NAI HEX a line) holding every MN's key")
    secret.add_argument("--eap", choices=LOAD_EAP_METHODS, metavar="METHOD",
                        help="EAP instead of a PSK: " + ", ".join(LOAD_EAP_METHODS))
    mn_cli._add_eap_arguments(parser)
    parser.add_argument("--cert", type=Path, metavar="PEM",
                        help="client certificate (with --key): for the HAC if it asks, and "
                             "for --eap tls")
    parser.add_argument("--key", type=Path, metavar="PEM", help="the client certificate's key")
    parser.add_argument("--suites", default=",".join(DEFAULT_SUITES), metavar="NAME[,NAME...]",
                        help="ciphersuites to offer (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="bound of one bootstrap and of one first registration "
                             "(default: %(default)s)")
    parser.add_argument("--register", action="store_true",
                        help="after the bootstrap, register with the HA and keep the binding")
    parser.add_argument("--keepalive", type=float, default=0.0, metavar="SECONDS",
                        help="with --register: an ICMPv6 echo through the tunnel to the HA "
                             "every SECONDS (0: none; default: %(default)s)")
    parser.add_argument("--lifetime", type=int, default=DEFAULT_LIFETIME, metavar="SECONDS",
                        help="binding lifetime to ask for (default: %(default)s)")
    parser.add_argument("--bu-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS, metavar="N",
                        help="Binding Update transmissions before the HA counts as gone "
                             "(default: %(default)s, RFC 6275's pacing: 1, 2, 4 ... 32 s)")
    parser.add_argument("--processes", type=int, default=1, metavar="P",
                        help="run P processes, each with every P-th MN (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--events", type=Path, metavar="FILE",
                        help="write one JSON line per attempt to FILE")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="also write the report to FILE as key,value rows")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw bootstraps per second and latencies over time (matplotlib)")
    parser.add_argument("--child", metavar="I/P", help=argparse.SUPPRESS)
    return parser


def check(args: argparse.Namespace) -> None:
    """ConfigError (one line naming the flag) for values no run can use."""
    for flag, value, positive in (("--mns", args.mns, True), ("--rate", args.rate, True),
                                  ("--timeout", args.timeout, True),
                                  ("--processes", args.processes, True),
                                  ("--lifetime", args.lifetime, True),
                                  ("--bu-attempts", args.bu_attempts, True),
                                  ("--keepalive", args.keepalive, False),
                                  ("--first", args.first, False)):
        if not (value > 0 if positive else value >= 0) or not math.isfinite(value):
            raise ConfigError(f"{flag} must be {'positive' if positive else '0 or more'}, "
                              f"got {value}")
    if args.duration is not None and not (args.duration > 0 and math.isfinite(args.duration)):
        raise ConfigError(f"--duration must be a positive number of seconds, got {args.duration}")
    if args.processes > args.mns:
        raise ConfigError(f"--processes {args.processes} is more than --mns {args.mns}")
    if args.keepalive and not args.register:
        raise ConfigError("--keepalive needs --register (it travels through the tunnel)")
    try:
        args.id_pattern.format(n=0)
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"--id-pattern {args.id_pattern!r}: use {{n}} for the MN's number, "
                          "e.g. mn{n}@example.org") from None
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--plot needs matplotlib (pip install 'aaa-mip6[load]')") from None


def identity(pattern: str, number: int) -> str:
    return pattern.format(n=number)


def credentials_factory(args: argparse.Namespace):
    """``credentials(number) -> (NAI, machine factory)`` for every MN; ConfigError up
    front for a missing key or EAP option."""
    numbers = range(args.first, args.first + args.mns)
    options = dict(suites=args.suites.replace(",", " ").split(), scope=1)
    PskBootstrap("check@example.org", b"\0" * 16, **options)  # bad --suites fail here
    if args.psk_file is not None:
        table = load_psk_file(args.psk_file)
        missing = [identity(args.id_pattern, n) for n in numbers
                   if identity(args.id_pattern, n) not in table]
        if missing:
            raise ConfigError(f"--psk-file {args.psk_file} has no key for {missing[0]}"
                              + (f" and {len(missing) - 1} more MN(s)" if len(missing) > 1
                                 else "") + ": give the HAC's PSK file, or fix --id-pattern")

        def psk(number: int):
            mn_id = identity(args.id_pattern, number)
            return mn_id, lambda: PskBootstrap(mn_id, table[mn_id], **options)
        return psk
    base = mn_cli.eap_credentials(argparse.Namespace(**{**vars(args), "mn_id": "",
                                                       "identity": args.identity or "-"}))
    EapPeer(args.eap, base)  # bad EAP options fail here

    def eap(number: int):
        mn_id = identity(args.id_pattern, number)
        inner = identity(args.identity, number) if args.identity else mn_id
        credentials = dataclasses.replace(base, identity=inner)
        return mn_id, lambda: EapBootstrap(mn_id, EapPeer(args.eap, credentials), **options)
    return eap


def _settings(args: argparse.Namespace, duration: float) -> dict:
    return {"hacs": mn_cli.hacs.split_hac_flags(args.hac), "mns": args.mns, "rate": args.rate,
            "duration": duration, "repeat": args.repeat, "register": args.register,
            "keepalive": args.keepalive, "method": args.eap or "psk",
            "processes": args.processes}


class _Progress:
    """The progress line: rewritten in place on a terminal, every few seconds elsewhere."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.count = 0

    def __call__(self, line: str) -> None:
        self.count += 1
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K")
        elif self.count % PIPE_PROGRESS_EVERY == 0:
            self.stream.write(f"{PROGRAM}: {line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.count:
            self.stream.write("\n")
            self.stream.flush()


def my_numbers(args: argparse.Namespace) -> tuple[tuple[int, ...], int]:
    """(the MN numbers this process runs, how many processes share the run)."""
    share, processes = (0, 1) if args.child is None else map(int, args.child.split("/"))
    return tuple(range(args.first, args.first + args.mns))[share::processes], processes


def run_here(args: argparse.Namespace, duration: float, progress) -> tuple[Recorder, float,
                                                                          int | None]:
    """Run this process's share on the global reactor: (recorder, elapsed, registered)."""
    from twisted.internet import reactor

    from .runner import LoadRun, RunOptions

    numbers, processes = my_numbers(args)
    pairs = mn_cli.parse_hacs(args.hac)
    credentials = credentials_factory(args)
    needed = len(numbers) * SOCKETS_PER_MN + 64
    soft, _ = program.raise_open_file_limit(needed)
    if soft < needed:
        print(f"{PROGRAM}: the open-file limit is {soft}, {len(numbers)} MNs may need {needed}:"
              f" some will fail at connect (raise it with ulimit -n, or use --processes)",
              file=sys.stderr)
    options = RunOptions(numbers, args.rate / processes, duration, args.timeout,
                         register=args.register, repeat=args.repeat, keepalive=args.keepalive,
                         lifetime=args.lifetime, bu_attempts=args.bu_attempts)

    def make_hac_set() -> HacSet:
        return HacSet(reactor, pairs, lambda host: ClientTLS(
            host, args.ca, cert_file=args.cert, key_file=args.key))

    make_hac_set()  # an unreadable --ca or --cert fails here, before the run
    events_out = open(args.events, "w") if args.events is not None else None
    run = LoadRun(reactor, options, credentials, make_hac_set, events_out=events_out,
                  progress=progress)
    outcome: list = []

    def start() -> None:
        running = run.start()
        running.addBoth(outcome.append)
        running.addBoth(lambda _: reactor.stop())

    for number in (signal.SIGTERM, signal.SIGINT):  # end the run early, with its report
        signal.signal(number, lambda *_: reactor.callFromThread(run.stop_now))
    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    if events_out is not None:
        events_out.close()
    if not outcome or not isinstance(outcome[0], tuple):
        raise RuntimeError("the run was stopped before it ended")
    elapsed, registered = outcome[0]
    return run.recorder, elapsed, registered


def run_children(args: argparse.Namespace, argv: list[str], progress) -> tuple[Recorder, float,
                                                                              int | None]:
    """``--processes P``: P copies of this program, each with every P-th MN; their event
    files read as they grow (the progress line) and merged."""
    recorder = Recorder()
    registered, elapsed = 0, 0.0
    with tempfile.TemporaryDirectory(prefix="mip6-load-") as directory:
        children, files = [], []
        base = _without(argv, ("--processes", "--events", "--csv", "--plot"), ("--quiet",))
        started = time.monotonic()
        for share in range(args.processes):
            path = Path(directory) / f"events-{share}.jsonl"
            path.touch()
            children.append(subprocess.Popen(
                [sys.executable, "-m", "load.cli", *base, "--quiet", "--events", str(path),
                 "--child", f"{share}/{args.processes}"],
                stdout=subprocess.PIPE, text=True))
            files.append(open(path, "rb"))
        try:
            next_line = started + 1.0
            while any(child.poll() is None for child in children):
                _read_events(files, recorder)
                if progress is not None and time.monotonic() >= next_line:
                    progress(recorder.progress(time.monotonic() - started))
                    next_line += 1.0
                time.sleep(CHILD_POLL)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
        _read_events(files, recorder)
        for share, child in enumerate(children):
            out = child.stdout.read().strip().splitlines()
            if child.wait() != 0 or not out:
                raise RuntimeError(f"process {share + 1} of {args.processes} failed "
                                   f"(exit status {child.returncode})")
            report = json.loads(out[-1])
            recorder.counters.update(report.get("counters", {}))
            registered += report.get("registered_at_end", 0)
            elapsed = max(elapsed, report["elapsed_s"])  # the run, without starting Python
        for handle in files:
            handle.close()
    return recorder, elapsed, registered if args.register else None


def _read_events(files, recorder: Recorder) -> None:
    """The complete lines the children added to their event files since the last read."""
    for handle in files:
        for line in handle.readlines():
            if line.endswith(b"\n"):
                recorder.record(Event.from_json(json.loads(line)))
            else:  # a line still being written: read it whole next time
                handle.seek(-len(line), os.SEEK_CUR)


def _without(argv: list[str], with_value: tuple[str, ...], bare: tuple[str, ...]) -> list[str]:
    """``argv`` without the flags the parent keeps for itself."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in with_value:
            skip = "=" not in arg
            continue
        if name in bare:
            continue
        kept.append(arg)
    return kept


def write_outputs(args: argparse.Namespace, recorder: Recorder, report: dict) -> None:
    if args.events is not None and args.processes > 1:
        with open(args.events, "w") as out:
            for event in sorted(recorder.events, key=lambda event: event.t):
                out.write(json.dumps(event.as_json()) + "\n")
    if args.csv is not None:
        import csv

        with open(args.csv, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(("key", "value"))
            writer.writerows(flatten(report))
    if args.plot is not None:
        from .plot import draw

        draw(recorder.timeline(until=report["elapsed_s"]), args.plot, title=f"{PROGRAM}: {report['settings']['mns']} "
                                                  f"MNs at {report['settings']['rate']:g}/s")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    program.configure_logging(PROGRAM, "error", "text", f"{PROGRAM}: %(message)s")
    duration = args.duration if args.duration is not None else args.mns / args.rate
    try:
        check(args)
        mn_cli.parse_hacs(args.hac)
        credentials_factory(args)
        for flag, path in (("--events", args.events), ("--csv", args.csv),
                           ("--plot", args.plot)):
            if path is not None and not os.access(path.parent or ".", os.W_OK):
                raise ConfigError(f"{flag} {path}: cannot write in {path.parent}")
    except InvalidInput as error:
        return program.fail(PROGRAM, str(error), program.EXIT_CONFIG)
    progress = None if args.quiet else _Progress()
    try:
        if args.processes > 1 and args.child is None:
            recorder, elapsed, registered = run_children(args, argv, progress)
        else:
            recorder, elapsed, registered = run_here(args, duration, progress)
    except InvalidInput as error:
        return program.fail(PROGRAM, str(error), program.EXIT_CONFIG)
    except (RuntimeError, OSError) as error:
        return program.fail(PROGRAM, str(error))
    finally:
        if progress is not None:
            progress.close()
    mns = args.mns if args.child is None else len(my_numbers(args)[0])
    report = recorder.report(elapsed=elapsed, settings=_settings(args, duration),
                             registered=registered, mns=mns)
    try:
        write_outputs(args, recorder, report)
    except OSError as error:
        return program.fail(PROGRAM, f"cannot write the outputs: {error}")
    print(json.dumps(report), flush=True)
    return program.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
