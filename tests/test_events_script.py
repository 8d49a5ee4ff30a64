"""The Redis script that applies events agrees with the reference rules in models/profiles.py."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from models import profiles as ref
from service.events.store import EventWriter, WriteConfig, apply_args, apply_command
from service.features.profile import decode_profile
from service.store.keyspace import consent_key, log_key, partition, profile_key, seen_key
from service.store.resp import PipelinedConnection, encode_command

HALF_LIFE = 14 * 86400.0
NOW = 1_790_000_000.0
CATS = ["running", "hiking", "yoga", "general"]
VARIANTS = {"hero-running": "running", "hero-hiking": "hiking", "hero-yoga": "yoga"}


def random_events(rng: random.Random, n: int) -> list[dict[str, Any]]:
    events = []
    ts = NOW - 30 * 86400
    for i in range(n):
        ts += rng.choice([5, 60, 1799, 1800, 4000, 86400 * 2]) * rng.random() * 2
        kind = rng.choice(["view", "view", "view", "impression", "click", "conversion", "feedback"])
        e: dict[str, Any] = {"type": kind, "id": f"ev-{i:08d}", "ts": round(ts, 3), "raw": "{}"}
        if kind == "view":
            if rng.random() < 0.8:
                e["category"] = rng.choice(CATS)
            e["tags"] = rng.sample(["shoes", "trail", "road", "mat"], rng.randint(0, 3))
            if rng.random() < 0.5:
                e["price_band"] = rng.randint(0, 3)
        elif kind in ("impression", "click"):
            e["variant_id"] = rng.choice(list(VARIANTS))
            e["category"] = VARIANTS[e["variant_id"]]
        elif kind == "conversion":
            e["value"] = round(rng.random() * 200, 2)
        else:
            e["rating"] = rng.randint(1, 7)
        events.append(e)
    return events


def apply_reference(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    profile: dict[str, Any] | None = None
    for e in events:
        if profile is None:
            from service.features.profile import empty_profile

            profile = empty_profile(e["ts"])
        ts = e["ts"]
        if e["type"] == "view":
            ref.apply_view(
                profile,
                category=e.get("category"),
                tags=e["tags"],
                price_band=e.get("price_band"),
                ts=ts,
                half_life_s=HALF_LIFE,
            )
        elif e["type"] == "impression":
            ref.apply_impression(profile, variant_id=e["variant_id"], ts=ts)
        elif e["type"] == "click":
            ref.apply_click(
                profile,
                variant_id=e["variant_id"],
                category=e["category"],
                ts=ts,
                half_life_s=HALF_LIFE,
            )
        elif e["type"] == "conversion":
            ref.apply_conversion(profile, value=e["value"], ts=ts)
        else:
            ref.apply_feedback(profile, rating=e["rating"], ts=ts)
    return profile


def assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        keys = set(a) | set(b)
        for k in keys:
            if k == "recent" and (not a.get(k)) and (not b.get(k)):
                continue
            assert k in a and k in b, f"{path}.{k}"
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, int | float):
        assert b == pytest.approx(a, rel=1e-11, abs=1e-3), path
    else:
        assert a == b, path


@pytest.mark.parametrize("seed", range(12))
async def test_script_matches_reference_rules(redis_url: str, seed: int) -> None:
    rng = random.Random(seed)
    events = random_events(rng, rng.randint(1, 60))
    client = aioredis.Redis.from_url(redis_url)
    conn = PipelinedConnection(redis_url, 1.0)
    writer = EventWriter(client, WriteConfig(HALF_LIFE, 3600, 1000, 86400), conn)
    if seed % 3 == 0:  # a restarted Redis has no scripts: NOSCRIPT, loaded, run once
        await client.script_flush()
    vid = f"parity-visitor-{seed:06d}"
    # split into several batches, as a page would send them
    cut = sorted({*rng.sample(range(1, len(events) + 1), min(3, len(events))), len(events)})
    start = 0
    for end in cut:
        result = await writer.apply({vid: events[start:end]}, NOW)
        assert result[vid] == [1] * (end - start)
        start = end
    stored = decode_profile(await client.get(profile_key(vid)))
    expected = apply_reference(events)
    assert_close(expected, stored)
    assert await client.xlen(log_key(partition(vid))) >= len(events)
    again = await writer.apply({vid: events}, NOW)
    assert again[vid] == [0] * len(events)  # replay counted once
    assert decode_profile(await client.get(profile_key(vid))) == stored
    await conn.aclose()
    await client.aclose()


@pytest.mark.parametrize("visitor_id", ["parity-visitor-000001", "cust-" + "a" * 32])
def test_hand_built_command_is_the_generic_encoding(visitor_id: str) -> None:
    config = WriteConfig(HALF_LIFE, 3600, 1000, 86400)
    events = orjson.dumps([{"type": "view", "id": "event-0001", "ts": NOW}])
    generic = encode_command(
        "EVALSHA",
        "f" * 40,
        4,
        profile_key(visitor_id),
        seen_key(visitor_id),
        log_key(partition(visitor_id)),
        consent_key(visitor_id),
        repr(NOW),
        repr(HALF_LIFE),
        3600,
        1000,
        86400,
        visitor_id,
        events,
    )
    assert apply_command("f" * 40, visitor_id, apply_args(NOW, config), events) == generic
