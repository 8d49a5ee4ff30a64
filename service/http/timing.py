"""Service time of a request: from its arrival, or from when its body had arrived.

The middleware marks when a request reaches the service; reading the body
marks when the client finished sending it. Latency metrics measure from the
later of the two, so a slow upload is the client's time, not the service's.
"""

from __future__ import annotations

from time import perf_counter

from aiohttp import web

STARTED = web.RequestKey("started", float)
BODY_READ_AT = web.RequestKey("body_read_at", float)


def service_start(request: web.Request) -> float:
    """When the service started working on the request (``perf_counter`` seconds)."""
    started: float = request.get(STARTED, 0.0)
    body_read_at: float = request.get(BODY_READ_AT, started)
    return max(started, body_read_at)


def elapsed(request: web.Request) -> float:
    """Seconds of service time so far."""
    return perf_counter() - service_start(request)
