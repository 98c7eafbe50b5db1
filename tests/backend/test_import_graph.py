"""No import cycle in the backend package, lazy (in-function) imports included: a factory that
imports its products from inside a module they import back is exactly such a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "app"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports, anywhere but under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
    while pending:
        node = pending.pop()
        if _type_checking_only(node):
            continue
        pending.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from app.api.routes import health` imports the module app.api.routes.health.
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found & known


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    files = {_module_name(p, package_dir.parent): p for p in package_dir.rglob("*.py")}
    known = set(files)
    return {name: _imports(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_backend_has_no_import_cycle() -> None:
    graph = import_graph(ROOT / PACKAGE)
    assert "app.services.storage_factory" in graph  # the graph is the real one
    assert find_cycle(graph) is None


def test_a_lazy_import_cycle_is_found(tmp_path: Path) -> None:
    """The check can fail: the shape the storage factory had (storage.py importing its
    implementations inside a function, which import storage.py at the top)."""
    pkg = tmp_path / "app"
    (pkg / "services").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "services" / "__init__.py").write_text("")
    (pkg / "services" / "storage.py").write_text(
        "def build():\n    from app.services.local import Local\n    return Local()\n"
    )
    (pkg / "services" / "local.py").write_text("from app.services.storage import build\n")
    cycle = find_cycle(import_graph(pkg))
    assert cycle is not None and set(cycle) == {"app.services.storage", "app.services.local"}
