"""Shedding before queueing: a lagging event loop answers decisions at once and refuses events.

The loop is really made to lag: a task blocks it for 30 ms at a time (as a
flood of requests would), and the budget is 20 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis

from service.overload import MAX_EVENT_BATCHES_IN_FLIGHT, Overload
from service.store.keyspace import PARTITIONS, log_key
from tests.helpers import catalog_without_randomness, fan_profile, store_profile
from tests.test_fallbacks import metric

VID = "overload-visitor-0000001"
DECIDE = orjson.dumps({"placements": ["home-hero", "sidebar-offer"], "visitor_id": VID})


def log_length(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(int(client.xlen(log_key(p))) for p in range(PARTITIONS))
    finally:
        client.close()


@contextlib.asynccontextmanager
async def lagging_loop(block_s: float = 0.03) -> AsyncIterator[None]:
    """Keep the running loop blocked ``block_s`` at a time until the block ends."""
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(block_s)  # noqa: ASYNC251  (blocking the loop is the point)
            await asyncio.sleep(0)

    task = asyncio.create_task(hog())
    await asyncio.sleep(0.1)  # the probe has measured the lag
    try:
        yield
    finally:
        stop.set()
        await task
        await asyncio.sleep(0.05)  # the probe sees the loop on time again


async def decide(client: Any) -> dict[str, Any]:
    resp = await client.post("/v1/decide", data=DECIDE)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_lagging_loop_answers_the_defaults_at_once_and_catches_up(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Any
) -> None:
    settings = make_settings(
        overload_lag_ms=20.0, catalog_path=catalog_without_randomness(tmp_path)
    )
    client = await app_client(settings, server=True)
    store_profile(redis_url, VID, fan_profile("running"))
    personalized = await decide(client)
    assert personalized["decisions"]["home-hero"]["fallback"] is None
    for _ in range(100):  # the recorder appends in the background
        if log_length(redis_url) == 2:
            break
        await asyncio.sleep(0.02)
    logged = log_length(redis_url)
    assert logged == 2

    async with lagging_loop():
        shed = await decide(client)
    await asyncio.sleep(0.2)  # what the recorder would have appended has landed
    for name, default in (("home-hero", "hero-welcome"), ("sidebar-offer", "offer-free-shipping")):
        d = shed["decisions"][name]
        assert (d["variant_id"], d["policy"], d["fallback"]) == (default, "fallback", "overloaded")
    assert shed["visitor_id"] == VID
    assert log_length(redis_url) == logged, "a shed decision reads and writes nothing"
    assert await metric(client, 'persona_overload_shed_total{endpoint="decide"}') == 1
    assert await metric(client, 'persona_fallbacks_total{reason="overloaded"}') == 2
    assert await metric(client, "persona_event_loop_lag_seconds_count") > 0

    again = await decide(client)
    assert again["decisions"]["home-hero"] == {
        **personalized["decisions"]["home-hero"],
        "decision_id": again["decisions"]["home-hero"]["decision_id"],
    }


async def test_a_lagging_loop_refuses_event_batches_with_retry_after(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    client = await app_client(make_settings(overload_lag_ms=20.0), server=True)
    batch = {
        "events": [
            {
                "event_id": "overload-event-0000000001",
                "type": "view",
                "visitor_id": VID,
                "page_type": "category",
                "category": "running",
            }
        ]
    }
    before = log_length(redis_url)
    async with lagging_loop():
        resp = await client.post("/v1/events", json=batch)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"] == "overloaded"
    assert log_length(redis_url) == before, "a refused batch stores nothing"
    assert await metric(client, 'persona_overload_shed_total{endpoint="events"}') == 1

    resp = await client.post("/v1/events", json=batch)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["accepted"] == 1
    assert log_length(redis_url) == before + 1


def test_too_many_event_batches_waiting_are_refused_before_memory_grows() -> None:
    overload = Overload(budget_s=0.02)
    overload.events_in_flight = MAX_EVENT_BATCHES_IN_FLIGHT - 1
    assert not overload.events_full()
    overload.events_in_flight += 1
    assert overload.events_full()
    assert not overload.shedding(), "decisions still go through: only events wait for Redis"
