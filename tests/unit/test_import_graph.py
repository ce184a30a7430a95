"""No import circles in exportwatch (the layer) or exportwatch_local (the CLI and the local stack).

The graph is read from the source with ast, never by importing. An edge A -> B is any `import` of B in A:
at module level, inside a function (a deferred import hides a circle, it does not remove one) and under
`if TYPE_CHECKING:` too. A type-only import never runs, but it is still a dependency: A cannot be read, checked
or moved without B, and `if TYPE_CHECKING` is the usual way a circle gets hidden (observability <-> poll was one:
observability named poll's CycleSummary that way). A type both modules need lives in a third module.
Only explicit imports count; a package's own __init__.py is a node like any module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from support.paths import REPO_ROOT

PACKAGES = {
    "exportwatch": REPO_ROOT / "layers" / "exportwatch" / "exportwatch",
    "exportwatch_local": REPO_ROOT / "local" / "exportwatch_local",
}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement anywhere in the module: top level, functions, `if TYPE_CHECKING:` blocks."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` (at `path`) imports."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for stmt in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(stmt, ast.Import):
            targets = [alias.name for alias in stmt.names]
        else:
            base = stmt.module or ""
            if stmt.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                anchor = here[: len(here) - (stmt.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` imports mod.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in stmt.names]
        for target in targets:
            while target and target not in known:  # `import a.b.c`: the deepest module of ours it names
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_packages_have_no_import_circle() -> None:
    graph = import_graph()
    assert "exportwatch.poll" in graph and "exportwatch_local.cli" in graph  # the walk found the sources
    circles = cycles(graph)
    described = ["; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c) for c in circles]
    assert circles == [], "import circles: " + " | ".join(described)


def test_the_checker_sees_deferred_and_type_checking_imports(tmp_path: Path) -> None:
    """The rules above, on a made-up package: function-level, TYPE_CHECKING and relative imports are edges."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n")
    (pkg / "c.py").write_text("from . import a\nimport pkg.b\n")
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    graph = {name: imports_of(name, pkg / f"{name.split('.')[-1]}.py", known) for name in known - {"pkg"}}
    graph["pkg"] = set()
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a", "pkg.b"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    graph["pkg.b"] = set()
    assert cycles(graph) == []
