"""The HAC as a process: what ``mip6-hac`` does around :class:`hac.server.HacServer`.

Before anything listens, :func:`check` loads every file once, opens the store, raises
the open-file limit for ``limits.max_connections`` and warns (once) about what is risky
or has no effect, so that a bad setup fails before any fork, as one line
(:func:`start_failure`: exit status 2 for the configuration, 1 for the rest).
``--check-config`` is that and a look at the ports (:func:`check_configuration`).
:func:`run` then serves: in this process, or as forked workers sharing one listening
socket. Every worker inherits the TLS context and the PSK table (session tickets: every process
takes its ticket keys from the store, :mod:`hac.ticket_keys`), and
reports on a pipe whether it started; one that fails as it starts stops the HAC with its
line, one that dies later is restarted. Signals, alike for every program
(:mod:`aaa_mip6.program`): SIGHUP re-reads log.level and the RADIUS servers and reloads
the PSK file, the TLS certificate and key and the RADIUS secret file, SIGUSR1 logs a status line, SIGTERM stops; the workers' parent
forwards them.

The global reactor is imported only inside :func:`_start`, after any fork.
"""

from __future__ import annotations

import ipaddress
import errno
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from cryptography import x509

from aaa_mip6.errors import ConfigError, StartupError
from aaa_mip6.iana import DIAMETER_TLS_PORT
from aaa_mip6.program import (
    EXIT_CONFIG,
    EXIT_RUNTIME,
    install_signals,
    raise_open_file_limit,
    warn_if_exposed,
)
from aaa_mip6.radius.servers import RadiusServer
from aaa_mip6.twisted.fastopen import SERVER_BIT, sysctl_value
from aaa_mip6.twisted.tls import ClientTLS, ServerTLS, load_certificates, ticket_key_setter

from .config import (
    HacConfig,
    ListenAddress,
    ineffective_settings,
    naming_the_key,
    store_description,
)
from .credentials import Credentials
from .assemble import (
    StartFailed,
    assemble_hac,
    diameter_host_addresses,
    local_address_towards,
    open_configured_store,
    server_tls,
)
from .server import bind

log = logging.getLogger(__name__)


def start_failure(error: BaseException) -> tuple[int, str]:
    """The exit status and the one line a user sees for an error raised while starting."""
    if isinstance(error, ConfigError):
        return EXIT_CONFIG, str(error)
    if isinstance(error, StartupError):
        return EXIT_RUNTIME, str(error)
    if isinstance(error, StartFailed):
        return error.status, str(error)
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return EXIT_RUNTIME, f"cannot start: {where}{error.strerror or error}"
    log.debug("start failed", exc_info=error)  # the traceback, for --log-level debug
    return EXIT_RUNTIME, f"cannot start: internal error ({type(error).__name__}; " \
                         "--log-level debug shows where)"


HEADROOM_FILES = 64
"""Descriptors a HAC process needs beside its MN connections and store: stdio and the log,
the listening socket, the reactor's own, the AAA and Diameter sockets, certificate files
read at a rotation, a control socket."""


def files_needed(config: HacConfig) -> int:
    """Open files one HAC process may hold at ``limits.max_connections``."""
    store = 3 if config.store_url.startswith("sqlite:") else config.store_threads  # db, wal, shm
    return (config.max_connections + store + HEADROOM_FILES + len(config.radius_servers)
            + len(config.diameter_peers))


def ensure_open_files(config: HacConfig) -> int:
    """Raise the soft RLIMIT_NOFILE to what ``config`` needs (up to the hard limit);
    ConfigError naming limits.max_connections when even the hard limit cannot hold it."""
    needed = files_needed(config)
    soft, hard = raise_open_file_limit(needed)
    if soft < needed:
        fits = soft - (needed - config.max_connections)
        raise ConfigError(
            f"limits.max_connections (--max-connections) {config.max_connections} needs "
            f"{needed} open files per process, but the limit is {soft} (hard limit {hard}): "
            f"lower it to {max(fits, 1)} or raise the hard limit (ulimit -Hn, "
            "systemd LimitNOFILE=)")
    return soft


@dataclass(frozen=True)
class Prepared:
    """What the HAC loads once, before any fork, and every worker inherits."""

    tls: ServerTLS
    credentials: Credentials | None
    # Reads --config and the flags again, for SIGHUP's log.level and RADIUS servers; None:
    # nothing to re-read.
    reread: Callable[[], HacConfig] | None = None


