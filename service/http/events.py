"""``POST /v1/events``: parse, call the ingestor, serialize a verdict per event."""

from __future__ import annotations

import dataclasses
import time

import msgspec
import orjson
from aiohttp import web

from service.errors import ApiError
from service.events.ingest import EventsUnavailable
from service.events.schemas import ENVELOPE_DECODER, MAX_BATCH
from service.events.validate import NAMED_BY_BROWSER, Caller
from service.http.body import read_body
from service.http.cookies import apply_cookie
from service.http.guard import GUARD
from service.http.timing import elapsed
from service.identity.consent import HEADER as CONSENT_HEADER
from service.identity.consent import ConsentError, parse_consent
from service.identity.identify import identify
from service.identity.trust import Trust
from service.keys import INGESTOR, LIVE, METRICS, OVERLOAD, SETTINGS, SIGNER

RETRY_AFTER_S = "1"


async def post_events(request: web.Request) -> web.Response:
    """Accept a batch of events; 202 once Redis has every accepted one."""
    settings = request.app[SETTINGS]
    guard = request.app[GUARD]
    trust = guard.caller(request)
    guard.admit_client(request, trust, guard.rules.events_client)
    raw = await read_body(request, settings.http_body_timeout_s)
    overload = request.app[OVERLOAD]
    if overload.events_full():
        request.app[METRICS].shed_count["events"].inc()
        raise ApiError(
            503,
            "overloaded",
            "the service is overloaded; retry the batch",
            {"Retry-After": RETRY_AFTER_S},
        )
    overload.events_in_flight += 1
    try:
        return await _ingest(request, trust, raw)
    finally:
        overload.events_in_flight -= 1


async def _ingest(request: web.Request, trust: Trust, raw: bytes) -> web.Response:
    settings = request.app[SETTINGS]
    guard = request.app[GUARD]
    try:
        envelope = ENVELOPE_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if "length <=" in message:
            message = f"at most {MAX_BATCH} events per batch ({message})"
        raise ApiError(400, "invalid_request", message) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        consent = parse_consent(
            request.headers.get(CONSENT_HEADER), settings.consent_default == "granted"
        )
    except ConsentError as exc:
        raise ApiError(400, "invalid_consent", str(exc)) from None
    now = time.time()
    identity, _ = identify(
        request.app[SIGNER], request.cookies.get(settings.cookie_name), None, now, consent
    )
    guard.admit_visitor(request, trust, identity.visitor_id, guard.rules.events_visitor)
    caller = Caller(identity.visitor_id, consent.personalization, trust, identity.withdrawing)
    try:
        result = await request.app[INGESTOR].ingest(
            envelope.events, caller, now, request.app[LIVE].current.catalog
        )
    except EventsUnavailable:
        request.app[METRICS].events_unavailable.inc()
        raise ApiError(
            503,
            "unavailable",
            "events could not be stored; retry the batch",
            {"Retry-After": RETRY_AFTER_S},
        ) from None
    counts = {s: result.count(s) for s in ("accepted", "duplicate", "rejected", "ignored")}
    stored = counts["accepted"] + counts["duplicate"]
    status = 202 if stored or counts["ignored"] else 400
    body: dict[str, object] = {**counts, "results": [v.to_json() for v in result.verdicts]}
    if status == 400 and all(v.reason == NAMED_BY_BROWSER for v in result.verdicts):
        status = 403  # every event named a visitor, which only the site's server may
    elif status == 400:
        body = {"error": "invalid_request", "message": "no event in the batch is valid", **body}
    response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
    if result.withdrew:
        identity = dataclasses.replace(identity, cookie=None, clear_cookie=True)
    elif result.relinked_to is not None:
        identity = dataclasses.replace(
            identity, cookie=request.app[SIGNER].sign(result.relinked_to, int(now))
        )
    if stored or identity.clear_cookie:
        apply_cookie(request, response, settings, identity)
    request.app[METRICS].ingest_seconds.observe(elapsed(request))
    return response
