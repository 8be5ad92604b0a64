"""The package's import graph has no cycle: dependencies point one way, down the pipeline.

The graph is read from the source (AST only, nothing is imported) and counts every import
statement anywhere in a module: at module level, inside functions, and under ``if TYPE_CHECKING:``
(a lazy or type-only import still ties the two modules together, and is where cycles hide until
the import order changes). Relative imports are resolved. ``from pkg import name`` depends on
``pkg`` and, when ``name`` is a submodule, on ``pkg.name`` too. A package ``__init__`` may import
its own submodules (re-exports) as long as none of them imports the package back.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "modelshield"

#: (importer, imported) -> where: "file:line" of each import statement making the edge.
Edges = dict[tuple[str, str], list[str]]


def modules(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of ``package`` under ``src``."""
    found: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Every dotted name an import statement refers to (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_edges(src: Path, package: str) -> tuple[set[str], Edges]:
    """The package's modules and the import edges between them."""
    known = modules(src, package)
    edges: Edges = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported_names(node, module, path.name == "__init__.py"):
                if name in known and name != module:
                    where = f"{path.relative_to(src.parent)}:{node.lineno}"
                    sites = edges.setdefault((module, name), [])
                    if where not in sites:
                        sites.append(where)
    return set(known), edges


def _reachable(start: str, successors: dict[str, set[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in successors[queue.popleft()] - seen:
            seen.add(nxt)
            queue.append(nxt)
    return seen


def cyclic_groups(nodes: set[str], edges: Edges) -> list[list[str]]:
    """The strongly connected components with more than one module, each sorted, in name order."""
    forward: dict[str, set[str]] = {n: set() for n in nodes}
    backward: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        forward[a].add(b)
        backward[b].add(a)
    groups: list[list[str]] = []
    done: set[str] = set()
    for node in sorted(nodes):
        if node in done:
            continue
        group = _reachable(node, forward) & _reachable(node, backward)
        done |= group
        if len(group) > 1:
            groups.append(sorted(group))
    return groups


def _shortest_cycle(start: str, group: set[str], edges: Edges) -> list[str]:
    """The shortest path ``start -> ... -> start`` inside ``group`` (it exists: the group is strongly connected)."""
    successors: dict[str, list[str]] = {n: [] for n in group}
    for a, b in sorted(edges):
        if a in group and b in group:
            successors[a].append(b)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in successors[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is on no cycle of {sorted(group)}")


def describe_cycles(groups: list[list[str]], edges: Edges) -> str:
    """Each group as cycles ``a -> b -> ... -> a``, shortest first, until every module of it is shown.

    Under each cycle, every edge with the file:line of the import statements that make it.
    """
    out: list[str] = []
    for group in groups:
        out.append(f"import cycle among {len(group)} modules: {', '.join(group)}")
        candidates = sorted((_shortest_cycle(start, set(group), edges) for start in group), key=lambda c: (len(c), c))
        covered: set[str] = set()
        for cycle in candidates:
            if set(cycle) <= covered:
                continue
            covered |= set(cycle)
            out.append("  " + " -> ".join(cycle))
            for a, b in zip(cycle, cycle[1:], strict=False):
                out.append(f"      {a} -> {b}  ({', '.join(edges[(a, b)])})")
    return "\n".join(out)


def test_modelshield_has_no_import_cycle() -> None:
    nodes, edges = import_edges(SRC, PACKAGE)
    assert len(nodes) > 50 and ("modelshield.scan", "modelshield.formats.interface") in edges  # the real package
    groups = cyclic_groups(nodes, edges)
    assert not groups, (
        "Imports must point one way (a stage imports the contracts below it, never back). Move the shared "
        "names to a lower module, import a sibling module directly instead of its package, or invert the "
        "call.\n" + describe_cycles(groups, edges)
    )


def _write(src: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return src


def test_every_kind_of_import_counts_and_cycles_are_shown_with_their_lines(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "src",
        {
            "pkg/__init__.py": "from pkg.sub.b import B\n",
            "pkg/a.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.sub import b\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "def f():\n    from ..c import C\n",
            "pkg/c.py": "import pkg.a as a\nfrom . import d\n",
            "pkg/d.py": "from .sub.b import f\n",
            "pkg/e.py": "import os\nfrom pkg import a\n",
        },
    )
    nodes, edges = import_edges(src, "pkg")
    assert nodes == {"pkg", "pkg.a", "pkg.c", "pkg.d", "pkg.e", "pkg.sub", "pkg.sub.b"}
    assert edges == {
        ("pkg", "pkg.sub.b"): ["src/pkg/__init__.py:1"],
        ("pkg.a", "pkg.sub"): ["src/pkg/a.py:4"],  # under TYPE_CHECKING: the package and the submodule
        ("pkg.a", "pkg.sub.b"): ["src/pkg/a.py:4"],
        ("pkg.sub.b", "pkg.c"): ["src/pkg/sub/b.py:2"],  # inside a function, relative two levels up
        ("pkg.c", "pkg.a"): ["src/pkg/c.py:1"],
        ("pkg.c", "pkg"): ["src/pkg/c.py:2"],  # `from . import d` reads the package itself
        ("pkg.c", "pkg.d"): ["src/pkg/c.py:2"],
        ("pkg.d", "pkg.sub.b"): ["src/pkg/d.py:1"],
        ("pkg.e", "pkg"): ["src/pkg/e.py:2"],
        ("pkg.e", "pkg.a"): ["src/pkg/e.py:2"],
    }
    groups = cyclic_groups(nodes, edges)
    assert groups == [["pkg", "pkg.a", "pkg.c", "pkg.d", "pkg.sub.b"]]  # pkg.sub and pkg.e are on no cycle
    assert describe_cycles(groups, edges).splitlines() == [
        "import cycle among 5 modules: pkg, pkg.a, pkg.c, pkg.d, pkg.sub.b",
        "  pkg -> pkg.sub.b -> pkg.c -> pkg",
        "      pkg -> pkg.sub.b  (src/pkg/__init__.py:1)",
        "      pkg.sub.b -> pkg.c  (src/pkg/sub/b.py:2)",
        "      pkg.c -> pkg  (src/pkg/c.py:2)",
        "  pkg.a -> pkg.sub.b -> pkg.c -> pkg.a",
        "      pkg.a -> pkg.sub.b  (src/pkg/a.py:4)",
        "      pkg.sub.b -> pkg.c  (src/pkg/sub/b.py:2)",
        "      pkg.c -> pkg.a  (src/pkg/c.py:1)",
        "  pkg.d -> pkg.sub.b -> pkg.c -> pkg.d",
        "      pkg.d -> pkg.sub.b  (src/pkg/d.py:1)",
        "      pkg.sub.b -> pkg.c  (src/pkg/sub/b.py:2)",
        "      pkg.c -> pkg.d  (src/pkg/c.py:2)",
    ]


def test_an_acyclic_package_passes(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": "from pkg.a import A\n", "pkg/a.py": "from pkg.b import B\n", "pkg/b.py": ""}
    nodes, edges = import_edges(_write(tmp_path / "src", files), "pkg")
    assert set(edges) == {("pkg", "pkg.a"), ("pkg.a", "pkg.b")}
    assert cyclic_groups(nodes, edges) == []
