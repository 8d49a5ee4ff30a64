"""``persona archive``: the archiver and the trimmer as a process of their own.

It archives as consumer ``--consumer`` (default: the host name, so a restart
re-reads its own pending entries and rewrites the same files), trims the log
by the same rule as the service (:mod:`service.events.window`) and serves its
metrics (the ``persona_archive_*`` series and the trimmed-entries counter) at
``http://<--metrics-host>:<--metrics-port>/metrics``. SIGTERM or SIGINT ends
it after the pass under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.exceptions import ResponseError

from service.events import window
from service.events.archive import ARCHIVE_GROUP, Archiver
from service.events.archive_store import open_store
from service.metrics import Metrics
from service.settings import Settings
from service.store.address import redis_client_for
from service.store.keyspace import PARTITIONS, log_key

SERIES = ("persona_archive_", "persona_event_log_trimmed_entries")


class _Only:
    """The registry's series this process reports (the rest stay at zero here)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        for family in self.registry.collect():
            if family.name.startswith(SERIES):
                yield family


async def _serve_metrics(registry: CollectorRegistry, host: str, port: int) -> web.AppRunner:
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(_Only(registry))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def drop_group(settings: Settings) -> int:
    """Delete the archive group from every partition (archiving stopped for good: the
    trimmer then keeps the window alone); return the partitions it was on."""
    client = redis_client_for(settings.redis_url or "", timeout_s=30)
    try:
        dropped = 0
        for p in range(PARTITIONS):
            with contextlib.suppress(ResponseError):  # no such stream
                dropped += int(await client.xgroup_destroy(log_key(p), ARCHIVE_GROUP))
        return dropped
    finally:
        await client.aclose()


async def archive(
    settings: Settings,
    consumer: str,
    metrics_host: str,
    metrics_port: int,
    interval_s: float,
    once: bool = False,
) -> tuple[int, int]:
    """Run the archiver and the trimmer until SIGTERM/SIGINT (``once``: archive what is
    there, trim, and return); return the entries archived and the passes that failed."""
    assert settings.redis_url is not None and settings.archive_url is not None
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    client = redis_client_for(settings.redis_url, timeout_s=30)
    archiver = Archiver(client, open_store(settings.archive_url), metrics, consumer)
    retention = window.Retention.from_settings(settings)
    try:
        if once:
            while await archiver.archive_once():
                pass
            await window.trim_once(client, retention, metrics)
            return archiver.archived, archiver.failures
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = await _serve_metrics(registry, metrics_host, metrics_port)
        try:
            await asyncio.gather(
                archiver.run(stop, interval_s), window.run(client, retention, metrics, stop)
            )
        finally:
            await runner.cleanup()
        return archiver.archived, archiver.failures
    finally:
        await client.aclose()
