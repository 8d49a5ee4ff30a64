"""Redis keeps a window of the log: never trimmed past what is archived, unless the hard
memory limit forces it (then counted), and bounded whatever runs for how long."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from service.events import window
from service.events.archive import ARCHIVE_GROUP, Archiver
from service.events.archive_store import ArchiveStore
from service.events.log import LogReader, stream_id_key
from service.local_redis import STREAM_NODE_MAX_BYTES
from service.metrics import Metrics
from service.settings import Settings
from service.store.keyspace import PARTITIONS, log_key

HOUR_MS = 3_600_000
NOW = 1_800_000_000.0
"""The trimmer's clock in these tests: entries are appended with ids around it."""


async def append(r: aioredis.Redis, p: int, at_ms: int, n: int, size: int = 100) -> list[str]:
    """``n`` entries in partition ``p`` stamped ``at_ms`` (ids ``at_ms-0``, ``at_ms-1``...)."""
    ids = []
    async with r.pipeline(transaction=False) as pipe:
        for i in range(n):
            doc = {"type": "view", "event_id": f"w-{p}-{at_ms}-{i}", "pad": "x" * size}
            pipe.xadd(log_key(p), {"v": "visitor", "e": orjson.dumps(doc)}, id=f"{at_ms}-{i}")
        replies: Any = await pipe.execute()
        for reply in replies:
            ids.append(reply.decode())
    return ids


async def ids_in(r: aioredis.Redis, p: int) -> list[str]:
    entries: Any = await r.xrange(log_key(p))
    return [entry_id.decode() for entry_id, _ in entries]


def trimmed(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "persona_event_log_trimmed_entries_total", {"reason": reason}
    )
    return value or 0.0


async def test_the_window_never_trims_what_the_archive_group_has_not_acknowledged(
    redis_url: str,
) -> None:
    r = aioredis.Redis.from_url(redis_url)
    now_ms = int(NOW * 1000)
    old = await append(r, 5, now_ms - 3 * HOUR_MS, 300)  # all older than the window
    recent = await append(r, 5, now_ms - 60_000, 50)
    reader = LogReader(r, ARCHIVE_GROUP, "c1")
    await reader.ensure_groups()
    delivered = await reader.read(200)  # 200 delivered, 100 never delivered
    await reader.ack(delivered[:120])  # 80 delivered and pending
    metrics = Metrics(CollectorRegistry())
    retention = window.Retention(window_s=3600, memory_limit_bytes=0, archiving=True)
    removed = await window.trim_once(r, retention, metrics, now=NOW)
    left = await ids_in(r, 5)
    unacked = old[120:] + recent
    assert set(unacked) <= set(left)  # every pending or undelivered entry is still there
    assert 0 < removed["window"] <= 120 and removed["memory_limit"] == 0
    assert left == (old + recent)[removed["window"] :]  # the oldest went, nothing else
    assert trimmed(metrics, "window") == removed["window"]
    # once everything old is acknowledged, the window alone decides: the recent entries stay
    await reader.ack(delivered[120:])
    await reader.ack(await reader.read(1000))
    await window.trim_once(r, retention, metrics, now=NOW)
    assert await ids_in(r, 5) == recent
    assert trimmed(metrics, "window") == 300
    await r.aclose()


