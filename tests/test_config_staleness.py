"""Each process says when it last confirmed it serves the published configuration."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis

from service.store.keyspace import CONFIG_LIVE
from tests.test_fallbacks import metric

GAUGE = "persona_config_last_sync_timestamp_seconds"


async def test_a_process_that_cannot_load_the_published_version_stops_confirming(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    client = await app_client(make_settings(config_poll_ms=20))
    await asyncio.sleep(0.2)
    assert time.time() - await metric(client, GAUGE) < 1.0
    sync = redis.Redis.from_url(redis_url)
    sync.set(CONFIG_LIVE, "999")  # a version that does not exist
    await asyncio.sleep(0.2)
    stale_since = await metric(client, GAUGE)
    await asyncio.sleep(0.5)
    assert await metric(client, GAUGE) == stale_since, "not confirmed while it cannot load it"
    decided = await client.post("/v1/decide", json={"placements": ["home-hero"]})
    assert (await decided.json())["decisions"]["home-hero"]["variant_id"] is not None
    sync.delete(CONFIG_LIVE)
    sync.close()
    await asyncio.sleep(0.2)
    assert time.time() - await metric(client, GAUGE) < 1.0, "it follows again"
