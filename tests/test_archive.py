"""The archiver: the log written to Parquet once, acknowledged only when durable, readable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from service.events.archive import (
    ARCHIVE_GROUP,
    Archiver,
    forget_idle_consumers,
    write_batch,
)
from service.events.archive_store import ArchiveStore
from service.events.history import log_entries
from service.events.log import LogReader
from service.local_redis import free_port
from service.metrics import Metrics
from service.settings import REPO_DIR
from service.store.keyspace import PARTITIONS, log_key
from tests.helpers import run_persona


async def post_views(client: Any, n: int, start: int = 0) -> None:
    """``n`` view events of 37 visitors (spread over many partitions), in batches of 100."""
    for first in range(start, start + n, 100):
        events = [
            {
                "type": "view",
                "event_id": f"arc-{i:08d}",
                "visitor_id": f"arc-visitor-{i % 37:011d}",
                "category": "running",
            }
            for i in range(first, min(first + 100, start + n))
        ]
        resp = await client.post("/v1/events", data=orjson.dumps({"events": events}))
        assert resp.status == 202


async def redis_log(r: aioredis.Redis) -> dict[tuple[int, str], bytes]:
    """Every entry in Redis: (partition, stream id) -> its JSON."""
    out = {}
    for p in range(PARTITIONS):
        entries: Any = await r.xrange(log_key(p))
        for entry_id, fields in entries:
            out[(p, entry_id.decode())] = fields[b"e"]
    return out


def archived_rows(root: Path) -> list[tuple[int, str, bytes]]:
    """Every row of every archive file (duplicates included)."""
    rows: list[tuple[int, str, bytes]] = []
    for path in sorted(root.glob("date=*/*.parquet")):
        t = pq.read_table(path)
        rows += zip(
            t.column("partition").to_pylist(),
            t.column("stream_id").to_pylist(),
            [e.encode() for e in t.column("event").to_pylist()],
            strict=True,
        )
    return rows


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_every_logged_entry_is_archived_once_then_acknowledged(
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    await post_views(server_client, 120)
    body = {"placements": ["home-hero"], "visitor_id": "arc-visitor-00000000003"}
    assert (await server_client.post("/v1/decide", json=body)).status == 200
    r = aioredis.Redis.from_url(redis_url)
    for _ in range(300):  # the decision is written a few ms after its answer
        logged = await redis_log(r)
        if len(logged) == 121:
            break
        await asyncio.sleep(0.01)
    metrics = Metrics(CollectorRegistry())
    archiver = Archiver(r, ArchiveStore(str(tmp_path / "archive")), metrics, "c1")
    assert await archiver.archive_once() == 121
    rows = archived_rows(tmp_path / "archive")
    assert {(p, sid): raw for p, sid, raw in rows} == logged  # byte for byte, by stream id
    assert len(rows) == 121
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert [p.parent.name for p in (tmp_path / "archive").glob("*/*")] == [f"date={today}"]
    assert await LogReader(r, ARCHIVE_GROUP, "c1").lag() == {"lag": 0, "pending": 0}
    assert sample(metrics, "persona_archive_entries_total") == 121
    assert sample(metrics, "persona_archive_files_total") == 1
    assert sample(metrics, "persona_archive_last_success_timestamp_seconds") > time.time() - 60
    # the next pass writes only what came since
    await post_views(server_client, 15, 120)
    assert await archiver.archive_once() == 15
    assert len(archived_rows(tmp_path / "archive")) == 136
    assert sample(metrics, "persona_archive_files_total") == 2
    await r.aclose()


async def test_redelivered_entries_are_rewritten_or_read_once(
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    await post_views(server_client, 80)
    r = aioredis.Redis.from_url(redis_url)
    store = ArchiveStore(str(tmp_path / "archive"))
    crashed = LogReader(r, ARCHIVE_GROUP, "c1", decode=False)
    await crashed.ensure_groups()
    delivered = await crashed.read(1000)
    assert len(delivered) == 80
    first = write_batch(store, delivered, "c1")  # written, then the process died: no ack
    # restarted under the same name, it re-reads its pending entries: the same file again
    metrics = Metrics(CollectorRegistry())
    assert await Archiver(r, store, metrics, "c1").archive_once() == 80
    assert sorted(p.name for p in (tmp_path / "archive").glob("*/*.parquet")) == [
        first[0].split("/")[1]
    ]
    # entries claimed by another consumer land in a second file: readers still see each once
    await post_views(server_client, 30, 80)
    dying = LogReader(r, ARCHIVE_GROUP, "c2", decode=False)
    write_batch(store, await dying.read(1000), "c2")
    claimer = Archiver(r, store, Metrics(CollectorRegistry()), "c3", min_idle_ms=0)
    assert await claimer.archive_once() == 30
    rows = archived_rows(tmp_path / "archive")
    assert len(rows) == 140 and len({(p, sid) for p, sid, _ in rows}) == 110  # 30 twice
    for p in range(PARTITIONS):  # nothing left in Redis: every entry comes from the archive
        await r.xtrim(log_key(p), maxlen=0, approximate=False)
    ids = sorted([e["event_id"] async for e in log_entries(r, 0.0, store)])
    assert ids == [f"arc-{i:08d}" for i in range(110)]
    await r.aclose()


async def test_a_failed_write_is_counted_and_leaves_the_entries_pending(
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    await post_views(server_client, 25)
    r = aioredis.Redis.from_url(redis_url)
    blocked = tmp_path / "archive"
    blocked.write_text("a file where the archive folder should be")
    metrics = Metrics(CollectorRegistry())
    archiver = Archiver(r, ArchiveStore(str(blocked)), metrics, "c1")
    assert await archiver.archive_once() == 0
    assert sample(metrics, "persona_archive_errors_total", {"stage": "write"}) == 1
    assert (await LogReader(r, ARCHIVE_GROUP, "c1").lag())["pending"] == 25  # not acknowledged
    assert sample(metrics, "persona_archive_last_success_timestamp_seconds") == 0
    blocked.unlink()  # the store is back: the same entries are written on the next pass
    assert await archiver.archive_once() == 25
    assert len(archived_rows(blocked)) == 25
    assert await LogReader(r, ARCHIVE_GROUP, "c1").lag() == {"lag": 0, "pending": 0}
    await r.aclose()


async def test_archive_command_once_to_a_file_uri(
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    await post_views(server_client, 40)
    root = tmp_path / "bucket" / "persona"
    env = {
        "PERSONA_REDIS_URL": redis_url,
        "PERSONA_ARCHIVE_URL": root.as_uri(),  # file:///..., as an object store is named
    }
    result = await asyncio.to_thread(run_persona, ["archive", "--once"], env)
    assert result.returncode == 0, result.stderr
    assert f"archived 40 entries to {root.as_uri()}" in result.stdout
    assert len(archived_rows(root)) == 40
    assert not list(root.rglob("*.tmp"))
    missing = await asyncio.to_thread(run_persona, ["archive"], {"PERSONA_REDIS_URL": redis_url})
    assert missing.returncode == 2 and "PERSONA_ARCHIVE_URL" in missing.stderr
    # archiving stopped for good: the group goes, and with it its hold on the window
    r = aioredis.Redis.from_url(redis_url)
    holding = [p for p in range(PARTITIONS) if await r.exists(log_key(p))]
    dropped = await asyncio.to_thread(run_persona, ["archive", "--drop-group"], env)
    assert dropped.returncode == 0, dropped.stderr
    assert f"dropped the archive group from {len(holding)} partitions" in dropped.stdout
    for p in holding:
        assert await r.xinfo_groups(log_key(p)) == []
    await r.aclose()


async def test_gone_consumers_are_forgotten_but_not_those_holding_entries(
    server_client: Any, redis_url: str
) -> None:
    await post_views(server_client, 40)
    r = aioredis.Redis.from_url(redis_url)
    done = LogReader(r, ARCHIVE_GROUP, "host-101", decode=False)
    await done.ensure_groups()
    await done.ack(await done.read(1000))
    await post_views(server_client, 10, 40)
    holding = LogReader(r, ARCHIVE_GROUP, "host-102", decode=False)
    held = await holding.read(1000)
    assert len(held) == 10  # pending: its entries must stay claimable
    held_in = {e.partition for e in held}
    # both were made consumers on all 64 partitions by reading them
    assert await forget_idle_consumers(r, ARCHIVE_GROUP, idle_ms=0) == 2 * 64 - len(held_in)
    for p in range(PARTITIONS):
        consumers: Any = await r.xinfo_consumers(log_key(p), ARCHIVE_GROUP)
        assert [c["name"].decode() for c in consumers] == (["host-102"] if p in held_in else [])
    assert (await LogReader(r, ARCHIVE_GROUP, "x").lag())["pending"] == 10
    await r.aclose()


def _archive_process(redis_url: str, root: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")},
        "PERSONA_REDIS_URL": redis_url,
        "PERSONA_ARCHIVE_URL": str(root),
        "PERSONA_ARCHIVE_INTERVAL_S": "0.1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "service", "archive", "--metrics-port", str(port)],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return str(resp.read().decode())


async def test_archive_process_serves_metrics_and_stops_on_sigterm(
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    await post_views(server_client, 50)
    port = free_port()
    proc = _archive_process(redis_url, tmp_path / "archive", port)
    try:
        text = ""
        for _ in range(300):  # a hang guard, not a timing assertion
            try:
                text = await asyncio.to_thread(_metrics, port)
            except OSError:
                text = ""
            if "persona_archive_entries_total 50.0" in text:
                break
            await asyncio.sleep(0.05)
        assert "persona_archive_entries_total 50.0" in text, text
        assert "persona_http_requests_total" not in text  # only the archiver's series
        assert len(archived_rows(tmp_path / "archive")) == 50
        # a batch logged while it runs is archived on its next pass
        await post_views(server_client, 5, 50)
        for _ in range(300):
            if len(archived_rows(tmp_path / "archive")) == 55:
                break
            await asyncio.sleep(0.05)
        assert len(archived_rows(tmp_path / "archive")) == 55
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0, err
        assert b"archived 55 entries" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_in_service_archiver_archives_and_the_window_trims(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        archive_url=str(tmp_path / "archive"),
        archive_interval_s=0.1,
        log_window_s=1,
        log_metrics_interval_s=0.1,
    )
    client = await app_client(settings, server=True)
    await post_views(client, 200)
    r = aioredis.Redis.from_url(redis_url)
    for _ in range(400):  # archived within a pass, trimmed once older than the 1 s window
        if len(archived_rows(tmp_path / "archive")) >= 200 and not await redis_log(r):
            break
        await asyncio.sleep(0.05)
    assert not await redis_log(r)  # Redis holds nothing older than the window ...
    rows = archived_rows(tmp_path / "archive")
    assert len({(p, sid) for p, sid, _ in rows}) == 200  # ... and the archive holds it all
    assert (await LogReader(r, ARCHIVE_GROUP, "x").lag())["pending"] == 0
    ids = sorted(
        [e["event_id"] async for e in log_entries(r, 0.0, ArchiveStore(str(tmp_path / "archive")))]
    )
    assert ids == [f"arc-{i:08d}" for i in range(200)]
    # PERSONA_ARCHIVE_INTERVAL_S paces the passes (the default, 10 s, would miss this)
    await post_views(client, 50, 200)
    for _ in range(100):
        if len(archived_rows(tmp_path / "archive")) >= 250:
            break
        await asyncio.sleep(0.05)
    assert len(archived_rows(tmp_path / "archive")) == 250
    for _ in range(100):  # trimmed in turn
        if not await redis_log(r):
            break
        await asyncio.sleep(0.05)
    text = await (await client.get("/metrics")).text()
    assert "persona_archive_entries_total 250.0" in text
    assert 'persona_event_log_trimmed_entries_total{reason="window"} 250.0' in text
    assert 'persona_event_log_consumer_lag{group="archive"} 0.0' in text
    assert "persona_redis_memory_used_bytes " in text
    await r.aclose()
    await asyncio.wait_for(client.close(), 10)  # the archiver and trimmer stop with the app
