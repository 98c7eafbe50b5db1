"""Optional Bearer JWT (HS256): `sub` is the user id that owns keys and jobs.

A token must expire: `exp` is required, and a token may not live longer than
JWT_MAX_LIFETIME_S (counted from its `iat`, or from now when it has none), so a leaked token is
useful for a bounded time.
"""

from __future__ import annotations

import re
import time

import jwt

from app.core.config import Settings
from app.services.errors import NotAuthenticated

ANONYMOUS = "anonymous"
# A user id becomes a key path part, so it must be path-safe (and never collide after cleaning).
_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def authenticate(authorization: str | None, settings: Settings) -> str:
    """The caller's user id, `anonymous` without a token; `NotAuthenticated` on a bad token."""
    if not authorization:
        if not settings.allow_anonymous:
            raise NotAuthenticated("a Bearer token is required")
        return ANONYMOUS
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("Authorization must be 'Bearer <token>'")
    if not settings.jwt_secret:
        raise NotAuthenticated("this server does not accept tokens (JWT_SECRET is not set)")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            options={"require": ["sub", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise NotAuthenticated(f"invalid token: {exc}") from exc
    _check_lifetime(claims, settings.jwt_max_lifetime_s)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _USER_ID.match(sub) or sub == ANONYMOUS:
        raise NotAuthenticated("token subject is not a valid user id")
    return sub


def _check_lifetime(claims: dict[str, object], max_lifetime_s: int) -> None:
    """Refuse a token that lives longer than `max_lifetime_s` (`exp` is already checked)."""
    exp, iat = claims["exp"], claims.get("iat")
    start = iat if isinstance(iat, int | float) and not isinstance(iat, bool) else time.time()
    if not isinstance(exp, int | float) or exp - start > max_lifetime_s:
        raise NotAuthenticated(
            f"token lives longer than JWT_MAX_LIFETIME_S ({max_lifetime_s} s); issue a shorter one"
        )
