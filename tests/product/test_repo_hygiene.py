"""The tree carries no leftovers of a merge: a conflict marker in a doc or module is a bug."""

from __future__ import annotations

import subprocess

from tests.support.procs import REPO_ROOT

MARKERS = ("<<<<<<< ", ">>>>>>> ")


def test_no_merge_conflict_markers_in_tracked_files() -> None:
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    hits = []
    for name in files:
        path = REPO_ROOT / name
        if path.suffix not in {".py", ".md", ".toml", ".js", ".html", ".css", ".ini", ""}:
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        hits += [f"{name}:{n}" for n, line in enumerate(lines, 1) if line.startswith(MARKERS)]
    assert not hits, hits
