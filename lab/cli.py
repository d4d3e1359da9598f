"""``mip6-lab``'s command line: ``mip6-lab up`` runs the loopback lab (:mod:`lab.loopback`)
or, with ``--netns``, the namespace lab (:mod:`lab.netns`), and says what to try next;
``mip6-lab lke --netns`` shows the Local Key Exchange across a handover (:mod:`lab.lke`);
``mip6-lab cluster`` kills each part of a HAC/HA cluster under load (:mod:`lab.cluster`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from aaa_mip6.program import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, LOG_FORMATS, add_version_flag, \
    configure_logging, fail, install_signals, raise_open_file_limit

from .cluster import FULL, SHORT, run_cluster
from .common import OutputClosed
from .lke import check_ready, lke_passed, run_lke, stop_requested
from .loopback import run_loopback
from .netns import LabError, run_netns
from .reactors import run_on_reactor

PROGRAM = "mip6-lab"
MAX_MNS = 200
FILES_PER_MN = 4  # open files per loopback MN: its TLS connection (both ends), its UDP
#                   socket, with room to spare (200 MNs peaked at 424 files in all)
FILES_BASE = 64  # the HAC, the HA, the store and the interpreter itself


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Run a HAC, a home agent and mobile nodes on this machine.")
    add_version_flag(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up", help="run the lab end to end and report",
        description="Start a HAC, a home agent and N mobile nodes; each MN bootstraps, "
                    "registers, exchanges protected traffic, hands over to a new care-of "
                    "address and de-registers. Exit status 0 only if every MN succeeded.")
    up.add_argument("--mns", type=int, default=3, metavar="N",
                    help=f"number of mobile nodes, 1..{MAX_MNS}; 1..60 with --netns "
                         f"(default: %(default)s)")
    up.add_argument("--netns", action="store_true",
                    help="MN, HA and a correspondent in their own network namespaces, real "
                         "TUN interfaces, ping and TCP through the tunnel (root)")
    up.add_argument("--keep-dir", action="store_true",
                    help="keep the generated files (CA, PSKs, store, logs) afterwards")
    up.add_argument("--verbose", action="store_true", help="log what the servers do")
    up.add_argument("--log-format", choices=LOG_FORMATS, default="text", metavar="FORMAT",
                    help="how mip6-lab's own log lines on stderr look: text (default) or "
                         "json, one object a line; the report on stdout stays text")
    lke = commands.add_parser(
        "lke", help="Local Key Exchange: the previous access router forwards across a "
                    "handover (root, --netns)",
        description="Correspondent, home network (mip6-hac, mip6-ha), two access links each "
                    "with mip6-ar, and two MNs that move from link 1 to link 2 while the "
                    "correspondent streams UDP to their link-1 care-of addresses: one with "
                    "mip6-mn --lke (AR1 keeps forwarding to it), one without (the control: "
                    "those packets are lost). Then a forged Key Exchange Request, a DAD "
                    "probe answered by an impostor and a replayed Binding Update, each "
                    "refused and counted by AR1. The last line is a JSON verdict; exit "
                    "status 0 only if forwarding and every refusal were seen (docs/lke.md).")
    lke.add_argument("--netns", action="store_true", required=True,
                     help="run in network namespaces (root; the only mode of this lab)")
    lke.add_argument("--keep-dir", action="store_true",
                     help="keep the generated files (keys, store, logs, status files)")
    cluster = commands.add_parser(
        "cluster", help="kill each part of a HAC/HA cluster under load (root)",
        description="etcd, PostgreSQL under Patroni (primary + synchronous standby), two "
                    "HACs, two HAs, FreeRADIUS and the MNs (lab.cluster_load and mip6-load), "
                    "each on its own network namespace; "
                    "kill -9 the PostgreSQL primary, a HAC and an HA in turn and print a "
                    "JSON verdict as the last line. Exit status 0 only if it passes.")
    cluster.add_argument("--short", action="store_true",
                         help=f"{SHORT.mns} + {SHORT.kept} MNs and short phases, about a "
                              f"minute (what CI runs); default {FULL.mns} + {FULL.kept} MNs "
                              f"and longer phases")
    cluster.add_argument("--keep-dir", action="store_true",
                         help="keep the generated files (configurations, logs) afterwards")
    return parser


def lke_command(args) -> int:
    """``mip6-lab lke --netns``: the verdict decides the exit status."""
    try:
        check_ready()
    except LabError as error:
        return fail(PROGRAM, str(error), EXIT_CONFIG)
    directory = Path(tempfile.mkdtemp(prefix="mip6-lab-lke-"))
    install_signals(lambda call: call(), reload=lambda: None, status=lambda: None)
    for number in (signal.SIGTERM, signal.SIGINT):  # the lab stops at its next wait and
        signal.signal(number, stop_requested)     # cleans up everything it started
    verdict = _run_in(directory, args.keep_dir, lambda: run_lke(directory, sys.stdout),
                      lambda error: f"lke: {error}; rerun with --keep-dir to keep the logs",
                      (LabError, OSError))
    if isinstance(verdict, int):
        return verdict
    return EXIT_OK if lke_passed(verdict) else EXIT_RUNTIME


def _run_in(directory: Path, keep_dir: bool, run, failure, errors=(LabError,)):
    """A lab's verdict from ``run()``, or the exit status when it failed (``failure``
    names it in one line) or was interrupted; ``directory`` is removed unless kept."""
    try:
        return run()
    except errors as error:
        return fail(PROGRAM, failure(error), EXIT_RUNTIME)
    except KeyboardInterrupt:
        print("mip6-lab: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if keep_dir:
            print(f"mip6-lab: files kept in {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def cluster_command(args) -> int:
    """``mip6-lab cluster``: the verdict as the last line; 0 if it passed."""
    directory = Path(tempfile.mkdtemp(prefix="mip6-lab-cluster-"))
    verdict = _run_in(directory, args.keep_dir,
                      lambda: run_cluster(directory, SHORT if args.short else FULL, sys.stdout),
                      str)
    if isinstance(verdict, int):
        return verdict
    print(json.dumps(verdict), flush=True)
    return EXIT_OK if verdict["pass"] else EXIT_RUNTIME


def next_steps(args, ok: bool) -> str:
    """What to try after this run."""
    if not ok:
        return (f"mip6-lab: next: mip6-lab up{' --netns' if args.netns else ''} --mns "
                f"{args.mns} --verbose --keep-dir logs what the servers do and keeps their "
                f"files; docs/usage.md (mip6-lab) explains the summary")
    if not args.netns:
        return ("mip6-lab: next: mip6-lab up --netns (root) runs mip6-hac, mip6-ha and mip6-mn "
                "themselves with TUN devices; docs/usage.md runs each program by hand")
    return "mip6-lab: next: docs/usage.md runs each program by hand, with your own AAA server"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "lke":
        return lke_command(args)
    if args.command == "cluster":
        configure_logging(PROGRAM, "error", "text", "%(asctime)s %(name)s %(levelname)s "
                          "%(message)s")
        signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: the clean-up runs
        return cluster_command(args)
    if not 1 <= args.mns <= MAX_MNS:
        return fail(PROGRAM, f"--mns must be 1..{MAX_MNS}", EXIT_CONFIG)
    if not args.netns:
        needed = FILES_BASE + FILES_PER_MN * args.mns
        soft, _ = raise_open_file_limit(needed)
        if soft < needed:
            return fail(PROGRAM, f"--mns {args.mns} needs {needed} open files, the limit is "
                                 f"{soft}: raise it (ulimit -n {needed}) or run fewer MNs",
                        EXIT_CONFIG)
    configure_logging(PROGRAM, "info" if args.verbose else "error", args.log_format,
                      "%(asctime)s %(name)s %(levelname)s %(message)s")
    directory = Path(tempfile.mkdtemp(prefix="mip6-lab-"))
    started = time.monotonic()

    def status() -> None:
        print(f"mip6-lab: status: {args.mns} MNs, {time.monotonic() - started:.1f} s in, "
              f"files in {directory}", file=sys.stderr, flush=True)

    def reload() -> None:
        print("mip6-lab: SIGHUP: nothing to reload (the lab writes its own configuration)",
              file=sys.stderr, flush=True)

    install_signals(lambda call: call(), reload=reload, status=status)  # SIGTERM/SIGINT stop
    try:
        if args.netns:
            try:
                results = run_netns(directory, args.mns, sys.stdout, keep=args.keep_dir)
            except LabError as error:
                return fail(PROGRAM, str(error), EXIT_CONFIG)
        else:
            results = run_on_reactor(lambda reactor: run_loopback(
                reactor, directory, args.mns, sys.stdout, keep=args.keep_dir))
        ok = bool(results) and all(result.ok for result in results)
        print(f"mip6-lab: {'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.1f} s")
        print(next_steps(args, ok), flush=True)
    except KeyboardInterrupt:
        print("mip6-lab: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except (OutputClosed, BrokenPipeError):
        # Nobody reads any more: what the lab started is stopped; end without a word, and
        # keep Python's exit-time flush of stdout from failing on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_RUNTIME
    finally:
        if args.keep_dir:
            print(f"mip6-lab: files kept in {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return EXIT_OK if ok else EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
