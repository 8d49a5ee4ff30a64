"""Redis memory is bounded: the private Redis refuses writes when full (profiles are never
evicted), decisions are still answered, and decision entries leave out what is null."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import OutOfMemoryError

from service.decide.record import context_of
from service.features.context import Context
from service.local_redis import STREAM_NODE_MAX_BYTES, LocalRedis
from service.store.keyspace import profile_key
from tests.helpers import PATIENT, fan_profile, logged_decisions, store_profile, wait_for_log

VID = "memory-visitor-000000000001"


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture
def full_redis(tmp_path: Path) -> Any:
    """A private Redis of 4 MB (the CLI starts its own the same way)."""
    server = LocalRedis(tmp_path / "redis", appendonly=False, maxmemory_mb=4)
    server.start()
    yield server
    server.stop()


def fill(url: str) -> int:
    """Write filler until Redis refuses; return how many 4 KB values it took."""
    r = redis.Redis.from_url(url)
    try:
        for i in range(10_000):
            try:
                r.set(f"filler:{i}", b"x" * 4096)
            except OutOfMemoryError:
                return i
        raise AssertionError("Redis never refused a write")
    finally:
        r.close()


async def test_a_full_redis_refuses_writes_and_decisions_are_still_answered(
    app_client: Any, make_settings: Any, full_redis: LocalRedis
) -> None:
    r = redis.Redis.from_url(full_redis.url)
    config = r.config_get("*")
    assert config["maxmemory"] == str(4 * 2**20)
    assert config["maxmemory-policy"] == "noeviction"
    assert config["stream-node-max-bytes"] == str(STREAM_NODE_MAX_BYTES)
    store_profile(full_redis.url, VID, fan_profile("hiking"))
    settings = make_settings(redis_url=full_redis.url, log_metrics_interval_s=0.05, **PATIENT)
    client = await app_client(settings, server=True)
    assert await asyncio.to_thread(fill, full_redis.url) > 0
    view = {"events": [{"type": "view", "event_id": "full-0001", "visitor_id": VID}]}
    assert (await client.post("/v1/events", json=view)).status == 503  # refused loudly
    body = {"placements": ["home-hero"], "visitor_id": VID}
    resp = await client.post("/v1/decide", json=body)
    assert resp.status == 200
    decided = (await resp.json())["decisions"]["home-hero"]
    assert decided["fallback"] is None and decided["policy"] == "model"  # the profile is read
    assert r.exists(profile_key(VID))  # never evicted
    for _ in range(200):  # the decision's log write fails a few ms later, and is counted
        text = await (await client.get("/metrics")).text()
        if 'persona_decisions_logged_total{outcome="failed"} 1.0' in text:
            break
        await asyncio.sleep(0.02)
    assert 'persona_decisions_logged_total{outcome="failed"} 1.0' in text
    for _ in range(200):  # the memory gauges, for the alert before maxmemory
        text = await (await client.get("/metrics")).text()
        if metric(text, "persona_redis_memory_used_bytes") >= 4 * 2**20:
            break
        await asyncio.sleep(0.02)
    assert metric(text, "persona_redis_memory_max_bytes") == 4 * 2**20
    assert metric(text, "persona_redis_memory_used_bytes") >= 4 * 2**20
    # memory freed: writes are taken again
    r.delete(*[k for k in r.keys("filler:*")])
    assert (await client.post("/v1/events", json=view)).status == 202
    r.close()


async def test_decision_entries_leave_out_what_is_null(server_client: Any, redis_url: str) -> None:
    body = {"placements": ["home-hero"], "visitor_id": "memory-unknown-0000000001"}
    assert (await server_client.post("/v1/decide", json=body)).status == 200
    await wait_for_log(redis_url, "decision", 1)
    (e,) = logged_decisions(redis_url)
    for absent in ("event_id", "fallback", "excluded", "profile", "shadow"):
        assert absent not in e, absent  # null, empty or a copy of decision_id: not stored
    assert e["decision_id"] and e["candidates"] and len(e["scores"]) == len(e["candidates"])
    assert "category" not in e["context"]
    assert context_of(e) == Context(**{**e["context"], "category": None})
    assert context_of({"context": {"device": "mobile", "category": None}}) == Context(
        device="mobile"
    )  # entries logged before still read the same
