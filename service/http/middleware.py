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
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware: CORS, timing and status metrics, errors as JSON bodies.

    One layer instead of several: each aiohttp middleware costs a few
    microseconds on every request, and the decision path is budgeted in tens.
    """
    started = perf_counter()
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in settings.cors_origins
    if request.method == "OPTIONS" and request.path.startswith("/v1/"):
        response: web.StreamResponse = web.Response(status=204 if allowed else 403)
        if allowed:
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await _handle(request, handler)
        request.app[METRICS].observe_request(
            _endpoint(request), response.status, perf_counter() - started
        )
    if allowed:
        assert origin is not None
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers.add("Vary", "Origin")
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = json_response(exc.status, exc.body())
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = json_response(exc.status, {"error": code, "message": exc.text or exc.reason})
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(500, {"error": "internal_error", "message": "internal error"})
