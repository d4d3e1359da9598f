"""The layers hold, checked on the source (README, "Layout").

- The library's pure modules (all of ``aaa_mip6`` outside its I/O rooms) and the
  protocol cores of the programs import no I/O: no Twisted, no sockets, no processes,
  no signals, no store driver, and no I/O room of the library.
- ``aaa_mip6`` imports no program package (``hac``, ``ha``, ``mn``, ``auc``, ``lab``,
  ``gateway``, ``ar``).
- No module imports itself in a circle, and no package does.

Every ``import`` counts, wherever it stands (a function-level one is a dependency as
much as a module-level one). The rule reads imports only: a pure module that opened a
file with ``open()`` would pass; reading configuration files where a program starts is
allowed (``tls.load_certificates``, ``pki``), opening connections is not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests", "bench"}

IO_LIBRARIES = frozenset({
    "twisted", "zope",  # the reactor, and the interfaces Twisted adapters declare
    "socket", "select", "selectors", "asyncio",  # sockets and event loops
    "subprocess", "multiprocessing", "signal", "resource", "fcntl",  # processes and the OS
    "sqlite3", "psycopg",  # store drivers
})
"""Top-level modules a pure module or a core never imports."""

PURE_SOCKET_NAMES = frozenset({"inet_pton", "inet_ntop", "AF_INET", "AF_INET6", "AddressFamily"})
"""What of ``socket`` is pure (address text <-> octets): a pure module may use these only."""

IO_ROOMS: Mapping[str, frozenset[str]] = {
    # Twisted adapters of the library: reactor, transports, Deferreds, and the OS
    # objects the reactor reads (TUN devices, the kernel's route choice).
    "aaa_mip6.twisted": IO_LIBRARIES,
    # The store drivers: blocking database I/O behind aaa_mip6.store.base's interface.
    "aaa_mip6.store": frozenset({"sqlite3", "psycopg", "fcntl"}),
    # What every program does at its edges: exit statuses, signals, the open-file limit.
    "aaa_mip6.program": frozenset({"signal", "resource"}),
    # The CLI verbs' blocking client of a program's control socket.
    "aaa_mip6.control_client": frozenset({"socket"}),
}
"""The library's I/O rooms and the I/O libraries each may import."""

PURE_IN_ROOMS = frozenset({"aaa_mip6.store.base"})
"""Modules inside a room that are pure all the same (the store's interface and types)."""

CORES = frozenset({
    "hac.core", "hac.provisioning", "hac.sa_delivery_core", "hac.actions",
    "ha.core", "ha.bindings", "ha.admission", "ha.actions",
    "mn.bootstrap", "mn.mobility", "mn.rebootstrap", "mn.hacs", "mn.eap", "mn.actions",
    "mn.binding",
    "auc.core", "load.core",
})
"""The programs' sans-I/O cores and codecs (a package stands for all its modules)."""

PROGRAMS = frozenset({"hac", "ha", "mn", "auc", "lab", "gateway", "load", "ar"})
"""Top-level packages the library must not import."""

# --- allowances: each names why, and goes when its reason does -------------------------

KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()
"""Cycles that exist today and are being removed; each must still be one (else drop it)."""


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a project module when it is one, else the dotted name as written
    line: int


