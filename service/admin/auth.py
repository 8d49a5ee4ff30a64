"""Bearer-token authentication and scope checks for the admin routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from service.admin.tokens import Principal, TokenStore
from service.errors import ApiError
from service.http.guard import GUARD

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKENS = web.AppKey("admin_tokens", TokenStore)
PRINCIPAL = web.RequestKey("principal", Principal)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="persona-admin"'}


def require(scope: str | None) -> Callable[[Handler], Handler]:
    """Wrap an admin handler: a valid token (401 otherwise) with ``scope`` (403 otherwise).

    ``scope=None`` admits any valid token. The handler finds the caller in
    ``request[PRINCIPAL]``.
    """

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            guard = request.app[GUARD]
            guard.admin_blocked(request)  # 429 after too many failures from this client
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                guard.admin_failed(request)
                raise ApiError(
                    401,
                    "unauthorized",
                    "the admin API needs a token: Authorization: Bearer <token> "
                    "(create one with `persona admin-token create`)",
                    _CHALLENGE,
                )
            try:
                principal = await request.app[TOKENS].verify(header[7:].strip())
            except (RedisError, OSError):
                raise ApiError(
                    503, "unavailable", "Redis did not answer; retry", {"Retry-After": "1"}
                ) from None
            if principal is None:
                guard.admin_failed(request)
                raise ApiError(401, "unauthorized", "the token is unknown or revoked", _CHALLENGE)
            if scope is not None and not principal.can(scope):
                raise ApiError(
                    403,
                    "forbidden",
                    f"the token {principal.name!r} lacks the {scope!r} scope "
                    f"(it has: {', '.join(sorted(principal.scopes))})",
                )
            request[PRINCIPAL] = principal
            try:
                return await handler(request)
            except (RedisError, OSError) as exc:
                raise ApiError(
                    503,
                    "unavailable",
                    f"Redis did not answer ({type(exc).__name__}); reload to see whether "
                    "the change was applied, then retry",
                    {"Retry-After": "1"},
                ) from None

        guarded.required_scope = scope  # type: ignore[attr-defined]
        return guarded

    return wrap


def principal(request: web.Request) -> Principal:
    """The authenticated caller of an admin route."""
    return request[PRINCIPAL]
