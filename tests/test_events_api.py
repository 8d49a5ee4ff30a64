"""POST /v1/events through the real app and a real Redis."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.features.profile import decode_profile
from service.local_redis import LocalRedis
from service.store.keyspace import ERASURE_QUEUE, consent_key, log_key, partition, profile_key
from tests.helpers import catalog_without_randomness, cookie_visitor

VID = "events-visitor-00000001"


def view(i: int, category: str = "running", **kw: Any) -> dict[str, Any]:
    return {
        "type": "view",
        "event_id": f"view-{i:08d}",
        "visitor_id": VID,
        "category": category,
        "page_type": "category",
        **kw,
    }


async def send(client: Any, events: list[dict[str, Any]], **kw: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/events", data=orjson.dumps({"events": events}), **kw)
    return resp.status, await resp.json()


async def test_views_update_the_profile_and_the_log(
    sync_redis: Any, server_client: Any, redis_url: str
) -> None:
    status, body = await send(server_client, [view(i) for i in range(5)])
    assert status == 202, body
    assert body["accepted"] == 5 and body["rejected"] == 0
    r = sync_redis
    profile = decode_profile(r.get(profile_key(VID)))
    assert profile is not None and profile["views"] == 5 and profile["recent"][0] == "running"
    entries = r.xrange(log_key(partition(VID)))
    assert len(entries) == 5 and entries[0][1][b"v"] == VID.encode()
    assert orjson.loads(entries[0][1][b"e"])["type"] == "view"


async def test_replayed_batch_is_counted_once(
    sync_redis: Any, server_client: Any, redis_url: str
) -> None:
    batch = [view(i) for i in range(3)]
    assert (await send(server_client, batch))[0] == 202
    status, body = await send(server_client, batch)
    assert status == 202 and body["duplicate"] == 3 and body["accepted"] == 0
    profile = decode_profile(sync_redis.get(profile_key(VID)))
    assert profile is not None and profile["views"] == 3


async def test_invalid_events_are_rejected_one_by_one(
    sync_redis: Any, server_client: Any, redis_url: str
) -> None:
    events: list[Any] = [
        view(1),
        {"type": "teleport", "event_id": "bad-00000001", "visitor_id": VID},
        {
            "type": "feedback",
            "event_id": "bad-00000002",
            "visitor_id": VID,
            "question_id": "q1",
            "rating": 9,
        },
        {"type": "view", "event_id": "bad-00000003", "visitor_id": "x\x00y"},
        {"type": "view", "event_id": "bad-00000004", "visitor_id": VID, "url": "u" * 5000},
        {
            "type": "click",
            "event_id": "bad-00000005",
            "visitor_id": VID,
            "decision_id": "0" * 27,
            "placement": "home-hero",
            "variant_id": "no-such-variant",
        },
        "not an object",
        view(2, timestamp=time.time() + 86400),
    ]
    status, body = await send(server_client, events)
    assert status == 202
    results = body["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert "$.type" in results[1]["reason"]
    assert "$.rating" in results[2]["reason"]
    assert "$.visitor_id" in results[3]["reason"]
    assert "$.url" in results[4]["reason"]
    assert "unknown variant" in results[5]["reason"]
    assert results[7]["clamped"] is True
    profile = decode_profile(sync_redis.get(profile_key(VID)))
    assert profile is not None and profile["views"] == 2
    assert profile["last"] <= time.time() + 1  # the future timestamp was clamped


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b'{"events": []}', "$.events"),
        (b"[]", "object"),
        (orjson.dumps({"events": [{}] * 101}), "at most 100 events"),
    ],
)
async def test_bad_envelopes_get_400(client: Any, raw: bytes, fragment: str) -> None:
    resp = await client.post("/v1/events", data=raw)
    assert resp.status == 400
    assert fragment in (await resp.json())["message"]


async def test_without_consent_nothing_is_stored(
    sync_redis: Any, app_client: Any, redis_url: str
) -> None:
    client = await app_client(consent=None, server=True)
    status, body = await send(client, [view(i) for i in range(3)])
    assert status == 202 and body["ignored"] == 3
    assert sync_redis.dbsize() == 0


async def test_withdrawing_consent_deletes_the_profile_and_queues_erasure(
    sync_redis: Any, server_client: Any, redis_url: str
) -> None:
    await send(server_client, [view(i) for i in range(3)])
    withdraw = {
        "type": "consent",
        "event_id": "consent-0001",
        "visitor_id": VID,
        "personalization": False,
        "policy_version": "2026-11",
    }
    status, _ = await send(server_client, [withdraw])
    assert status == 202
    r = sync_redis
    assert r.get(profile_key(VID)) is None
    assert r.zscore(ERASURE_QUEUE, VID) is not None
    record = r.hgetall(consent_key(VID))
    assert record[b"personalization"] == b"0" and record[b"policy_version"] == b"2026-11"


async def test_browser_events_use_the_cookie(sync_redis: Any, client: Any, redis_url: str) -> None:
    resp = await client.post("/v1/decide", data=b'{"placements": ["home-hero"]}')
    visitor = cookie_visitor(resp)
    event = {"type": "view", "event_id": "cookie-view-1", "category": "yoga"}
    status, body = await send(client, [event])
    assert status == 202 and body["accepted"] == 1
    profile = decode_profile(sync_redis.get(profile_key(visitor)))
    assert profile is not None and profile["recent"] == ["yoga"]


async def test_every_per_person_key_expires(
    sync_redis: Any, server_client: Any, redis_url: str
) -> None:
    await send(
        server_client,
        [view(i) for i in range(3)]
        + [
            {
                "type": "consent",
                "event_id": "consent-0002",
                "visitor_id": VID,
                "personalization": True,
                "policy_version": "2026-11",
            }
        ],
    )
    r = sync_redis
    per_person = [k for k in r.scan_iter("persona:{p*") if b":log" not in k]
    assert len(per_person) >= 3
    for key in per_person:
        assert r.ttl(key) > 0, key


async def test_viewing_running_pages_yesterday_ranks_running_first_today(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    client = await app_client(
        make_settings(catalog_path=catalog_without_randomness(tmp_path)), server=True
    )
    yesterday = time.time() - 86400
    events = [
        view(i, "running", tags=["shoes", "road"], price_band=2, timestamp=yesterday + 60 * i)
        for i in range(25)
    ]
    assert (await send(client, events))[0] == 202
    resp = await client.post(
        "/v1/decide",
        data=orjson.dumps(
            {"placements": ["home-hero"], "visitor_id": VID, "context": {"page_type": "home"}}
        ),
    )
    assert (await resp.json())["decisions"]["home-hero"]["variant_id"] == "hero-running"


async def test_redis_down_means_503_with_retry_after_never_202(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    server = LocalRedis(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        client = await app_client(
            make_settings(redis_url=server.url, events_timeout_ms=200.0), server=True
        )
        assert (await send(client, [view(1)]))[0] == 202
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        resp = await client.post("/v1/events", data=orjson.dumps({"events": [view(2)]}))
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    finally:
        server.stop()


async def test_redis_hung_means_503(app_client: Any, make_settings: Any, tmp_path: Path) -> None:
    server = LocalRedis(tmp_path / "redis", appendonly=False)
    server.start()
    assert server.process is not None
    try:
        client = await app_client(
            make_settings(redis_url=server.url, events_timeout_ms=100.0), server=True
        )
        os.kill(server.process.pid, signal.SIGSTOP)
        resp = await client.post("/v1/events", data=orjson.dumps({"events": [view(3)]}))
        assert resp.status == 503
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()
