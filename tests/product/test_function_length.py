"""No function in the product packages is over 60 lines (issue 10): past that, a named step is
hiding inside and the next engineer has to find it."""

from __future__ import annotations

import ast

from tests.support.procs import REPO_ROOT

PACKAGES = ("app", "ml_server", "ecg_protocol", "ecg_serving", "ecg_cli")
MAX_LINES = 60


def long_functions(source: str, *, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in `source` longer than `limit` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((node.name, length))
    return found


def test_the_checker_sees_a_long_function_and_a_long_method() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    method_body = body.replace("    ", "        ")
    source = f"def long():\n{body}\n\nclass C:\n    async def m(self):\n{method_body}\n"
    assert [name for name, _ in long_functions(source)] == ["long", "m"]
    assert long_functions("def short():\n    return 1\n") == []


def test_no_product_function_is_over_60_lines() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{name} ({lines} lines)"
        for package in PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders
