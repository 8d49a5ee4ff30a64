"""``POST /v1/events``: validate each event, write the batch, report per event."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from time import perf_counter

import msgspec
import orjson
from aiohttp import web
from redis.exceptions import RedisError

from service.errors import ApiError
from service.events.ingest import validate_batch
from service.events.schemas import ENVELOPE_DECODER, MAX_BATCH
from service.http.cookies import apply_cookie
from service.identity.consent import HEADER as CONSENT_HEADER
from service.identity.consent import ConsentError, parse_consent
from service.identity.identify import identify
from service.keys import CUSTOMER_KEYS, ENGINE, EVENT_WRITER, METRICS, SETTINGS, SIGNER
from service.metrics import Metrics
from service.store.errors import StoreError

RETRY_AFTER_S = "1"


async def post_events(request: web.Request) -> web.Response:
    """Accept a batch of events; 202 once Redis has every accepted one."""
    started = perf_counter()
    settings = request.app[SETTINGS]
    metrics = request.app[METRICS]
    raw = await request.read()
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
    engine = request.app[ENGINE]
    writer = request.app[EVENT_WRITER]
    keys = request.app[CUSTOMER_KEYS]
    trusted = _has_api_key(request.headers.get("Authorization"), settings.api_keys)
    batch = validate_batch(
        envelope.events, now, identity.visitor_id, consent.personalization, engine.catalog
    )
    try:
        for index, visitor, event in batch.links:
            verdict = batch.verdicts[index]
            if not (trusted or keys.verify(event.customer_id, event.signature)):
                verdict.status = "rejected"
                verdict.reason = "customer_id needs the site's signature or an API key"
                continue
            profile_id = keys.profile_id(event.customer_id)
            merged = await writer.link(visitor, profile_id, f"{event.event_id}:{visitor}", now)
            metrics.merges.labels("merged" if merged else "already_linked").inc()
            if visitor == identity.visitor_id:
                identity = dataclasses.replace(
                    identity, cookie=request.app[SIGNER].sign(profile_id, int(now))
                )
    except (RedisError, StoreError, OSError, TimeoutError):
        return _unavailable(metrics)
    if batch.by_person:
        try:
            # bounded by PERSONA_EVENTS_TIMEOUT_MS inside the writer; a batch that
            # timed out may still land, and its replay is de-duplicated
            applied = await writer.apply(batch.by_person, now)
        except (RedisError, StoreError, OSError, TimeoutError):
            return _unavailable(metrics)
        for visitor, flags in applied.items():
            for index, flag in zip(batch.slots[visitor], flags, strict=True):
                if not flag:
                    batch.verdicts[index].status = "duplicate"
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
    by_label: dict[tuple[str, str], int] = {}
    for v in batch.verdicts:
        counts[v.status] += 1
        label = (v.type if v.type in _TYPES else "unknown", v.status)
        by_label[label] = by_label.get(label, 0) + 1
    for (kind, status_name), n in by_label.items():
        metrics.events.labels(kind, status_name).inc(n)
    stored = counts["accepted"] + counts["duplicate"]
    status = 202 if stored or counts["ignored"] else 400
    body = {**counts, "results": [v.to_json() for v in batch.verdicts]}
    if status == 400:
        body = {"error": "invalid_request", "message": "no event in the batch is valid", **body}
    response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
    if stored or identity.clear_cookie:
        apply_cookie(request, response, settings, identity)
    metrics.ingest_seconds.observe(perf_counter() - started)
    return response


def _unavailable(metrics: Metrics) -> web.Response:
    metrics.events_unavailable.inc()
    return web.Response(
        status=503,
        body=orjson.dumps(
            {"error": "unavailable", "message": "events could not be stored; retry the batch"}
        ),
        content_type="application/json",
        headers={"Retry-After": RETRY_AFTER_S},
    )


def _has_api_key(header: str | None, keys: tuple[str, ...]) -> bool:
    """Whether the Authorization header carries one of the API keys (constant time)."""
    if not header or not header.startswith("Bearer ") or not keys:
        return False
    given = hashlib.sha256(header[7:].strip().encode()).digest()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, hashlib.sha256(key.encode()).digest())
    return found


_TYPES = {"view", "impression", "click", "conversion", "feedback", "identify", "consent"}
