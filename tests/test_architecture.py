"""The import structure of ``src/sockwise``: no cycles, between packages or between modules.

Every import is read from the source (AST), including imports inside functions (a lazy import is
still a dependency: it only hides the cycle until the function runs). Imports under
``if TYPE_CHECKING:`` are left out: they never execute and fix no import order.

Two graphs are checked:

* packages: each direct child of ``sockwise`` (``policy``, ``harden``, ``_hooks``, ...) and the
  root package ``sockwise`` itself (its ``__init__``), with an edge when any module of one
  imports any module of the other;
* modules: every module, with an edge per import.

A strongly connected component of more than one node (or a module importing itself) is a cycle.
The cycles that exist today in other areas are listed in ``KNOWN_*_CYCLES`` so the test can only
shrink: a new cycle fails, and so does a listed one that is gone (remove it from the list).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "sockwise"

#: Package-level cycles present today, each as a sorted tuple of the packages involved (none:
#: a new one fails the test).
KNOWN_PACKAGE_CYCLES: frozenset[tuple[str, ...]] = frozenset()
#: Module-level cycles present today, each as a sorted tuple of the modules involved.
KNOWN_MODULE_CYCLES: frozenset[tuple[str, ...]] = frozenset()
#: Imports of another package's private module (``sockwise.pkg._mod`` from outside ``pkg``)
#: present today, as ``(importer, imported)``; the list can only shrink.
KNOWN_PRIVATE_IMPORTS: frozenset[tuple[str, str]] = frozenset()


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is its ``__init__``).

    A C extension module is known by its stub (a ``.pyi`` with no ``.py`` beside it).
    """
    out: dict[str, Path] = {}
    stubs = [p for p in (src / ROOT).rglob("*.pyi") if not p.with_suffix(".py").exists()]
    for path in sorted([*(src / ROOT).rglob("*.py"), *stubs]):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under *node*, except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The sockwise modules that module *name* (file *path*) imports, lazily or not."""
    known = set(modules)
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if not (module == ROOT or module.startswith(ROOT + ".")):
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in known else module)
    found.discard(name)
    return found


def module_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the sockwise modules it imports."""
    files = module_files(src)
    return {name: imports_of(name, path, files) for name, path in files.items()}


def package_of(module: str) -> str:
    """The direct child of ``sockwise`` that *module* belongs to (``sockwise`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def package_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package -> the packages its modules import (edges inside one package left out)."""
    out: dict[str, set[str]] = {}
    for module, targets in modules.items():
        mine = package_of(module)
        out.setdefault(mine, set()).update(package_of(t) for t in targets)
        out[mine].discard(mine)
    return out


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(tuple(sorted(component)))
    return found


def _describe(graph: dict[str, set[str]], component: tuple[str, ...]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph.get(a, ())) if b in members]
    return f"{' / '.join(component)}: {'; '.join(edges)}"


def test_no_package_level_import_cycles() -> None:
    graph = package_graph(module_graph())
    found = cycles(graph)
    new = sorted(found - KNOWN_PACKAGE_CYCLES)
    assert not new, "package import cycles:\n" + "\n".join(_describe(graph, c) for c in new)
    gone = KNOWN_PACKAGE_CYCLES - found
    assert not gone, f"cycles fixed, remove them from KNOWN_PACKAGE_CYCLES: {sorted(gone)}"


def test_no_module_level_import_cycles() -> None:
    graph = module_graph()
    found = cycles(graph)
    new = sorted(found - KNOWN_MODULE_CYCLES)
    assert not new, "module import cycles:\n" + "\n".join(_describe(graph, c) for c in new)
    gone = KNOWN_MODULE_CYCLES - found
    assert not gone, f"cycles fixed, remove them from KNOWN_MODULE_CYCLES: {sorted(gone)}"


def private_imports(modules: dict[str, set[str]]) -> set[tuple[str, str]]:
    """``(importer, imported)`` where *imported* is private to a package *importer* is outside.

    ``sockwise._hooks`` (a private top-level module) is the shared low layer, open to every
    package; ``sockwise.guard._origin`` is the guard's own business, reached through
    ``sockwise.guard``'s exports.
    """
    return {
        (module, target)
        for module, targets in modules.items()
        for target in targets
        if package_of(module) != package_of(target)
        and any(part.startswith("_") for part in target.split(".")[2:])
    }


def test_no_package_reaches_into_another_packages_private_modules() -> None:
    found = private_imports(module_graph())
    new = sorted(found - KNOWN_PRIVATE_IMPORTS)
    assert not new, "private modules imported from outside their package:\n" + "\n".join(
        f"{a} -> {b}" for a, b in new
    )
    gone = KNOWN_PRIVATE_IMPORTS - found
    assert not gone, f"fixed, remove them from KNOWN_PRIVATE_IMPORTS: {sorted(gone)}"


def test_the_walker_sees_lazy_relative_and_from_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle hidden in a function, and a TYPE_CHECKING import ignored."""
    pkg = tmp_path / ROOT
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    (pkg / "__init__.py").write_text("from sockwise.a import thing\n")
    (pkg / "a" / "__init__.py").write_text("from ._impl import thing\n")
    (pkg / "a" / "_impl.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sockwise import c\n"
        "def thing():\n    from sockwise.b import _x\n    return _x\n"
    )
    (pkg / "b" / "__init__.py").write_text("")
    (pkg / "b" / "_x.py").write_text("import sockwise.a._impl\n")
    (pkg / "c.py").write_text("from . import a\n")
    modules = module_graph(tmp_path)
    assert modules["sockwise.a._impl"] == {"sockwise.b._x"}  # lazy yes, TYPE_CHECKING no
    assert modules["sockwise.b._x"] == {"sockwise.a._impl"}
    assert modules["sockwise.c"] == {"sockwise.a"}  # relative "from . import a"
    assert modules["sockwise"] == {"sockwise.a"}
    assert cycles(modules) == {("sockwise.a._impl", "sockwise.b._x")}
    assert cycles(package_graph(modules)) == {("a", "b")}
    # a._impl reaches into b's private module (and b back into a's); the root and c do not.
    assert private_imports(modules) == {
        ("sockwise.a._impl", "sockwise.b._x"),
        ("sockwise.b._x", "sockwise.a._impl"),
    }


#: What the low-level ``sockwise._net`` package may import of sockwise (besides itself).
NET_MAY_IMPORT = frozenset({"sockwise._log", "sockwise._errors"})


def test_net_is_low_level() -> None:
    """``sockwise._net`` (proc/netlink readers, addresses, predicates) is at the bottom layer."""
    graph = module_graph()
    net = [m for m in graph if m == "sockwise._net" or m.startswith("sockwise._net.")]
    assert "sockwise._net.proc" in net and "sockwise._net.netlink" in net
    above = {
        (m, t)
        for m in net
        for t in graph[m]
        if not t.startswith("sockwise._net.") and t not in NET_MAY_IMPORT
    }
    assert not above, f"sockwise._net imports from higher layers: {sorted(above)}"
