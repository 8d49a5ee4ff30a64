"""The OpenAPI 3.1 document, built from the code it describes.

``build()`` assembles it: request schemas from the structs that validate
requests, the condition language from the fact schema, every route with every
answer it gives. ``python -m service.openapi`` writes ``service/openapi.json``,
which the service serves; a test fails when the file is not what ``build()``
makes, and a bounded schemathesis run checks the service against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from service.openapi.admin_operations import admin_paths
from service.openapi.components import schemas
from service.openapi.operations import public_paths
from service.settings import PACKAGE_DIR

DOCUMENT = PACKAGE_DIR / "openapi.json"
VERSION = "0.2.0"

DESCRIPTION = """\
Real-time website personalization: which content variant should this visitor see in this slot?

**Who may do what** (docs/security.md). A *browser* acts only on the visitor its own signed \
cookie names. The *site's server* authenticates with `Authorization: Bearer <API key>` (one of \
`PERSONA_API_KEYS`) and may name any visitor (`visitor_id`) or customer (`customer_id`) and ask \
for scores. *Marketers* use admin tokens with scopes; a stored person's data needs the \
`privacy` scope. A wrong API key is a `401`, never a browser call.

**Visitors.** The cookie `persona_vid` is `<visitor_id>.<issued>.<signature>` (HMAC-SHA256, \
`HttpOnly; SameSite=Lax; Path=/`); a missing, tampered or expired one is replaced. The id never \
appears in a response to a browser. A visitor id the site's server names must be at least 22 \
characters of at least 8 different ones (128 random bits).

**Consent.** Every decide and event call carries `X-Persona-Consent`; without it \
`PERSONA_CONSENT_DEFAULT` (shipped: `denied`) applies and nothing is read, written or changed. \
An explicit refusal (`none`, or no `personalization`) withdraws consent for the caller's own \
identity: its profile is deleted, its erasure queued and the cookie deleted.

**Limits.** Bodies up to `PERSONA_MAX_BODY_BYTES` (64 KiB, after gzip or deflate), sent within \
`PERSONA_HTTP_BODY_TIMEOUT_S`; headers within `PERSONA_HTTP_HEADER_TIMEOUT_S`; rate limits per \
client address and per visitor (`429` with `Retry-After`); configuration documents nest at most \
32 levels. Every limit of a field is in its schema.

**Errors** are JSON `{"error": "<code>", "message": "<text>"}`. A failing backend never fails a \
decision: `/v1/decide` answers `200` with the slot's default and a `fallback` reason (also \
`overloaded` when the service sheds load).

**Request ids.** Every answer carries `X-Request-Id`: the caller's own (up to 128 letters, \
digits and `._:-`) or a minted one; the service's log lines of that request carry it too."""


def build() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Persona",
            "version": VERSION,
            "summary": "Real-time website personalization.",
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "decide", "description": "Which variant to show."},
            {"name": "events", "description": "What the visitor did."},
            {"name": "privacy", "description": "What Persona holds about a person."},
            {"name": "sdk", "description": "The web SDK (persona.js)."},
            {"name": "operations", "description": "Health, metrics and this document."},
            {"name": "demo", "description": "The demo shop and the workspace pages."},
            {"name": "admin", "description": "The marketer workspace's API (admin tokens)."},
        ],
        "paths": {**public_paths(), **admin_paths()},
        "components": {
            "schemas": schemas(),
            "parameters": {
                "Consent": {
                    "name": "X-Persona-Consent",
                    "in": "header",
                    "required": False,
                    "description": "What the visitor agreed to: comma-separated "
                    "`personalization`, `analytics`, or `all` / `none`. Malformed: 400.",
                    "schema": {"type": "string", "maxLength": 100},
                }
            },
            "headers": {
                "SetVisitorCookie": {
                    "description": "The visitor cookie when new, replaced or re-signed, or its "
                    "deletion (`Max-Age=0`) after a refusal.",
                    "schema": {"type": "string"},
                },
                "RetryAfter": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
                "ETag": {
                    "description": "The draft version, quoted; send it back in If-Match.",
                    "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
                },
            },
            "securitySchemes": {
                "siteApiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The site's server: one of PERSONA_API_KEYS.",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin token (`pst_...`, `persona admin-token create`). "
                    "Scopes: config:read, config:write, publish, models, privacy.",
                },
            },
        },
    }


def render() -> bytes:
    """The document as the file holds it."""
    return orjson.dumps(build(), option=orjson.OPT_INDENT_2) + b"\n"


def write(path: Path = DOCUMENT) -> None:
    """Write the document to ``path``."""
    path.write_bytes(render())
