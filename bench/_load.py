"""A lean HTTP/1.1 keep-alive load generator on raw asyncio streams (httpx would be the
bottleneck on a 2-core machine): N connections, each sending GETs back to back."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadResult:
    path: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    body_bytes: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def _one_connection(
    host: str,
    port: int,
    path: str,
    warm_until: float,
    stop_at: float,
    lat: list[float],
    errors: list[int],
    sizes: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            t1 = time.perf_counter()
            if t0 >= warm_until:
                if not head.startswith(b"HTTP/1.1 200"):
                    errors.append(1)
                else:
                    lat.append(t1 - t0)
                    sizes.append(len(body))
    finally:
        writer.close()


async def run_load(
    host: str, port: int, path: str, *, connections: int, warmup_s: float, duration_s: float
) -> LoadResult:
    lat: list[float] = []
    errors: list[int] = []
    sizes: list[int] = []
    start = time.perf_counter()
    warm_until = start + warmup_s
    stop_at = warm_until + duration_s
    await asyncio.gather(
        *(
            _one_connection(host, port, path, warm_until, stop_at, lat, errors, sizes)
            for _ in range(connections)
        )
    )
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) >= 100 else [lat[-1]] * 99
    return LoadResult(
        path=path,
        requests=len(lat),
        errors=len(errors),
        seconds=duration_s,
        p50_ms=statistics.median(lat) * 1000,
        p99_ms=q[98] * 1000,
        body_bytes=sizes[0] if sizes else 0,
    )