def _inside(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the shipped packages under ``root``: dotted name -> file."""
    modules = {}
    for package in sorted(root.iterdir()):
        if package.name in NOT_SHIPPED or not (package / "__init__.py").is_file():
            continue
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def imports(modules: Mapping[str, Path]) -> list[Import]:
    """Every import of every module, resolved to a project module where it names one."""
    found = []
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(module, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _base(module, path, node)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    found.append(Import(module, submodule if submodule in modules else base,
                                        node.lineno))
    return found


def _room(module: str) -> str | None:
    if module in PURE_IN_ROOMS:
        return None
    return next((room for room in IO_ROOMS if _inside(module, room)), None)


def _is_pure(module: str) -> bool:
    """A pure library module or a core: held to the sans-I/O rule."""
    if _inside(module, "aaa_mip6"):
        return _room(module) is None
    return any(_inside(module, core) for core in CORES)


def _socket_names(path: Path) -> set[str]:
    """What a module uses of ``socket``: ``socket.NAME`` attributes and from-imported names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "socket":
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "socket":
            names.update(alias.name for alias in node.names)
    return names


def layering_violations(modules: Mapping[str, Path],
                        found: Iterable[Import]) -> list[str]:
    """One line per import that breaks the rules in the module docstring."""
    violations = []
    for item in found:
        importer, target = item.importer, item.target
        where = f"{importer} (line {item.line}) imports {target}"
        top = target.split(".")[0]
        if _inside(importer, "aaa_mip6") and top in PROGRAMS:
            violations.append(f"{where}: the library imports no program")
        room = _room(importer)
        if room is not None:
            if top in IO_LIBRARIES and top not in IO_ROOMS[room]:
                violations.append(f"{where}: {room} may import only "
                                  f"{', '.join(sorted(IO_ROOMS[room]))} of the I/O libraries")
            continue
        if not _is_pure(importer):
            continue
        if top == "socket":
            impure = _socket_names(modules[importer]) - PURE_SOCKET_NAMES
            if impure:
                violations.append(f"{where} and uses socket.{sorted(impure)[0]}: sans-I/O "
                                  f"code uses only {', '.join(sorted(PURE_SOCKET_NAMES))}")
        elif top in IO_LIBRARIES:
            violations.append(f"{where}: sans-I/O code imports no I/O library")
        elif target in modules and _room(target) is not None:
            violations.append(f"{where}: sans-I/O code imports no I/O room "
                              f"({_room(target)})")
        elif target in modules and not _inside(importer, "aaa_mip6") \
                and not _inside(target, "aaa_mip6") and not _is_pure(target):
            violations.append(f"{where}: a core imports only the library and other cores")
    return list(dict.fromkeys(violations))  # one line for an import of several names


def cycles(edges: Mapping[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one node, or a self-loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def module_graph(modules: Mapping[str, Path], found: Iterable[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in modules}
    for item in found:
        if item.target in modules and item.target != item.importer:
            edges[item.importer].add(item.target)
    return edges


def package_graph(module_edges: Mapping[str, set[str]]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for importer, targets in module_edges.items():
        top = importer.split(".")[0]
        edges.setdefault(top, set()).update(
            target.split(".")[0] for target in targets if target.split(".")[0] != top)
    return edges


# --- the project's tree ---------------------------------------------------------------

MODULES = project_modules(REPO)
IMPORTS = imports(MODULES)


def test_the_packages_are_found():
    assert {"aaa_mip6", "hac", "ha", "mn"} <= {name.split(".")[0] for name in MODULES}
    assert all(core in MODULES for core in CORES), "a core named here no longer exists"
    assert all(room in MODULES for room in IO_ROOMS), "a room named here no longer exists"


def test_every_allowance_is_still_needed():
    """An allowance that no longer matches anything fails, so that it is removed."""
    assert KNOWN_CYCLES <= {frozenset(c) for c in cycles(module_graph(MODULES, IMPORTS))}


def test_sans_io_code_imports_no_io_and_the_library_no_program():
    assert layering_violations(MODULES, IMPORTS) == []


def test_no_module_imports_itself_in_a_circle():
    found = [component for component in cycles(module_graph(MODULES, IMPORTS))
             if frozenset(component) not in KNOWN_CYCLES]
    assert found == []


def test_no_package_imports_itself_in_a_circle():
    assert cycles(package_graph(module_graph(MODULES, IMPORTS))) == []


# --- the checks catch what they are for -----------------------------------------------


def _tree(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for path in list(root.rglob("*.py")):
        for directory in path.relative_to(root).parents[:-1]:
            (root / directory / "__init__.py").touch()
    return project_modules(root)


@pytest.mark.parametrize(("files", "expected"), [
    ({"aaa_mip6/sa.py": "import socket\nsocket.socket()\n"}, "uses socket.socket"),
    ({"aaa_mip6/sa.py": "from twisted.internet import defer\n"}, "imports no I/O library"),
    ({"aaa_mip6/sa.py": "def f():\n    import subprocess\n"}, "imports no I/O library"),
    ({"aaa_mip6/diameter/codec.py": "from ..twisted import node\n",
      "aaa_mip6/twisted/node.py": ""}, "imports no I/O room (aaa_mip6.twisted)"),
    ({"aaa_mip6/sa.py": "from aaa_mip6.store import open_store\n",
      "aaa_mip6/store/sqlite.py": "import sqlite3\n"}, "imports no I/O room (aaa_mip6.store)"),
    ({"aaa_mip6/sa.py": "from hac import core\n", "hac/core.py": ""}, "imports no program"),
    ({"aaa_mip6/sa.py": "import gateway.cli\n"}, "imports no program"),
    ({"hac/core.py": "import psycopg\n"}, "imports no I/O library"),
    ({"mn/eap/md5.py": "from twisted.internet import reactor\n"}, "imports no I/O library"),
    ({"ha/core.py": "from .server import x\n", "ha/server.py": ""},
     "a core imports only the library and other cores"),
    ({"aaa_mip6/store/sqlite.py": "from twisted.internet import threads\n"},
     "aaa_mip6.store may import only fcntl, psycopg, sqlite3"),
])
def test_a_planted_violation_is_found(tmp_path, files, expected):
    modules = _tree(tmp_path, files)
    violations = layering_violations(modules, imports(modules))
    assert len(violations) == 1 and expected in violations[0], violations


@pytest.mark.parametrize("files", [
    {"aaa_mip6/tvheaders.py": "import socket\nsocket.inet_pton(socket.AF_INET6, 'x')\n"},
    {"aaa_mip6/twisted/node.py": "import socket\nfrom twisted.internet import reactor\n"},
    {"aaa_mip6/store/sqlite.py": "import sqlite3\nfrom .base import SAStore\n",
     "aaa_mip6/store/base.py": ""},
    {"hac/core.py": "from aaa_mip6.store.base import SAStore\nfrom ha import bindings\n",
     "aaa_mip6/store/base.py": "", "ha/bindings.py": ""},
    {"hac/server.py": "from twisted.internet import reactor\nfrom aaa_mip6.twisted import x\n",
     "aaa_mip6/twisted/x.py": ""},
])
def test_what_the_rules_allow_passes(tmp_path, files):
    modules = _tree(tmp_path, files)
    assert layering_violations(modules, imports(modules)) == []


def test_a_planted_cycle_is_found(tmp_path):
    modules = _tree(tmp_path, {"aaa_mip6/a.py": "from . import b\n",
                               "aaa_mip6/b.py": "def f():\n    from aaa_mip6 import c\n",
                               "aaa_mip6/c.py": "import aaa_mip6.a\n",
                               "hac/x.py": "import mn.y\n", "mn/y.py": "from hac import x\n"})
    edges = module_graph(modules, imports(modules))
    assert cycles(edges) == [{"aaa_mip6.a", "aaa_mip6.b", "aaa_mip6.c"}, {"hac.x", "mn.y"}]
    assert cycles(package_graph(edges)) == [{"hac", "mn"}]
