"""The durable log: consumer groups deliver at least once; the Parquet export is exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import redis.asyncio as aioredis

from service.events.export import export_once, write_part
from service.events.log import LogReader
from service.settings import REPO_DIR


def batch(n: int, start: int = 0) -> bytes:
    return orjson.dumps(
        {
            "events": [
                {
                    "type": "view",
                    "event_id": f"log-{i:08d}",
                    "visitor_id": f"log-visitor-{i % 37:08d}",
                    "category": "running",
                }
                for i in range(start, start + n)
            ]
        }
    )


def exported(out: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(out.glob("day=*/*.parquet")):
        ids += pq.read_table(path).column("event_id").to_pylist()
    return ids


async def test_export_writes_every_event_once_and_resumes(
    client: Any, redis_url: str, tmp_path: Path
) -> None:
    assert (await client.post("/v1/events", data=batch(60))).status == 202
    r = aioredis.Redis.from_url(redis_url)
    out = tmp_path / "out"
    assert await export_once(LogReader(r, "export", "c1"), out) == 60
    assert sorted(exported(out)) == [f"log-{i:08d}" for i in range(60)]
    assert (await client.post("/v1/events", data=batch(15, start=60))).status == 202
    assert await export_once(LogReader(r, "export", "c1"), out) == 15
    assert len(exported(out)) == 75 and len(set(exported(out))) == 75
    lag = await LogReader(r, "export", "c1").lag()
    assert lag == {"lag": 0, "pending": 0}
    await r.aclose()


async def test_consumer_killed_after_writing_before_ack_doubles_nothing(
    client: Any, redis_url: str, tmp_path: Path
) -> None:
    assert (await client.post("/v1/events", data=batch(40))).status == 202
    r = aioredis.Redis.from_url(redis_url)
    out = tmp_path / "out"
    crashed = LogReader(r, "export", "c1")
    await crashed.ensure_groups()
    entries = await crashed.read(1000)
    assert len(entries) == 40
    by_partition: dict[int, list[Any]] = {}
    for e in entries:
        by_partition.setdefault(e.partition, []).append(e)
    for p, group in list(by_partition.items())[:3]:  # wrote some files, then died: no ack
        write_part(out, "2026-11-22", p, group)
    assert await export_once(LogReader(r, "export", "c1"), out) == 40 - sum(
        len(g) for g in list(by_partition.values())[:3]
    )
    ids = exported(out)
    assert sorted(ids) == sorted({f"log-{i:08d}" for i in range(40)}) and len(ids) == 40
    await r.aclose()


async def test_entries_of_a_dead_consumer_are_claimed(
    client: Any, redis_url: str, tmp_path: Path
) -> None:
    assert (await client.post("/v1/events", data=batch(20))).status == 202
    r = aioredis.Redis.from_url(redis_url)
    dead = LogReader(r, "export", "dead")
    await dead.ensure_groups()
    assert len(await dead.read(1000)) == 20  # read, never acknowledged
    out = tmp_path / "out"
    assert await export_once(LogReader(r, "export", "alive", min_idle_ms=0), out) == 20
    assert len(exported(out)) == 20
    await r.aclose()


def test_export_command(redis_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PERSONA_REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "service", "export-log", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_DIR,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "exported 0 events" in result.stdout
