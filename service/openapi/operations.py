"""The document's paths: every route, who may call it, what it takes and every answer it gives."""

from __future__ import annotations

from typing import Any

from service.events.schemas import MAX_BATCH
from service.openapi.components import ref

Schema = dict[str, Any]
JSON = "application/json"

# the error answers every route may give, by status
ERRORS: dict[int, str] = {
    400: "Malformed: the message names the field and the problem.",
    401: "A wrong API key or admin token (`WWW-Authenticate: Bearer`).",
    403: "Not allowed for this caller: the message says why.",
    404: "No such item.",
    408: "The body did not arrive within PERSONA_HTTP_BODY_TIMEOUT_S; the connection closes.",
    409: "The draft moved past If-Match, or there is nothing to do.",
    413: "The body is over PERSONA_MAX_BODY_BYTES (after decompression).",
    415: "A Content-Encoding other than gzip, deflate or identity.",
    422: "Well-formed but invalid: the message names the field and the problem; nothing is stored.",
    429: "A rate limit: wait `Retry-After` seconds.",
    503: "Redis did not answer, or the service is overloaded: nothing was stored; retry "
    "after `Retry-After` seconds.",
}
BODY_ERRORS = (400, 408, 413, 415)
RETRY = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}


def _error(code: int, text: str | None = None) -> Schema:
    out: Schema = {
        "description": text or ERRORS[code],
        "content": {JSON: {"schema": ref("Error")}},
    }
    if code in (429, 503):
        out["headers"] = RETRY
    return out


def op(
    op_id: str,
    summary: str,
    tag: str,
    ok: tuple[int, str, Schema | None],
    errors: tuple[int, ...] = (),
    *,
    description: str = "",
    body: Schema | None = None,
    body_types: tuple[str, ...] = (JSON,),
    parameters: list[Schema] | None = None,
    security: list[Schema] | None = None,
    ok_headers: Schema | None = None,
    ok_type: str | tuple[str, ...] = JSON,
    extra: dict[int, Schema] | None = None,
) -> Schema:
    """One operation."""
    status, text, schema = ok
    success: Schema = {"description": text}
    if schema is not None:
        types = (ok_type,) if isinstance(ok_type, str) else ok_type
        success["content"] = {t: {"schema": schema} for t in types}
    if ok_headers:
        success["headers"] = ok_headers
    responses = {str(status): success}
    for code in sorted({*errors, *(BODY_ERRORS if body is not None else ())}):
        responses[str(code)] = _error(code)
    for code, response in (extra or {}).items():
        responses[str(code)] = response
    out: Schema = {"tags": [tag], "operationId": op_id, "summary": summary}
    if description:
        out["description"] = description
    if security is not None:
        out["security"] = security
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {t: {"schema": body} for t in body_types},
        }
    out["responses"] = dict(sorted(responses.items()))
    return out


def param(
    name: str, where: str, schema: Schema, description: str, required: bool = False
) -> Schema:
    """A parameter."""
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


CONSENT: Schema = {"$ref": "#/components/parameters/Consent"}
PUBLIC: list[Schema] = [{}, {"siteApiKey": []}]
ADMIN: list[Schema] = [{"adminToken": []}]
COOKIE: Schema = {"Set-Cookie": {"$ref": "#/components/headers/SetVisitorCookie"}}
ETAG: Schema = {"ETag": {"$ref": "#/components/headers/ETag"}}
NAME = "[a-z0-9][a-z0-9_-]{0,63}"
ID: Schema = {"type": "string", "pattern": f"^{NAME}$"}
IF_MATCH = param(
    "If-Match",
    "header",
    {"type": "string", "maxLength": 24},
    "The ETag (draft version) the change was made on; a newer draft gives 409.",
)


