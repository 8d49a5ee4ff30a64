"""Operational endpoints: liveness, readiness, metrics, the OpenAPI document, the admin page."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from redis.exceptions import RedisError

from service.http.middleware import PAGE_HEADERS, json_response
from service.keys import LIVE, METRICS, REDIS
from service.settings import PACKAGE_DIR

STATIC_DIR = PACKAGE_DIR / "static"


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return json_response(200, {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to serve personalized answers: Redis reachable, model and catalog loaded."""
    snap = request.app[LIVE].current
    try:
        redis_ok = bool(await asyncio.wait_for(request.app[REDIS].ping(), 0.25))
    except (RedisError, OSError, TimeoutError):
        redis_ok = False
    checks = {
        "redis": redis_ok,
        "model": snap.model is not None,
        "catalog": snap.catalog is not None,
    }
    ready = all(checks.values())
    body = {
        "ready": ready,
        "checks": checks,
        "model_version": snap.model.manifest.version if snap.model else None,
        "model_predictor": snap.model.predictor.kind if snap.model else None,
        "shadow_version": snap.shadow.manifest.version if snap.shadow else None,
        "catalog_version": snap.catalog.version if snap.catalog else None,
    }
    return json_response(200 if ready else 503, body)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format (aggregated over workers when several serve)."""
    metrics = request.app[METRICS]
    metrics.flush()  # this process's tallies; other workers flush every second
    if metrics.shared_dir is not None:
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry, path=str(metrics.shared_dir))  # type: ignore[no-untyped-call]
    else:
        registry = metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def openapi(request: web.Request) -> web.FileResponse:
    """The OpenAPI 3.1 description of the public API."""
    return web.FileResponse(PACKAGE_DIR / "openapi.json")


def page(name: str) -> web.FileResponse:
    """An HTML page of ``service/static`` with the page security headers."""
    return web.FileResponse(STATIC_DIR / name, headers=PAGE_HEADERS)


async def admin(request: web.Request) -> web.FileResponse:
    """The marketer workspace (one static page; it calls the admin API with a token)."""
    return page("admin.html")


async def static(request: web.Request) -> web.FileResponse:
    """The pages' scripts and style sheets (``/static/<name>.js|.css``)."""
    name = request.match_info["name"]
    if "/" in name or not name.endswith((".js", ".css")) or not (STATIC_DIR / name).is_file():
        raise web.HTTPNotFound(text=f"no static file {name[:64]!r}")
    return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})
