"""Slow clients on real sockets (slowloris): connect, send part of a request's headers, then
trickle a byte now and then; and tell whether the server has closed each connection.

    socks = open_partial_requests("127.0.0.1", port, 300)
    wait_all_closed(socks, timeout_s=20)    # trickles while it waits; fails naming how many live
"""

from __future__ import annotations

import contextlib
import socket
import time

PARTIAL_REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def open_partial_requests(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` connections, each with an unfinished header block sent."""
    socks: list[socket.socket] = []
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(PARTIAL_REQUEST)
        s.setblocking(False)
        socks.append(s)
    return socks


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed (or reset) the connection; never blocks."""
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return False
    except OSError:  # reset by the server
        return True
    if data == b"":
        return True
    # An answer before the close (e.g. 408): read on; the empty read is the close itself.
    return closed_by_server(sock)


def trickle(socks: list[socket.socket]) -> None:
    """One more header byte on every connection still open (what keeps a naive server waiting)."""
    for s in socks:
        with contextlib.suppress(OSError):
            s.send(b"a")


def count_open(socks: list[socket.socket]) -> int:
    return sum(1 for s in socks if not closed_by_server(s))


def wait_all_closed(
    socks: list[socket.socket], *, timeout_s: float, trickle_every_s: float = 0.5
) -> float:
    """Trickle until the server has closed every connection; seconds it took."""
    start = time.monotonic()
    open_socks = list(socks)
    while open_socks:
        open_socks = [s for s in open_socks if not closed_by_server(s)]
        if not open_socks:
            break
        if time.monotonic() - start > timeout_s:
            raise AssertionError(
                f"{len(open_socks)} of {len(socks)} slow connections still open after {timeout_s}s"
            )
        trickle(open_socks)
        time.sleep(trickle_every_s)
    return time.monotonic() - start


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()
