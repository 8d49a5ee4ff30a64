"""Helpers for tests: profiles written the way the service stores them, catalogs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import redis

from service.features.profile import empty_profile, encode_profile
from service.settings import DEFAULT_CATALOG
from service.store.keyspace import profile_key

DAY = 86400.0


def fan_profile(
    category: str, views: int = 30, tags: tuple[str, ...] = (), now: float | None = None
) -> dict[str, Any]:
    """A returning visitor who viewed many ``category`` pages yesterday."""
    now = time.time() if now is None else now
    yesterday = now - DAY
    profile = empty_profile(now - 20 * DAY)
    profile.update(
        last=yesterday,
        sessions=6,
        views=views + 5,
        price_sum=2.0 * views,
        price_n=views,
        cat={category: [float(views), yesterday], "general": [1.0, now - 10 * DAY]},
        tag={t: [float(views) / 2, yesterday] for t in tags},
        recent=[category] * 8,
    )
    return profile


def store_profile(url: str, visitor_id: str, profile: dict[str, Any]) -> None:
    """Write a profile where the decision path reads it."""
    client = redis.Redis.from_url(url)
    client.set(profile_key(visitor_id), encode_profile(profile))
    client.close()


def cookie_visitor(response: Any) -> str | None:
    """The visitor id in a response's ``persona_vid`` cookie (``None`` when none was set)."""
    morsel = response.cookies.get("persona_vid")
    if morsel is None or not morsel.value:
        return None
    return str(morsel.value).split(".", 1)[0]


def catalog_without_randomness(tmp_path: Path) -> Path:
    """The demo catalog with exploration and holdout off, for deterministic rankings."""
    doc = orjson.loads(DEFAULT_CATALOG.read_bytes())
    for p in doc["placements"]:
        p["explore_share"] = 0.0
        p["holdout_share"] = 0.0
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def log_kinds(url: str) -> dict[str, int]:
    """How many entries of each type the event log holds, over every partition."""
    from service.store.keyspace import PARTITIONS, log_key

    r = redis.Redis.from_url(url)
    kinds: dict[str, int] = {}
    for p in range(PARTITIONS):
        for _, fields in r.xrange(log_key(p)):
            kind = orjson.loads(fields[b"e"])["type"]
            kinds[kind] = kinds.get(kind, 0) + 1
    r.close()
    return kinds


async def wait_for_log(url: str, kind: str, n: int) -> dict[str, int]:
    """The log's counts once it holds ``n`` entries of ``kind`` (decisions are written a few
    milliseconds after their answer, not awaited); fails after 3 s."""
    import asyncio

    for _ in range(300):
        kinds = log_kinds(url)
        if kinds.get(kind, 0) >= n:
            return kinds
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {n} {kind} entries in the log, found {log_kinds(url)}")