def check(config: HacConfig) -> Prepared:
    """Load every file and open the store once, so a bad setup fails before any fork
    (and ``--check-config`` finds it); warn about what is risky or has no effect."""
    ensure_open_files(config)
    try:
        tls = server_tls(config)
    except ConfigError as error:
        raise naming_the_key(error, config, ("tls.key", "tls.cert", "tls.client_ca")) from None
    _warn_about_certificate(config.cert, "tls.cert", _hac_names(config))
    ticket_key_setter()  # read OpenSSL's symbols once, before any fork
    for path, what in ((config.key, "TLS key (tls.key)"),
                       (config.radius_secret_file, "RADIUS secret file (radius.secret_file)"),
                       (config.diameter_key, "Diameter key (diameter.key)")):
        if path is not None:
            warn_if_exposed(path, what, log)
    try:
        credentials = None if config.psk_file is None else Credentials(config.psk_file)
    except ConfigError as error:
        raise naming_the_key(error, config, ("credentials.psk_file",)) from None
    open_configured_store(config).close()
    if config.radius_servers:
        config.radius_shared_secret()
        if config.radius_nas_address is None:  # else each worker would find no route
            local_address_towards(RadiusServer.parse(config.radius_servers[0], b"-").address,
                                  "RADIUS server", "radius.nas_address")
    if config.radius_accounting:
        servers = config.accounting_servers()
        if config.radius_nas_address is None:
            local_address_towards(servers[0].address, "RADIUS server", "radius.nas_address")
    if config.aaa_backend == "diameter":
        diameter_host_addresses(config)
        try:
            ClientTLS(config.diameter_origin_host, config.diameter_ca,
                      cert_file=config.diameter_cert, key_file=config.diameter_key)
        except ConfigError as error:
            raise naming_the_key(error, config, ("diameter.key", "diameter.cert",
                                                 "diameter.ca")) from None
        _warn_about_certificate(config.diameter_cert, "diameter.cert",
                                ({config.diameter_origin_host}, set()))
    node = None if config.sa_delivery is None else config.sa_delivery.node
    if node is not None and node.cert is not None and node.key is not None:
        warn_if_exposed(Path(node.key), "SA delivery key (sa_delivery: key)", log)
        _warn_about_certificate(node.cert, "sa_delivery: cert", ({node.origin_host}, set()))
    for note in ineffective_settings(config):
        log.warning("%s", note)
    if config.early_data and config.workers > 1:
        log.warning("tls.early_data (--early-data) with workers = %d: a ticket resumes only "
                    "in the worker that issued it, so a returning MN that reaches another "
                    "one connects twice (2 round trips more than without early data); "
                    "run early data with workers = 1", config.workers)
    return Prepared(tls, credentials)


def _note_fast_open(config: HacConfig) -> None:
    """Say, once the HAC serves, when the kernel keeps tcp_fast_open from taking effect."""
    fast_open = sysctl_value()
    if config.tcp_fast_open and fast_open is not None and not fast_open & SERVER_BIT:
        log.info("tcp_fast_open (--tcp-fast-open) waits for the sysctl: "
                 "net.ipv4.tcp_fastopen is %d, TCP Fast Open needs 3 (client and server)",
                 fast_open)


def _hac_names(config: HacConfig) -> tuple[set[str], set]:
    """Names an MN may check the HAC's certificate against: the listening address unless
    it is a wildcard (then any name the certificate has will do)."""
    address = ipaddress.ip_address(config.listen.host)
    return set(), set() if address.is_unspecified else {address}


def _warn_about_certificate(path, key: str, names: tuple[set[str], set]) -> None:
    """Warn when the certificate names none of ``names`` (DNS names, IP addresses) in its
    subjectAltName: peers check only those (RFC 6125), so they would refuse it."""
    leaf = load_certificates(path)[0]
    try:
        alt_names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        alt_names = x509.SubjectAlternativeName([])
    dns = {name.lower() for name in alt_names.get_values_for_type(x509.DNSName)}
    addresses = set(alt_names.get_values_for_type(x509.IPAddress))
    wanted_dns, wanted_addresses = names
    if {name.lower() for name in wanted_dns} & dns or wanted_addresses & addresses:
        return
    if not wanted_dns and (dns or (addresses and not wanted_addresses)):
        return  # any name the certificate has: the peers use one of them
    wanted = ", ".join(sorted(wanted_dns) + sorted(str(a) for a in wanted_addresses))
    log.warning("%s %s names %s in its subjectAltName, not %s: peers checking it will "
                "refuse it", key, path,
                ", ".join(sorted(dns) + sorted(str(a) for a in addresses)) or "nothing",
                wanted or "any name")


