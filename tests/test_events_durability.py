"""Redis with AOF is SIGKILLed while events are posted: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import orjson
import redis

from service.features.profile import decode_profile
from service.local_redis import LocalRedis
from service.store.keyspace import PARTITIONS, log_key, profile_key

VISITORS = [f"durable-visitor-{i:06d}" for i in range(8)]


def batch(n: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "view",
            "event_id": f"dur-{n:06d}-{k}",
            "visitor_id": VISITORS[(n + k) % 8],
            "category": "running",
        }
        for k in range(5)
    ]


async def test_acknowledged_events_survive_a_redis_sigkill(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    # always: with everysec a write postponed behind a slow fsync is lost on SIGKILL
    server = LocalRedis(tmp_path / "redis", appendonly=True, appendfsync="always")
    server.start()
    client = await app_client(
        make_settings(redis_url=server.url, events_timeout_ms=200.0), server=True
    )
    acked: list[dict[str, Any]] = []
    statuses_while_down: list[int] = []
    try:
        for n in range(300):
            if n == 150:
                assert server.process is not None
                server.process.send_signal(signal.SIGKILL)
                server.process.wait()
            if n == 200:
                server.start()  # same folder, same port: the AOF is replayed
            events = batch(n)
            resp = await client.post("/v1/events", data=orjson.dumps({"events": events}))
            if 150 <= n < 200:
                statuses_while_down.append(resp.status)
                assert resp.headers.get("Retry-After") == "1"
            elif resp.status == 202:
                acked += events
            await asyncio.sleep(0)
        assert set(statuses_while_down) == {503}  # never a 202 while Redis is down
        assert len(acked) >= 5 * 240  # it recovered and kept acknowledging
        # restart once more from the AOF alone, then check every acknowledged event
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        server.start()
        r = redis.Redis.from_url(server.url)
        logged: set[str] = set()
        logged_per_visitor: dict[str, int] = {}
        for p in range(PARTITIONS):
            for _, fields in r.xrange(log_key(p)):
                logged.add(orjson.loads(fields[b"e"])["event_id"])
                vid = fields[b"v"].decode()
                logged_per_visitor[vid] = logged_per_visitor.get(vid, 0) + 1
        missing = [e["event_id"] for e in acked if e["event_id"] not in logged]
        assert missing == []
        per_visitor: dict[str, int] = {}
        for e in acked:
            per_visitor[e["visitor_id"]] = per_visitor.get(e["visitor_id"], 0) + 1
        for vid, count in per_visitor.items():
            profile = decode_profile(r.get(profile_key(vid)))
            assert profile is not None and profile["views"] >= count
            # profile and log were written in one atomic step: they agree exactly
            assert profile["views"] == logged_per_visitor[vid]
        r.close()
    finally:
        server.stop()
