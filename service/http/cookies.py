"""Setting and deleting the visitor cookie on a response."""

from __future__ import annotations

from aiohttp import web

from service.identity.visitor import Identity
from service.settings import Settings


def apply_cookie(
    request: web.Request, response: web.StreamResponse, settings: Settings, identity: Identity
) -> None:
    """Set, refresh or delete ``persona_vid`` as the identification step decided."""
    if identity.cookie is not None:
        secure = settings.cookie_secure == "true" or (
            settings.cookie_secure == "auto"
            and (request.secure or request.headers.get("X-Forwarded-Proto") == "https")
        )
        response.set_cookie(
            settings.cookie_name,
            identity.cookie,
            max_age=settings.cookie_max_age_s,
            path="/",
            domain=settings.cookie_domain,
            httponly=True,
            samesite="Lax",
            secure=secure,
        )
    elif identity.clear_cookie:
        response.del_cookie(settings.cookie_name, path="/", domain=settings.cookie_domain)
