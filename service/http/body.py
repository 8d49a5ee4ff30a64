"""Reading a request body: bounded in time, size and encoding, failing as a clear 4xx.

Every handler that takes a body reads it here. The body must arrive within
``PERSONA_HTTP_BODY_TIMEOUT_S`` (else 408), be at most
``PERSONA_MAX_BODY_BYTES`` after decompression (else 413, aiohttp's limit) and
use an encoding the service decodes (identity, gzip or deflate; else 415);
a body that does not decode as its ``Content-Encoding`` claims is a 400. The
moment the body has arrived is kept on the request, so the latency metrics
measure the service from there and not the client's upload.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from service.errors import ApiError
from service.http.timing import BODY_READ_AT

ENCODINGS = ("", "identity", "gzip", "x-gzip", "deflate")


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The request's body (decompressed), or an :class:`ApiError`."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise ApiError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding[:32]!r} is not supported; use gzip, deflate or none",
        )
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the request body did not arrive within {timeout_s:g} s",
            close=True,
        ) from None
    except RequestPayloadError:
        raise ApiError(
            400,
            "invalid_body",
            f"the body could not be read as its Content-Encoding ({encoding or 'identity'}) says",
            close=True,
        ) from None
    request[BODY_READ_AT] = perf_counter()
    return raw
