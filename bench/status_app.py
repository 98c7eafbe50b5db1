"""Bench-only app: the real backend plus a bare FastAPI endpoint on the same server, so both are
measured in one process under one uvicorn configuration. Production code is untouched."""

from __future__ import annotations

import os

from fastapi import FastAPI, Response
from fastapi.routing import APIRoute

from app.main import create_app

BARE_PATH = "/bench/bare"
# Same-size control: a constant body as large as the status answer (bytes from the env).
SIZED_PATH = "/bench/bare-sized"
_SIZED = Response(content=b"x" * int(os.environ.get("BENCH_SIZED_BYTES", "0") or 0))


async def bare() -> dict[str, object]:
    """The floor: FastAPI routing + JSON serialization of a small constant answer, no I/O."""
    return {
        "job_id": "00000000-0000-4000-8000-000000000000",
        "status": "completed",
        "progress": 100,
    }


async def bare_sized() -> Response:
    """A constant body the size of the status answer: separates size from the route's work."""
    return Response(content=_SIZED.body, media_type="application/json")


def create() -> FastAPI:
    app = create_app()
    # Before the static mount at "/", which would otherwise answer this path.
    app.router.routes.insert(0, APIRoute(BARE_PATH, bare, methods=["GET"]))
    app.router.routes.insert(0, APIRoute(SIZED_PATH, bare_sized, methods=["GET"]))
    return app
