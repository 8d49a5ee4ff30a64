"""``GET /v1/me``: what Persona holds about the caller, in readable form.

A browser sees only the visitor its own signed cookie names; the site's
server (API key) may name a visitor or customer. Nothing is created or
refreshed by asking.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from service.errors import ApiError
from service.features.profile import decode_profile
from service.features.readable import readable_profile
from service.http.guard import GUARD
from service.identity.visitor import is_valid_visitor_id, weak_visitor_id
from service.keys import ADMIN_REDIS, CUSTOMER_KEYS, SETTINGS, SIGNER
from service.store.keyspace import alias_of, follow_alias


def _subject(request: web.Request) -> str | None:
    """The visitor the call is about (``None``: nobody is recognized)."""
    guard = request.app[GUARD]
    trust = guard.caller(request)
    guard.admit_client(request, trust, guard.rules.decide_client)
    named = {k: request.query[k] for k in ("visitor_id", "customer_id") if k in request.query}
    unknown = set(request.query) - {"visitor_id", "customer_id"}
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown query parameters: {sorted(unknown)}")
    if named and not trust.server:
        raise ApiError(
            403,
            "forbidden",
            "naming a visitor is for the site's server (Authorization: Bearer <API key>); "
            "a browser sees what is held about its own cookie",
        )
    if len(named) > 1:
        raise ApiError(400, "invalid_request", "name the visitor by visitor_id or customer_id")
    if "customer_id" in named:
        if not 1 <= len(named["customer_id"]) <= 128:
            raise ApiError(400, "invalid_request", "customer_id must be 1 to 128 characters")
        return request.app[CUSTOMER_KEYS].profile_id(named["customer_id"])
    if "visitor_id" in named:
        vid = named["visitor_id"]
        if not is_valid_visitor_id(vid) or weak_visitor_id(vid):
            raise ApiError(400, "invalid_request", "visitor_id is not a valid visitor id")
        return vid
    settings = request.app[SETTINGS]
    cookie = request.cookies.get(settings.cookie_name)
    verified = request.app[SIGNER].verify(cookie, time.time()) if cookie else None
    return verified.visitor_id if verified else None


async def get_me(request: web.Request) -> web.Response:
    """The caller's profile in readable form; ``known: false`` when nothing is held."""
    subject = _subject(request)
    profile = None
    if subject is not None:
        client = request.app[ADMIN_REDIS]
        _, raw = await follow_alias(subject, client.get)
        if alias_of(raw) is None:
            profile = decode_profile(raw)
    settings = request.app[SETTINGS]
    body = {
        "known": profile is not None,
        "profile": (
            readable_profile(profile, time.time(), settings.affinity_half_life_s)
            if profile is not None
            else None
        ),
    }
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
