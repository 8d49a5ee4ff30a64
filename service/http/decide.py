"""``/v1/decide``: parse, check who may ask, identify, call the decision core, serialize."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from time import perf_counter

import msgspec
import orjson
from aiohttp import web
from redis.exceptions import RedisError

from service.decide.engine import DecisionEngine
from service.decide.types import DecideRequest
from service.errors import ApiError
from service.features.context import (
    Context,
    classify_referrer,
    device_from_user_agent,
    time_parts,
)
from service.http.body import read_body
from service.http.cookies import apply_cookie
from service.http.guard import GUARD
from service.http.schemas import DECIDE_DECODER, ContextBody, DecideBody
from service.http.timing import service_start
from service.identity.consent import HEADER as CONSENT_HEADER
from service.identity.consent import ConsentError, parse_consent
from service.identity.customer import CustomerKeys
from service.identity.identify import identify
from service.identity.trust import Trust
from service.identity.visitor import Identity, weak_visitor_id
from service.keys import CUSTOMER_KEYS, ENGINE, EVENT_WRITER, METRICS, OVERLOAD, SETTINGS, SIGNER
from service.store.errors import StoreError

log = logging.getLogger(__name__)

_QUERY_CONTEXT = ("device", "page_type", "category", "referrer", "url", "local_hour", "day_of_week")
_SERVER_ONLY = (
    "{} is for the site's server (Authorization: Bearer <API key>); a browser is "
    "identified by its own cookie and cannot ask for scores"
)


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
    allowed = {"placement", "visitor_id", "customer_id", "include_scores", *_QUERY_CONTEXT}
    unknown = set(q) - allowed
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown query parameters: {sorted(unknown)}")
    doc: dict[str, object] = {
        "placements": placements,
        "context": {k: q[k] for k in _QUERY_CONTEXT if k in q},
        "include_scores": q.get("include_scores", "false"),
    }
    for name in ("visitor_id", "customer_id"):
        if name in q:
            doc[name] = q[name]
    try:
        return msgspec.convert(doc, DecideBody, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc).replace("$.", "")) from None


def _decode(raw: bytes) -> DecideBody:
    if not raw:
        raise ApiError(400, "invalid_request", "the request body is empty; send a JSON object")
    try:
        return DECIDE_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def checked(
    body: DecideBody, trust: Trust, customer_keys: CustomerKeys, max_placements: int
) -> str | None:
    """The visitor the caller names, if any, once the request passed the rules of who may
    ask what (only the site's server names visitors); an :class:`ApiError` otherwise."""
    if len(body.placements) > max_placements:
        raise ApiError(
            400,
            "invalid_request",
            f"at most {max_placements} placements per call, got {len(body.placements)}",
        )
    if len(set(body.placements)) != len(body.placements):
        raise ApiError(400, "invalid_request", "a placement is listed twice")
    for field, given in (
        ("visitor_id", body.visitor_id is not None),
        ("customer_id", body.customer_id is not None),
        ("include_scores", body.include_scores),
    ):
        if given and not trust.server:
            raise ApiError(403, "forbidden", _SERVER_ONLY.format(field))
    if body.visitor_id is not None and body.customer_id is not None:
        raise ApiError(400, "invalid_request", "name the visitor by visitor_id or customer_id")
    if body.customer_id is not None:
        return customer_keys.profile_id(body.customer_id)
    if body.visitor_id is not None:
        weak = weak_visitor_id(body.visitor_id)
        if weak:
            raise ApiError(400, "invalid_request", weak)
    return body.visitor_id


def shed_answer(engine: DecisionEngine, body: DecideBody, trust: Trust, named: str | None) -> bytes:
    """The defaults of every placement (``fallback: "overloaded"``) as the JSON answer."""
    decisions = engine.fallback_all(tuple(body.placements), "overloaded")
    doc: dict[str, object] = {"decisions": {d.placement: d.to_json() for d in decisions}}
    if trust.server:
        doc["visitor_id"] = named
    return orjson.dumps(doc)


async def _withdraw(
    request: web.Request, identity: Identity, now: float, deadline: float
) -> Identity:
    """Carry out an explicit refusal within the deadline; keep the cookie if it could not
    be done, so the next call withdraws again."""
    assert identity.withdrawing is not None
    metrics = request.app[METRICS]
    try:
        async with asyncio.timeout(max(deadline - perf_counter(), 0.0)):
            await request.app[EVENT_WRITER].withdraw(identity.withdrawing, now)
    except (RedisError, StoreError, OSError, TimeoutError):
        metrics.withdrawals.labels("failed").inc()
        return dataclasses.replace(identity, clear_cookie=False)
    metrics.withdrawals.labels("header").inc()
    return identity


async def _answer(request: web.Request, body: DecideBody, trust: Trust) -> web.Response:
    started = service_start(request)
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    named = checked(body, trust, request.app[CUSTOMER_KEYS], settings.max_placements)
    if request.app[OVERLOAD].shedding():
        metrics.shed_count["decide"].inc()
        return web.Response(
            body=shed_answer(request.app[ENGINE], body, trust, named),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
    now = time.time()
    try:
        consent = parse_consent(
            request.headers.get(CONSENT_HEADER), settings.consent_default == "granted"
        )
    except ConsentError as exc:
        raise ApiError(400, "invalid_consent", str(exc)) from None
    identity, outcome = identify(
        request.app[SIGNER], request.cookies.get(settings.cookie_name), named, now, consent
    )
    metrics.cookie_outcome[outcome].inc()
    if identity.known:
        guard = request.app[GUARD]
        guard.admit_visitor(request, trust, identity.visitor_id, guard.rules.decide_visitor)
    if identity.withdrawing is not None:
        deadline = started + settings.decide_deadline_s
        identity = await _withdraw(request, identity, now, deadline)
    ctx = context_from(body.context, request.headers.get("User-Agent", ""), now)
    req = DecideRequest(tuple(body.placements), ctx, identity, body.include_scores)
    t_identified = perf_counter()
    metrics.stage["identify"].observe(t_identified - started)
    engine = request.app[ENGINE]
    try:
        decisions, stages = await engine.decide(req, started, explain=body.include_scores)
    except Exception:
        log.exception("decision failed; serving defaults")
        decisions = engine.fallback_all(req.placements, "internal_error")
        stages = None
    t_decided = perf_counter()
    doc: dict[str, object] = {"decisions": {d.placement: d.to_json() for d in decisions}}
    if trust.server:
        # a browser's page never sees an id: its cookie is HttpOnly for that reason
        doc["visitor_id"] = identity.visitor_id
    response = web.Response(
        body=orjson.dumps(doc),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
    apply_cookie(request, response, settings, identity)
    if stages is not None:
        metrics.stage["redis"].observe(stages.redis)
        metrics.stage["features"].observe(stages.features)
        metrics.stage["score"].observe(stages.score)
    metrics.stage["serialize"].observe(perf_counter() - t_decided)
    return response


def _admit(request: web.Request) -> Trust:
    guard = request.app[GUARD]
    trust = guard.caller(request)
    guard.admit_client(request, trust, guard.rules.decide_client)
    return trust


async def post_decide(request: web.Request) -> web.Response:
    """``POST /v1/decide`` with a JSON body."""
    trust = _admit(request)
    raw = await read_body(request, request.app[SETTINGS].http_body_timeout_s)
    return await _answer(request, _decode(raw), trust)


async def get_decide(request: web.Request) -> web.Response:
    """``GET /v1/decide?placement=...`` for a plain browser fetch."""
    trust = _admit(request)
    return await _answer(request, _body_from_query(request), trust)
