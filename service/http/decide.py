"""``/v1/decide``: parse, identify, call the decision core, serialize."""

from __future__ import annotations

import logging
import time
from time import perf_counter

import msgspec
import orjson
from aiohttp import web

from service.decide.types import DecideRequest
from service.errors import ApiError
from service.features.context import (
    Context,
    classify_referrer,
    device_from_user_agent,
    time_parts,
)
from service.http.cookies import apply_cookie
from service.http.schemas import DECIDE_DECODER, ContextBody, DecideBody
from service.identity.consent import HEADER as CONSENT_HEADER
from service.identity.consent import ConsentError, parse_consent
from service.identity.identify import identify
from service.keys import ENGINE, METRICS, SETTINGS, SIGNER

log = logging.getLogger(__name__)

_QUERY_CONTEXT = ("device", "page_type", "category", "referrer", "url", "local_hour", "day_of_week")


def context_from(body: ContextBody, user_agent: str, now: float) -> Context:
    """The normalized context of a request body (device from the User-Agent if absent)."""
    hour, dow = time_parts(now, body.local_hour, body.day_of_week)
    return Context(
        device=body.device or device_from_user_agent(user_agent),
        page_type=body.page_type or "other",
        category=body.category,
        referrer=classify_referrer(body.referrer or ""),
        hour=hour,
        dow=dow,
    )


def _body_from_query(request: web.Request) -> DecideBody:
    q = request.query
    placements = [p for raw in q.getall("placement", []) for p in raw.split(",") if p]
    unknown = set(q) - {"placement", "visitor_id", "include_scores", *_QUERY_CONTEXT}
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown query parameters: {sorted(unknown)}")
    doc: dict[str, object] = {
        "placements": placements,
        "context": {k: q[k] for k in _QUERY_CONTEXT if k in q},
        "include_scores": q.get("include_scores", "false"),
    }
    if "visitor_id" in q:
        doc["visitor_id"] = q["visitor_id"]
    try:
        return msgspec.convert(doc, DecideBody, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc).replace("$.", "")) from None


async def _body_from_json(request: web.Request) -> DecideBody:
    raw = await request.read()
    if not raw:
        raise ApiError(400, "invalid_request", "the request body is empty; send a JSON object")
    try:
        return DECIDE_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


async def _answer(request: web.Request, body: DecideBody, started: float) -> web.Response:
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    if len(body.placements) > settings.max_placements:
        raise ApiError(
            400,
            "invalid_request",
            f"at most {settings.max_placements} placements per call, got {len(body.placements)}",
        )
    if len(set(body.placements)) != len(body.placements):
        raise ApiError(400, "invalid_request", "a placement is listed twice")
    now = time.time()
    try:
        consent = parse_consent(
            request.headers.get(CONSENT_HEADER), settings.consent_default == "granted"
        )
    except ConsentError as exc:
        raise ApiError(400, "invalid_consent", str(exc)) from None
    identity, outcome = identify(
        request.app[SIGNER],
        request.cookies.get(settings.cookie_name),
        body.visitor_id,
        now,
        consent,
    )
    metrics.cookie_outcome[outcome].inc()
    ctx = context_from(body.context, request.headers.get("User-Agent", ""), now)
    req = DecideRequest(tuple(body.placements), ctx, identity, body.include_scores)
    t_identified = perf_counter()
    metrics.stage["identify"].observe(t_identified - started)
    engine = request.app[ENGINE]
    try:
        decisions, stages = await engine.decide(req, started)
    except Exception:
        log.exception("decision failed; serving defaults")
        decisions = engine.fallback_all(req.placements, "internal_error")
        stages = None
    t_decided = perf_counter()
    payload = orjson.dumps(
        {
            "visitor_id": identity.visitor_id,
            "decisions": {d.placement: d.to_json() for d in decisions},
        }
    )
    response = web.Response(
        body=payload, content_type="application/json", headers={"Cache-Control": "no-store"}
    )
    apply_cookie(request, response, settings, identity)
    if stages is not None:
        metrics.stage["redis"].observe(stages.redis)
        metrics.stage["features"].observe(stages.features)
        metrics.stage["score"].observe(stages.score)
    metrics.stage["serialize"].observe(perf_counter() - t_decided)
    return response


async def post_decide(request: web.Request) -> web.Response:
    """``POST /v1/decide`` with a JSON body."""
    started = perf_counter()
    return await _answer(request, await _body_from_json(request), started)


async def get_decide(request: web.Request) -> web.Response:
    """``GET /v1/decide?placement=...`` for a plain browser fetch."""
    started = perf_counter()
    return await _answer(request, _body_from_query(request), started)
