"""Fixtures: a real `ecg ml-server` process, a callback receiver and a media server (helpers in
tests/support/ml_service.py and tests/support/local_servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_servers import CallbackReceiver, MediaServer
from tests.support.ml_service import MLServer, start_ml_server


@pytest.fixture(scope="session")
def ml_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    root = tmp_path_factory.mktemp("ml-server")
    tmp_dir = root / "tmp"
    tmp_dir.mkdir()
    with start_ml_server(root, tmp_dir) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    yield server
    server.close()
