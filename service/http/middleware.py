"""Middlewares: latency and status metrics, JSON errors, CORS."""

from __future__ import annotations

import logging
from time import perf_counter

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from service.errors import ApiError
from service.keys import METRICS, SETTINGS

log = logging.getLogger(__name__)

ALLOWED_HEADERS = "Content-Type, X-Persona-Consent"


def json_response(status: int, body: object) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _endpoint(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "other"
    return info.route.resource.canonical


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every request, count its status, and turn errors into JSON bodies."""
    started = perf_counter()
    metrics = request.app[METRICS]
    try:
        response = await handler(request)
    except ApiError as exc:
        response = json_response(exc.status, exc.body())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = json_response(exc.status, {"error": code, "message": exc.text or exc.reason})
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = json_response(500, {"error": "internal_error", "message": "internal error"})
    endpoint = _endpoint(request)
    metrics.request_seconds.labels(endpoint).observe(perf_counter() - started)
    metrics.responses.labels(endpoint, str(response.status)).inc()
    return response


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Allow browsers on the configured origins (credentials included, never '*')."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in request.app[SETTINGS].cors_origins
    if request.method == "OPTIONS" and request.path.startswith("/v1/"):
        response: web.StreamResponse = web.Response(status=204 if allowed else 403)
        if allowed:
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    if allowed:
        assert origin is not None
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers.add("Vary", "Origin")
    return response
