"""The uvicorn runner both services use: headers must arrive in time, idle connections close.
Real sockets against a real uvicorn server (in a thread, on a free port)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ecg_serving.server import timeout_options
from tests.support.net import free_port
from tests.support.slow_clients import (
    close_all,
    closed_by_server,
    count_open,
    open_partial_requests,
    wait_all_closed,
)

HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1


async def _ok(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


def read_ok(s: socket.socket) -> bytes:
    """One whole `ok` answer (uvicorn may write its head and its body separately)."""
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = s.recv(4096)
        assert chunk, f"closed before the answer was complete: {data!r}"
        data += chunk
    return data


@pytest.fixture
def server() -> Iterator[int]:
    """A uvicorn server with the runner's timeouts (short ones); its port."""
    port = free_port()
    app = Starlette(routes=[Route("/health", _ok)])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        **timeout_options(header_timeout_s=HEADER_TIMEOUT_S, keep_alive_s=KEEP_ALIVE_S),
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_slow_headers_are_cut_off_and_others_still_served(server: int) -> None:
    socks = open_partial_requests("127.0.0.1", server, 300)
    try:
        # Not closed at once: the deadline is a time, not a refusal of partial data.
        assert count_open(socks) == 300
        with httpx.Client(timeout=5) as client:
            assert client.get(f"http://127.0.0.1:{server}/health").text == "ok"
        # Trickling a byte every 0.2 s does not extend the deadline.
        took = wait_all_closed(socks, timeout_s=HEADER_TIMEOUT_S + 15, trickle_every_s=0.2)
        assert took >= HEADER_TIMEOUT_S * 0.5
    finally:
        close_all(socks)


def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    s = socket.create_connection(("127.0.0.1", server), timeout=5)
    s.setblocking(False)
    try:
        wait_all_closed([s], timeout_s=HEADER_TIMEOUT_S + 15, trickle_every_s=10)
    finally:
        s.close()


def test_idle_keep_alive_and_a_stalled_second_request_are_closed(server: int) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    for second in (b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"):
        s = socket.create_connection(("127.0.0.1", server), timeout=5)
        try:
            s.sendall(request)
            assert read_ok(s).startswith(b"HTTP/1.1 200")
            s.sendall(second)  # nothing more (idle), or the next request's headers, unfinished
            s.setblocking(False)
            wait_all_closed(
                [s], timeout_s=KEEP_ALIVE_S + HEADER_TIMEOUT_S + 15, trickle_every_s=0.2
            )
        finally:
            s.close()


def test_a_complete_request_on_a_kept_alive_connection_is_served(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        for _ in range(3):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_ok(s).startswith(b"HTTP/1.1 200")
        s.setblocking(False)
        assert not closed_by_server(s)
