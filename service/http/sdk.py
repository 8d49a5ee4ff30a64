"""``GET /sdk/v1/persona.js``: the web SDK, cacheable for a year, usable from any origin."""

from __future__ import annotations

from aiohttp import web

from service.sdk import Script

SCRIPT = web.AppKey("sdk_script", Script)

# The path changes only with a Persona release; sites pin the content with its integrity hash.
CACHE = "public, max-age=31536000"


async def script(request: web.Request) -> web.Response:
    """The minified SDK (gzipped when accepted); ``304`` when the browser has this version."""
    sdk = request.app[SCRIPT]
    headers = {
        "Cache-Control": CACHE,
        "ETag": sdk.etag,
        "Vary": "Accept-Encoding",
        # a site on another origin loads it with crossorigin="anonymous" to check its integrity
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if sdk.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = sdk.gzipped
    else:
        body = sdk.body
    return web.Response(body=body, headers=headers, content_type="text/javascript", charset="utf-8")
