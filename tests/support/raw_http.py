"""A POST sent the way an attacker sends it: a raw socket, the body streamed while the answer
is listened for, so a server that answers before reading is seen doing so.

    status, sent = raw_post(port, "/api/upload-video/result", headers={...}, size=60 * MB,
                            chunked=False)
"""

from __future__ import annotations

import select
import socket
import time

MB = 1024 * 1024


def raw_post(
    port: int,
    path: str,
    *,
    headers: dict[str, str],
    size: int,
    chunked: bool,
    timeout_s: float = 60.0,
    content_type: str = "application/json",
) -> tuple[int | None, int]:
    """POST `size` bytes the way an attacker does (raw socket, sending while listening).

    Returns the answer's status (None: closed without one) and how many body bytes went out
    before the answer came or the server closed.
    """
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    piece = b"0" * MB
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    sent = 0
    answer = b""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + b"\r\n")
        s.setblocking(False)
        pending = b""
        ended = False
        while time.monotonic() < deadline:
            if chunked and sent >= size and not ended:
                ended = True
                try:
                    s.send(b"0\r\n\r\n")  # the last chunk: the body is complete
                except OSError:
                    break
            readable, writable, _ = select.select([s], [s] if sent < size else [], [], 1.0)
            if readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                answer += data
                if b"\r\n\r\n" in answer:
                    break
            elif writable:
                if not pending:
                    pending = frame
                try:
                    n = s.send(pending)
                except OSError:  # the server closed while we were sending
                    break
                pending = pending[n:]
                if not pending:
                    sent += len(piece)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, sent
