"""Annotated dependency aliases: routes read like sentences and tests override with
`app.dependency_overrides`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.services.auth import authenticate
from app.services.client_webhooks import ClientEventSender
from app.services.dispatch import Dispatcher
from app.services.job_service import JobService
from app.services.rate_limit import ProcessLimiter
from app.services.status import StatusReader
from app.services.storage import Storage


@dataclass(slots=True)
class AppContext:
    """What the lifespan builds once per app; lives on `app.state.ctx`."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    storage: Storage
    http: httpx.AsyncClient
    dispatcher: Dispatcher
    status: StatusReader
    process_limiter: ProcessLimiter
    client_events: ClientEventSender


# Cheap dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in the
# thread pool, and on the status hot path those thread hops cost more than the answer itself.
async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(
    ctx: Annotated[AppContext, Depends(get_context)],
) -> AsyncIterator[AsyncSession]:
    async with ctx.session_factory() as session:
        yield session


async def get_jobs(session: Annotated[AsyncSession, Depends(get_session)]) -> JobService:
    return JobService(session)


async def get_storage(ctx: Annotated[AppContext, Depends(get_context)]) -> Storage:
    return ctx.storage


async def get_current_user(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The caller's user id (`anonymous` without a token)."""
    return authenticate(authorization, settings)


def client_ip(request: Request, settings: Settings) -> str:
    """The client address; X-Forwarded-For only when the proxy in front is trusted."""
    if settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


async def limit_process(request: Request, ctx: Annotated[AppContext, Depends(get_context)]) -> None:
    """request-process rate limit (default 5/minute per client IP)."""
    await ctx.process_limiter.hit(client_ip(request, ctx.settings))


ContextDep = Annotated[AppContext, Depends(get_context)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
StorageDep = Annotated[Storage, Depends(get_storage)]
CurrentUser = Annotated[str, Depends(get_current_user)]
RateLimitProcess = Depends(limit_process)
