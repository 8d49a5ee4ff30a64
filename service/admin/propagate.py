"""Following the published configuration: every process polls the live pointer.

A publish sets one Redis key; each process reads it every
``PERSONA_CONFIG_POLL_MS`` and, when it moved, loads and compiles that version
and publishes it in the live snapshot (a decision sees the old or the new
configuration, never a mix). Polling rather than pub/sub: a missed message
cannot strand a process on an old version, and a process that cannot reach
Redis simply keeps serving its last good configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.admin.config import ConfigError, RedisCatalogSource
from service.catalog.loader import CatalogError
from service.decide.snapshot import Live
from service.metrics import Metrics
from service.store.keyspace import CONFIG_LIVE

log = logging.getLogger(__name__)


async def follow(
    client: aioredis.Redis,
    live: Live,
    metrics: Metrics,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Swap in each newly published configuration until ``stop`` is set."""
    source = RedisCatalogSource(client)
    tried: bytes | str | None = None  # a refused version is not tried again on every poll
    loaded: bytes | str | None = None
    while not stop.is_set():
        try:
            pointer = await client.get(CONFIG_LIVE)
            if pointer is not None and pointer != tried:
                tried = pointer
                catalog = await source.load()
                previous = live.current.catalog
                live.publish(catalog=catalog)
                if previous is not None:
                    metrics.catalog_info.labels(previous.version).set(0)
                metrics.catalog_info.labels(catalog.version).set(1)
                loaded = pointer
                log.info("configuration %s is live", catalog.version)
            if pointer is None or pointer == loaded:
                metrics.config_synced.set(time.time())
        except (RedisError, OSError) as exc:
            log.debug("cannot read the live configuration, keeping the current one: %s", exc)
            tried = loaded  # try the published version again on the next poll
        except (CatalogError, ConfigError) as exc:
            log.error("published configuration refused, keeping the current one: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
