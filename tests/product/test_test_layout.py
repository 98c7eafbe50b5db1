"""The test tree's layout rule: shared helpers live in tests/support, so no module imports a test
module or a conftest, and a helper left in a test folder is used only by that folder.

A test module imported elsewhere runs its tests twice and ties two suites together; a conftest
imported as a module is a second copy of its fixtures' helpers. Both are checked on the source
(ast, nothing is imported), over tests/ and bench/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import REPO_ROOT

SCANNED = ("tests", "bench")


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(tree: ast.Module, rel: Path) -> Iterator[tuple[int, str]]:
    """Every dotted name an import statement may load, relative imports resolved; for `from A
    import b` both `A` and `A.b` (b may be a submodule)."""
    package = _module_name(rel) if rel.name == "__init__.py" else _module_name(rel.parent)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            prefix = ".".join(base_parts) if node.level else ""
            base = ".".join(p for p in (prefix, node.module or "") if p)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _file_of(name: str, files: set[Path]) -> Path | None:
    """The repository file a dotted name is (a module or a package's __init__), if any."""
    path = Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate in files:
            return candidate
    return None


def layout_violations(sources: dict[Path, str]) -> list[str]:
    """`sources`: repository-relative path → source text. One line per import that breaks the
    rule, as `path:line: imports target (why)`."""
    files = set(sources)
    found: list[str] = []
    for rel, text in sorted(sources.items()):
        for line, name in _imported_names(ast.parse(text, str(rel)), rel):
            target = _file_of(name, files)
            if target is None or target == rel:
                continue
            why = _why_not(rel, target)
            if why:
                found.append(f"{rel}:{line}: imports {target} ({why})")
    return sorted(set(found))


def _why_not(importer: Path, target: Path) -> str | None:
    if target.name.startswith("test_"):
        return "a test module; move what it shares to tests/support"
    if target.name == "conftest.py":
        return "a conftest; move the helper to tests/support, keep the fixture"
    in_test_folder = target.parts[0] == "tests" and len(target.parts) > 2
    helper = in_test_folder and target.parts[1] != "support" and target.name != "__init__.py"
    if helper and importer.parent != target.parent:
        return "a helper of another test folder; move it to tests/support"
    return None


def _repository_sources() -> dict[Path, str]:
    return {
        path.relative_to(REPO_ROOT): path.read_text(encoding="utf-8")
        for top in SCANNED
        for path in (REPO_ROOT / top).rglob("*.py")
    }


def test_no_module_imports_a_test_module_a_conftest_or_another_folders_helper() -> None:
    sources = _repository_sources()
    assert Path("tests/support/results.py") in sources  # the scan sees the tree
    assert layout_violations(sources) == []


def test_the_check_catches_each_kind_of_forbidden_import() -> None:
    sources = {
        Path("tests/__init__.py"): "",
        Path("tests/a/__init__.py"): "",
        Path("tests/a/conftest.py"): "X = 1\n",
        Path("tests/a/helpers.py"): "Y = 1\n",
        Path("tests/a/test_one.py"): "from tests.a.helpers import Y\nfrom .conftest import X\n",
        Path("tests/b/__init__.py"): "",
        Path("tests/b/test_two.py"): "from tests.a import test_one\nimport tests.a.helpers\n",
        Path("tests/support/__init__.py"): "",
        Path("tests/support/ok.py"): "Z = 1\n",
        Path("bench/run.py"): "from tests.support.ok import Z\nfrom tests.a.test_one import Y\n",
    }
    assert layout_violations(sources) == [
        "bench/run.py:2: imports tests/a/test_one.py (a test module; move what it shares to "
        "tests/support)",
        "tests/a/test_one.py:2: imports tests/a/conftest.py (a conftest; move the helper to "
        "tests/support, keep the fixture)",
        "tests/b/test_two.py:1: imports tests/a/test_one.py (a test module; move what it "
        "shares to tests/support)",
        "tests/b/test_two.py:2: imports tests/a/helpers.py (a helper of another test folder; "
        "move it to tests/support)",
    ]