def summary(config: HacConfig, address: ListenAddress, methods: tuple[str, ...]) -> str:
    """What this HAC runs, in one line, for the start-up log and ``--check-config``
    (never a secret: the store is shown without password)."""
    if "eap" not in methods:
        aaa = "none"
    elif config.aaa_backend == "diameter":
        peers = [f"{peer.name}={ListenAddress(str(peer.address), peer.port or DIAMETER_TLS_PORT)}"
                 for peer in config.diameter_peers]
        if config.diameter_listen is not None:
            peers.append(f"listening on {config.diameter_listen}")
        aaa = f"Diameter realm {config.diameter_realm} via {', '.join(peers)}"
    else:
        aaa = "RADIUS " + ", ".join(str(ListenAddress(str(s.address), s.port)) for s in (
            RadiusServer.parse(text, b"-") for text in config.radius_servers))
    agents = ", ".join(_describe_agent(agent) for agent in config.bootstrap_policy().home_agents)
    workers = f", {config.workers} workers" if config.workers > 1 else ""
    if config.radius_accounting:
        aaa += ", RADIUS accounting " + ", ".join(
            str(ListenAddress(str(server.address), server.port))
            for server in config.accounting_servers(secret=b"-"))
    return (f"HAC {config.instance}: TLS on {address}{workers}, auth methods "
            f"{','.join(methods)}, AAA {aaa}, store {store_description(config.store_url)}, "
            f"home agents {agents}")


def _describe_agent(agent) -> str:
    return " + ".join(str(ListenAddress(str(address), agent.port))
                      for address in (agent.address6, agent.address4) if address is not None)


def effective_methods(config: HacConfig) -> tuple[str, ...]:
    """``auth.methods`` without eap when no AAA backend is configured (as the server runs)."""
    return tuple(str(method) for method in config.auth_methods
                 if method != "eap" or config.aaa_configured)


def metrics_ports(config: HacConfig) -> list[int]:
    """The metrics port of each worker: ``metrics.listen``'s port for worker 0, the
    next ones for the others (each worker keeps its own counters; scrape them all), or
    0 for each if the port is 0."""
    port = config.metrics[1]
    return [port + number if port else 0 for number in range(config.workers)]


def check_ports(config: HacConfig) -> None:
    """Bind, then release, each address the HAC would listen on (``--check-config``)."""
    bind(config).close()
    others = []
    if config.diameter_listen is not None:
        others.append(("diameter.listen", config.diameter_listen))
    if config.sa_delivery is not None and config.sa_delivery.node.listen is not None:
        others.append(("sa_delivery: listen", ListenAddress(*config.sa_delivery.node.listen)))
    if config.metrics is not None:
        others += [("metrics.listen (--metrics)", ListenAddress(config.metrics[0], port))
                   for port in metrics_ports(config)]
    for key, address in others:
        with socket.socket(address.family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address.host, address.port))
            except OSError as error:
                message = f"{key} {address}: {error.strerror or error}"
                if error.errno == errno.EADDRINUSE:
                    raise StartupError(message) from None
                raise ConfigError(message) from None


def check_configuration(config: HacConfig) -> str:
    """``--check-config``: everything :func:`check` loads, and the ports free; the summary
    to print. Raises as :func:`start_failure` describes."""
    prepared = check(config)
    check_ports(config)
    identities = "" if prepared.credentials is None else \
        f", {len(prepared.credentials)} PSK identities"
    return f"{summary(config, config.listen, effective_methods(config))}{identities}"


def _start(config: HacConfig, sock: socket.socket, prepared: Prepared, worker: int = 0):
    """Worker ``worker``'s server on ``sock``, with its signal handlers; returns the
    reactor to run (until SIGTERM). Worker 0 runs SA delivery. Raises as
    :func:`start_failure` describes."""
    from twisted.internet import reactor
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)

    server = assemble_hac(config, reactor, tls=prepared.tls, credentials=prepared.credentials,
                          delivers=worker == 0)
    server.worker = worker
    try:
        port = server.listen(sock)
    except BaseException:
        server.abandon()
        raise
    if config.metrics is not None:
        from aaa_mip6.twisted.metrics import serve_metrics

        from .metrics import hac_registry
        try:
            metrics = serve_metrics(hac_registry(server), config.metrics[0],
                                    metrics_ports(config)[worker], reactor)
        except BaseException:
            port.stopListening()
            server.abandon()
            raise
        log.info("metrics on http://%s:%d/metrics", config.metrics[0], metrics.getHost().port)
    install_signals(reactor.callFromThread, reload=lambda: server.reload(prepared.reread),
                    status=server.report)
    address = port.getHost()
    log.info("HAC %s listening on %s (pid %d)", config.instance,
             ListenAddress(address.host, address.port), os.getpid())
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    return reactor


