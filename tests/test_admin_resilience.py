"""A process that cannot reach Redis keeps serving its last good configuration."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from service.admin.config import ConfigStore
from service.local_redis import LocalRedis


async def test_the_last_published_configuration_outlives_a_redis_outage(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    server = LocalRedis(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        client = await app_client(make_settings(redis_url=server.url, config_poll_ms=20))
        r = aioredis.Redis.from_url(server.url)
        store = ConfigStore(r)
        doc = {
            "variants": [{"id": "calm-offer", "category": "general", "content": {"title": "Calm"}}],
            "placements": [
                {"name": "calm", "variants": ["calm-offer"], "default_variant": "calm-offer"}
            ],
        }
        version = await store.save(doc, "test", "one slot")
        await store.publish(version.number)
        await r.aclose()
        body = {"placements": ["calm", "home-hero"]}
        for _ in range(200):
            got = (await (await client.post("/v1/decide", json=body)).json())["decisions"]
            if got["calm"]["content"] is not None:
                break
            await asyncio.sleep(0.01)
        assert got["calm"]["content"] == {"title": "Calm"}
        assert got["home-hero"]["fallback"] == "unknown_placement"  # the new config replaced it
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        for _ in range(10):  # many poll intervals while Redis is gone
            await asyncio.sleep(0.02)
            got = (await (await client.post("/v1/decide", json=body)).json())["decisions"]
            assert got["calm"]["content"] == {"title": "Calm"}
            assert got["home-hero"]["fallback"] == "unknown_placement"
    finally:
        server.stop()