def _query_parameters() -> list[Schema]:
    context_fields: dict[str, Schema] = {
        "device": {"type": "string", "enum": ["mobile", "tablet", "desktop"]},
        "page_type": {
            "type": "string",
            "enum": ["home", "category", "product", "cart", "search", "other"],
        },
        "category": ID,
        "referrer": {"type": "string", "maxLength": 2048},
        "url": {"type": "string", "maxLength": 2048},
        "local_hour": {"type": "integer", "minimum": 0, "maximum": 23},
        "day_of_week": {"type": "integer", "minimum": 0, "maximum": 6},
    }
    return [
        CONSENT,
        param(
            "placement",
            "query",
            {
                "type": "array",
                "items": {"type": "string", "pattern": f"^{NAME}(,{NAME})*$"},
                "minItems": 1,
            },
            "Slot names: repeat the parameter or separate names with commas.",
            required=True,
        ),
        param(
            "visitor_id",
            "query",
            {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
            "As in the POST body: only for the site's server.",
        ),
        param(
            "customer_id",
            "query",
            {"type": "string", "minLength": 1, "maxLength": 128},
            "As in the POST body: only for the site's server.",
        ),
        param(
            "include_scores",
            "query",
            {"type": "boolean"},
            "As in the POST body: only for the site's server.",
        ),
        *(
            param(name, "query", schema, f"The context's `{name}`.")
            for name, schema in context_fields.items()
        ),
    ]


def public_paths() -> dict[str, Schema]:
    """The decision, event and operations routes."""
    decide_ok = (
        200,
        "A decision per placement (a slot's default when anything failed).",
        ref("DecideResponse"),
    )
    decide_errors = (400, 401, 403, 429)
    return {
        "/v1/decide": {
            "post": op(
                "decide",
                "Decide what each slot shows",
                "decide",
                decide_ok,
                decide_errors,
                description="Never 5xx: whatever fails on the way, the slot's default is served "
                "with a `fallback` reason. Browsers are identified by their cookie; only the "
                "site's server (API key) may name a visitor or customer or ask for scores.",
                body=ref("DecideRequest"),
                parameters=[CONSENT],
                security=PUBLIC,
                ok_headers=COOKIE,
            ),
            "get": op(
                "decideGet",
                "Decide, for a plain browser fetch",
                "decide",
                decide_ok,
                decide_errors,
                parameters=_query_parameters(),
                security=PUBLIC,
                ok_headers=COOKIE,
            ),
        },
        "/v1/events": {
            "post": op(
                "postEvents",
                "Report what the visitor did",
                "events",
                (
                    202,
                    "Redis has every accepted event; a verdict per event.",
                    ref("EventBatchResult"),
                ),
                (401, 429, 503),
                description=f"At most {MAX_BATCH} events. Each is validated on its own. "
                "Replaying a batch is safe (event ids).",
                body=ref("EventBatch"),
                parameters=[CONSENT],
                security=PUBLIC,
                ok_headers=COOKIE,
                extra={
                    400: {
                        "description": "The batch is malformed, or no event in it is valid "
                        "(a verdict per event).",
                        "content": {
                            JSON: {"schema": {"anyOf": [ref("Error"), ref("EventBatchResult")]}}
                        },
                    },
                    403: {
                        "description": "Every event named a visitor without the site's API key.",
                        "content": {JSON: {"schema": ref("EventBatchResult")}},
                    },
                },
            )
        },
        "/healthz": {
            "get": op("healthz", "Liveness", "operations", (200, "Alive.", ref("Health")))
        },
        "/readyz": {
            "get": op(
                "readyz",
                "Readiness: Redis, model and catalog",
                "operations",
                (200, "Ready.", ref("Readiness")),
                extra={
                    503: {
                        "description": "Not ready (decisions would fall back).",
                        "content": {JSON: {"schema": ref("Readiness")}},
                    }
                },
            )
        },
        "/metrics": {
            "get": op(
                "metrics",
                "Prometheus metrics",
                "operations",
                (200, "The text format.", {"type": "string"}),
                ok_type="text/plain",
            )
        },
        "/openapi.json": {
            "get": op("openapi", "This document", "operations", (200, "OpenAPI 3.1.", {}))
        },
        "/v1/me": {
            "get": op(
                "me",
                "What Persona holds about the caller",
                "privacy",
                (200, "The profile in readable form, or `known: false`.", ref("Me")),
                (400, 401, 403, 429),
                description="A browser sees what is held about its own cookie; only the site's "
                "server (API key) may name a visitor or customer. Asking creates nothing.",
                parameters=[
                    param(
                        "visitor_id",
                        "query",
                        {"type": "string", "pattern": "^[A-Za-z0-9_-]{22,64}$"},
                        "Only for the site's server.",
                    ),
                    param(
                        "customer_id",
                        "query",
                        {"type": "string", "minLength": 1, "maxLength": 128},
                        "Only for the site's server.",
                    ),
                ],
                security=PUBLIC,
            )
        },
        "/sdk/v1/persona.js": {
            "get": op(
                "sdk",
                "The web SDK",
                "sdk",
                (200, "persona.js, minified (gzipped when accepted).", {"type": "string"}),
                ok_type="text/javascript",
                description="Cacheable for a year; its Subresource Integrity hash is in "
                "docs/sdk.md. `304` when `If-None-Match` names its ETag.",
                extra={304: {"description": "The browser's copy is this version."}},
            )
        },
        "/": {"get": _redirect("index", "To the demo shop")},
        "/demo": {"get": _redirect("demoRedirect", "To the demo shop")},
        "/demo/": {"get": _page("demoHome", "The demo shop's home page")},
        "/demo/c/{slug}": {
            "get": _page(
                "demoCategory",
                "A category of the demo shop",
                [
                    param("slug", "path", {"type": "string", "maxLength": 64}, "The category."),
                    param("tag", "query", {"type": "string", "maxLength": 64}, "A collection."),
                ],
            )
        },
        "/demo/p/{item}": {
            "get": _page(
                "demoProduct",
                "A product of the demo shop",
                [param("item", "path", {"type": "string", "maxLength": 64}, "The product.")],
            )
        },
        "/demo/cart": {"get": _page("demoCart", "The demo shop's cart")},
        "/admin": {"get": _page("adminPage", "The marketer workspace")},
        "/static/{name}": {
            "get": op(
                "staticFile",
                "The pages' scripts and style sheets",
                "demo",
                (200, "The file.", {"type": "string"}),
                (404,),
                parameters=[
                    param("name", "path", {"type": "string", "maxLength": 64}, "The file.")
                ],
                ok_type=("text/javascript", "text/css"),
            )
        },
    }


def _page(op_id: str, summary: str, parameters: list[Schema] | None = None) -> Schema:
    html = {"text/html": {"schema": {"type": "string"}}}
    return op(
        op_id,
        summary,
        "demo",
        (200, "The page (with a Content-Security-Policy).", {"type": "string"}),
        ok_type="text/html",
        parameters=parameters,
        extra={404: {"description": "No such page (the shop's 404 page).", "content": html}}
        if parameters
        else None,
    )


def _redirect(op_id: str, summary: str) -> Schema:
    return op(
        op_id,
        summary,
        "demo",
        (302, "To /demo/.", None),
        ok_headers={"Location": {"schema": {"type": "string"}}},
    )
