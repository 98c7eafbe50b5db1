"""The embedded default's generated secret is created once and then reused."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ecg_protocol.secret import SECRET_FILE, load_or_create_secret


def test_secret_is_created_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "data" / SECRET_FILE).stat().st_mode)
    assert mode == 0o600
    assert load_or_create_secret(tmp_path / "data") == first


def test_concurrent_first_use_agrees_on_one_secret(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        values = set(pool.map(lambda _: load_or_create_secret(tmp_path), range(16)))
    assert len(values) == 1
    assert not list(tmp_path.glob("*.tmp"))
