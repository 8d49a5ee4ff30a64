"""The event log's upkeep in a service worker: trimming, and archiving when configured."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import pyarrow as pa
import redis.asyncio as aioredis

from service.events import window
from service.events.archive import Archiver, consumer_name
from service.events.archive_store import open_store
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)


async def run(
    client: aioredis.Redis, settings: Settings, metrics: Metrics, stop: asyncio.Event
) -> None:
    """Trim the log (:mod:`service.events.window`) and, when PERSONA_ARCHIVE_URL is set and
    PERSONA_ARCHIVE_IN_SERVICE is on, archive it as this worker's consumer, until ``stop``."""
    tasks: list[Awaitable[None]] = [
        window.run(client, window.Retention.from_settings(settings), metrics, stop)
    ]
    if settings.archive_url is not None and settings.archive_in_service:
        try:
            store = open_store(settings.archive_url)
        except (OSError, pa.ArrowException) as exc:
            metrics.archive_errors.labels("open").inc()
            log.error(
                "cannot open the archive %s, nothing is archived: %s", settings.archive_url, exc
            )
        else:
            archiver = Archiver(client, store, metrics, consumer_name())
            tasks.append(archiver.run(stop, settings.archive_interval_s))
    await asyncio.gather(*tasks)
