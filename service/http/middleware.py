"""The one middleware: request ids, CORS, security headers, timing and metrics, JSON errors."""

from __future__ import annotations

import logging
from time import perf_counter

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from service.errors import ApiError
from service.http.timing import STARTED, elapsed
from service.keys import METRICS, SETTINGS
from service.logs import REQUEST_ID_HEADER, request_id

log = logging.getLogger(__name__)
rejections = logging.getLogger("persona.rejected")

ALLOWED_HEADERS = "Content-Type, X-Persona-Consent, X-Request-Id"
SERVER = "persona"
# pages load their scripts and styles from the service itself; nothing inline, no framing
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {  # on every HTML page (service/http/ops.py)
    "Content-Security-Policy": PAGE_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


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
    """CORS, headers, timing and status metrics, errors as JSON bodies.

    One layer instead of several: each aiohttp middleware costs a few
    microseconds on every request, and the decision path is budgeted in tens.
    """
    request[STARTED] = perf_counter()
    rid = request_id(request.headers.get(REQUEST_ID_HEADER))
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in settings.cors_origins
    if request.method == "OPTIONS" and request.path.startswith("/v1/"):
        response: web.StreamResponse = web.Response(status=204 if allowed else 403)
        if allowed:
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await _handle(request, handler)
        request.app[METRICS].observe_request(_endpoint(request), response.status, elapsed(request))
    headers = response.headers
    if allowed:
        assert origin is not None
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = REQUEST_ID_HEADER
    headers.add("Vary", "Origin")
    headers["Server"] = SERVER
    headers["X-Content-Type-Options"] = "nosniff"
    headers[REQUEST_ID_HEADER] = rid
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        _rejected(request, exc.status, exc.code)
        response = json_response(exc.status, exc.body())
        response.headers.update(exc.headers)
        if exc.close:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        _rejected(request, exc.status, code)
        response = json_response(exc.status, {"error": code, "message": exc.text or exc.reason})
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(500, {"error": "internal_error", "message": "internal error"})


def _rejected(request: web.Request, status: int, code: str) -> None:
    """One concise line per rejected request: never the query string, a body or an id."""
    rejections.info("%s %s -> %d %s", request.method, _endpoint(request), status, code)
