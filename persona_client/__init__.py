"""The Persona client for a site's server: decisions for server-rendered pages, and events.

``PersonaClient`` (sync, standard library only) and ``AsyncPersonaClient``
(asyncio, aiohttp) call a Persona service with the site's API key. ``decide``
never fails because of the service: on a timeout or an error each slot gets
its default content, with ``fallback`` saying why. Guide: docs/sdk.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from persona_client.client import PersonaClient
from persona_client.decisions import Context, Decision, Decisions, Variant
from persona_client.delivery import EventResult, EventVerdict
from persona_client.events import Event, click, conversion, identify, impression, impressions, view
from persona_client.login import COOKIE_NAME, cookie_visitor_id, login_token
from persona_client.wire import Content

if TYPE_CHECKING:
    from persona_client.aio import AsyncPersonaClient

__all__ = [
    "COOKIE_NAME",
    "AsyncPersonaClient",
    "Content",
    "Context",
    "Decision",
    "Decisions",
    "Event",
    "EventResult",
    "EventVerdict",
    "PersonaClient",
    "Variant",
    "click",
    "conversion",
    "cookie_visitor_id",
    "identify",
    "impression",
    "impressions",
    "login_token",
    "view",
]


def __getattr__(name: str) -> Any:
    # imported on first use, so that the sync client never loads aiohttp
    if name == "AsyncPersonaClient":
        from persona_client.aio import AsyncPersonaClient

        return AsyncPersonaClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