_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
_HANDLED_LATER = (signal.SIGHUP, signal.SIGUSR1)  # ignored until the server can act on them


def run(config: HacConfig, reread: Callable[[], HacConfig] | None = None) -> int:
    """Run the HAC: in this process, or as ``config.workers`` forked workers sharing one socket.

    Raises ConfigError or :class:`StartFailed` (also for a worker that fails as it starts:
    the others are stopped). The parent of several workers restarts one that dies later,
    forwards SIGHUP and SIGUSR1, and on SIGTERM stops them all and returns 0.
    """
    for signum in _HANDLED_LATER:
        signal.signal(signum, signal.SIG_IGN)
    prepared = replace(check(config), reread=reread)
    sock = bind(config)
    started = summary(config, ListenAddress(*sock.getsockname()[:2]), effective_methods(config))
    if config.workers == 1:
        reactor = _start(config, sock, prepared)
        log.info("%s", started)
        _note_fast_open(config)
        reactor.run()  # its own SIGTERM/SIGINT handlers stop it
        return 0
    try:
        return _run_workers(config, sock, prepared, started)
    finally:
        sock.close()


def _run_workers(config: HacConfig, sock: socket.socket, prepared: Prepared,
                 started: str) -> int:
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def start(number: int, restart: bool = False) -> tuple[int, int]:
        """Fork worker ``number``; return its pid and the pipe on which it reports its start.
        A restarted worker reads the PSK file again: a SIGHUP may have changed it since."""
        ready_read, ready_write = os.pipe()
        # Signals wait until the child has dropped the parent's handlers: a SIGHUP or
        # SIGUSR1 before the worker can act on it is ignored.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        pid = os.fork()
        if pid == 0:
            os.close(ready_read)
            for signum in _HANDLED_LATER:
                signal.signal(signum, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _worker(number, config, sock, prepared, ready_write, restart)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(ready_write)
        children[pid] = number
        return pid, ready_read

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = stopping or signum in (signal.SIGTERM, signal.SIGINT)
        for pid in children:
            os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    starting = [start(number) for number in range(config.workers)]
    failures = [failure for pid, ready in starting
                if (failure := _started(ready, children[pid])) is not None]
    if failures and not stopping:
        stopping = True
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in list(children):
            os.waitpid(pid, 0)
        # A configuration error first (it says what to fix), then a reported failure.
        status, message = min(failures, key=lambda failure: (-failure[0],
                                                             failure[1].endswith(_SILENT)))
        raise StartFailed(message, status)
    if not stopping:
        log.info("%s", started)
        _note_fast_open(config)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        number = children.pop(pid, None)
        if number is not None and not stopping:
            log.error("worker %d (pid %d) exited with status %d; restarting", number, pid,
                      os.waitstatus_to_exitcode(status))
            time.sleep(1)  # no restart storm if a worker dies at once
            new_pid, ready = start(number, restart=True)
            failure = _started(ready, number)
            if failure is not None:
                log.error("worker %d (pid %d) failed to start: %s", number, new_pid,
                          failure[1])
    return 0


_SILENT = " exited as it started"  # a worker that reported nothing (e.g. killed)


def _started(ready: int, number: int) -> tuple[int, str] | None:
    """Wait for worker ``number``'s start report on ``ready``: None once it listens, else
    (exit status, message)."""
    report = b""
    try:
        while chunk := os.read(ready, 4096):
            report += chunk
    finally:
        os.close(ready)
    if report == b"ok":
        return None
    if not report:
        return EXIT_RUNTIME, f"worker {number}{_SILENT}"
    status, _, message = report.decode("utf-8", "replace").partition(" ")
    return int(status), message


def _worker(number: int, config: HacConfig, sock: socket.socket, prepared: Prepared,
            ready: int, restart: bool) -> None:
    """A forked worker: start, report on ``ready`` ("ok", or the exit status and the
    one-line message), serve until SIGTERM; never returns into the parent's code."""
    code = 0
    try:
        try:
            if restart and prepared.credentials is not None:
                prepared.credentials.reload()  # keeps the inherited table if it fails
            reactor = _start(config, sock, prepared, number)
        except BaseException as error:  # reported by the parent, as one line
            code, message = start_failure(error)
            os.write(ready, f"{code} {message}".encode())
            return
        os.write(ready, b"ok")
        os.close(ready)
        reactor.run()
    except BaseException:  # a worker must never return into the parent's loop
        log.exception("worker %d failed", number)
        code = EXIT_RUNTIME
    finally:
        os._exit(code)
