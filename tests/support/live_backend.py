"""The backend app served by uvicorn on a free loopback port, in a thread: for a browser
(Playwright) or any client that needs a real socket, without starting the ML server's models.
The fake ML server stands behind it; its callbacks reach this backend over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from app.main import create_app
from tests.support.backend import SECRET, make_settings
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port


@dataclass(frozen=True)
class LiveBackend:
    url: str
    fake_ml: FakeMLServer


@contextmanager
def live_backend(tmp_path: Path, **overrides: object) -> Iterator[LiveBackend]:
    """A started backend on SQLite and local storage, the fake ML server behind it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeMLServer(secret=SECRET) as fake:
        settings = make_settings(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'ecg.db'}",
            model_server_url=fake.url,
            fastapi_base_url=url,
            jwt_secret=None,
            **overrides,
        )
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"backend did not start on :{port}")
            time.sleep(0.05)
        try:
            yield LiveBackend(url=url, fake_ml=fake)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