async def test_without_an_archive_the_window_alone_trims(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    now_ms = int(NOW * 1000)
    await append(r, 9, now_ms - 2 * HOUR_MS, 200)  # two whole stream nodes: trimming is by node
    recent = await append(r, 9, now_ms - 1000, 10)
    metrics = Metrics(CollectorRegistry())
    # an archive configured but its group not created yet: nothing is taken for archived
    waiting = window.Retention(window_s=3600, memory_limit_bytes=0, archiving=True)
    assert await window.trim_once(r, waiting, metrics, now=NOW) == {
        "window": 0,
        "memory_limit": 0,
    }
    assert len(await ids_in(r, 9)) == 210
    alone = window.Retention(window_s=3600, memory_limit_bytes=0, archiving=False)
    assert (await window.trim_once(r, alone, metrics, now=NOW))["window"] == 200
    assert await ids_in(r, 9) == recent
    await r.aclose()


async def test_the_memory_limit_trims_unarchived_entries_and_counts_them(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = aioredis.Redis.from_url(redis_url)
    now_ms = int(NOW * 1000)
    for p in range(PARTITIONS):
        await append(r, p, now_ms - 1000, 800, size=400)  # all inside the window
    await LogReader(r, ARCHIVE_GROUP, "c1").ensure_groups()  # nothing archived
    used, _ = await window.log_memory(r)
    limit = used // 3
    metrics = Metrics(CollectorRegistry())
    retention = window.Retention(window_s=3600, memory_limit_bytes=limit, archiving=True)
    with caplog.at_level(logging.WARNING, logger="service.events.window"):
        removed = await window.trim_once(r, retention, metrics, now=NOW)
    assert removed["window"] == 0 and removed["memory_limit"] > 0
    assert trimmed(metrics, "memory_limit") == removed["memory_limit"]
    # about 90 % of the limit, give or take a stream node per partition (trimmed whole)
    assert (await window.log_memory(r))[0] <= limit + PARTITIONS * STREAM_NODE_MAX_BYTES
    left = sum([len(await ids_in(r, p)) for p in range(PARTITIONS)])
    assert left == 64 * 800 - removed["memory_limit"] and left < 0.5 * 64 * 800
    for p in range(PARTITIONS):  # the oldest went: what is left is each partition's newest
        ids = await ids_in(r, p)
        assert ids == [f"{now_ms - 1000}-{i}" for i in range(800 - len(ids), 800)]
    assert "over its limit" in caplog.text
    # under the limit nothing more is forced
    assert (await window.trim_once(r, retention, metrics, now=NOW))["memory_limit"] == 0
    await r.aclose()


async def test_the_memory_limit_defaults_to_half_of_maxmemory(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    unset = window.Retention(window_s=60, memory_limit_bytes=None, archiving=False)
    config: Any = await r.config_get("maxmemory")
    maxmemory = int(config["maxmemory"])
    assert maxmemory > 0  # the private Redis always runs with one
    assert await window.memory_limit(r, unset) == maxmemory // 2
    await r.config_set("maxmemory", 0)
    try:
        assert await window.memory_limit(r, unset) == 0
    finally:
        await r.config_set("maxmemory", maxmemory)
    await r.aclose()


def test_retention_from_settings() -> None:
    archived = window.Retention.from_settings(Settings(archive_url="/tmp/a"))
    assert (archived.window_s, archived.archiving) == (3600, True)
    assert window.Retention.from_settings(Settings()).window_s == 7 * 86400
    set_ = window.Retention.from_settings(Settings(log_window_s=180, log_memory_limit_mb=5))
    assert (set_.window_s, set_.memory_limit_bytes, set_.archiving) == (180, 5 * 2**20, False)
    assert window.Retention.from_settings(Settings()).memory_limit_bytes is None


async def test_archiving_and_trimming_keep_redis_bounded(redis_url: str, tmp_path: Path) -> None:
    """Simulated hours of traffic at a steady rate: once the window has filled, the log's
    memory stays flat, and the archive holds every entry."""
    r = aioredis.Redis.from_url(redis_url)
    metrics = Metrics(CollectorRegistry())
    store = ArchiveStore(str(tmp_path / "archive"))
    archiver = Archiver(r, store, metrics, "c1")
    retention = window.Retention(window_s=600, memory_limit_bytes=0, archiving=True)
    start_ms = int(NOW * 1000)
    memory: list[int] = []
    appended = 0
    for minute in range(30):  # 30 simulated minutes, a 10-minute window
        at = start_ms + minute * 60_000
        for p in range(0, PARTITIONS, 8):
            await append(r, p, at, 100)  # a stream node's worth (100 entries) a minute
            appended += 100
        await archiver.archive_once()
        await window.trim_once(r, retention, metrics, now=at / 1000)
        memory.append((await window.log_memory(r))[0])
    filled = memory[12:]  # once the window has filled
    assert max(filled) <= 1.25 * min(filled), memory  # flat ...
    assert memory[-1] < 1.5 * memory[9], memory  # ... where keeping it all would be 3x
    assert trimmed(metrics, "window") > 0.6 * appended
    archived = set()
    for path in (tmp_path / "archive").glob("date=*/*.parquet"):
        t = pq.read_table(path, columns=["partition", "stream_id"])
        parts, ids = t.column("partition").to_pylist(), t.column("stream_id").to_pylist()
        archived |= set(zip(parts, ids, strict=True))
    assert len(archived) == appended
    for p in range(0, PARTITIONS, 8):  # the oldest entry left is inside the window or unarchived
        first = (await ids_in(r, p))[0]
        assert stream_id_key(first)[0] >= start_ms + 29 * 60_000 - 600_000 - 60_000
    await r.aclose()
