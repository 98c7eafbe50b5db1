"""`ecg up`'s busy-port check: a live listener is busy; a port a stopped server left in
TIME_WAIT is free (uvicorn binds it with SO_REUSEADDR), so a quick restart is not refused."""

from __future__ import annotations

import socket

from ecg_cli.up import _busy_port


def test_listener_is_busy_and_time_wait_is_free() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert _busy_port("127.0.0.1", [port]) == port
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its port goes to TIME_WAIT
    client.close()
    server.close()
    assert _busy_port("127.0.0.1", [port]) is None
