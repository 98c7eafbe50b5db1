"""No import cycle between the product's modules (app, ml_server, ecg_protocol, ecg_serving,
ecg_cli).

Every `import` counts wherever it is written: at module level, inside a function, or under
`if TYPE_CHECKING:`. A lazy or type-only import does not remove a cycle, it only hides it
from the interpreter; the modules still cannot be understood (or moved) one without the other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "ml_server", "ecg_protocol", "ecg_serving", "ecg_cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if ".venv" not in p.parts
    }


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name `from ... import` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    # In a package's __init__, `.` is the package itself; elsewhere it is the parent.
    keep = len(base) - node.level + (1 if is_package else 0)
    prefix = base[:keep]
    return ".".join([*prefix, node.module] if node.module else prefix)


def _targets(module: str, path: Path, tree: ast.AST, known: Iterable[str]) -> set[str]:
    """The product modules `module` imports, anywhere in its body."""
    known = set(known)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            # `from pkg import mod` imports the module pkg.mod when there is one.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for name in names:
            # `import a.b.c` of a name that is not a module: its nearest enclosing module.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: _targets(name, path, ast.parse(path.read_text(encoding="utf-8")), modules)
        for name, path in modules.items()
    }


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
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
                    components.append(sorted(component))
    return components


def _cycle_through(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One concrete cycle inside a component, as a path `a → b → … → a` (shortest from a)."""
    inside = set(members)
    start = members[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for target in sorted(graph[node] & inside):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if target not in parents:
                    parents[target] = node
                    nxt_frontier.append(target)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle in component {members}")  # Tarjan guarantees one


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    return [_cycle_through(graph, c) for c in _strongly_connected(graph)]


def test_the_checker_finds_a_cycle() -> None:
    """The checker itself: a planted three-module cycle is found and reported as a path."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_sees_function_level_and_relative_imports() -> None:
    """A lazy import inside a function and a relative import are edges like any other."""
    tree = ast.parse("def f():\n    from ml_server import runner\nfrom .store import JobStore\n")
    known = {"ml_server.executor", "ml_server.runner", "ml_server.store", "ml_server"}
    found = _targets("ml_server.executor", ROOT / "ml_server/executor.py", tree, known)
    assert found == {"ml_server.runner", "ml_server.store"}


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert "ml_server.api" in graph and "app.main" in graph  # it walked the real code
    report = [
        f"{' → '.join(_cycle_through(graph, c))}   (all entangled: {', '.join(c)})"
        for c in _strongly_connected(graph)
    ]
    assert not report, "import cycles:\n" + "\n".join(report)
