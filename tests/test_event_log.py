"""The durable log: consumer groups deliver at least once; the Parquet export is exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import redis.asyncio as aioredis

from service.events.export import export_once, write_part
from service.events.log import LogReader
from service.settings import REPO_DIR
from tests.helpers import run_persona


def batch(n: int, start: int = 0) -> bytes:
    return orjson.dumps(
        {
            "events": [
                {
                    "type": "view",
                    "event_id": f"log-{i:08d}",
                    "visitor_id": f"log-visitor-{i % 37:011d}",
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
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    assert (await server_client.post("/v1/events", data=batch(60))).status == 202
    r = aioredis.Redis.from_url(redis_url)
    out = tmp_path / "out"
    assert await export_once(LogReader(r, "export", "c1"), out) == 60
    assert sorted(exported(out)) == [f"log-{i:08d}" for i in range(60)]
    assert (await server_client.post("/v1/events", data=batch(15, start=60))).status == 202
    assert await export_once(LogReader(r, "export", "c1"), out) == 15
    assert len(exported(out)) == 75 and len(set(exported(out))) == 75
    lag = await LogReader(r, "export", "c1").lag()
    assert lag == {"lag": 0, "pending": 0}
    await r.aclose()


async def test_consumer_killed_after_writing_before_ack_doubles_nothing(
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    assert (await server_client.post("/v1/events", data=batch(40))).status == 202
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
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    assert (await server_client.post("/v1/events", data=batch(20))).status == 202
    r = aioredis.Redis.from_url(redis_url)
    dead = LogReader(r, "export", "dead")
    await dead.ensure_groups()
    assert len(await dead.read(1000)) == 20  # read, never acknowledged
    out = tmp_path / "out"
    assert await export_once(LogReader(r, "export", "alive", min_idle_ms=0), out) == 20
    assert len(exported(out)) == 20
    await r.aclose()


def _export_process(redis_url: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PERSONA_REDIS_URL": redis_url}
    return subprocess.Popen(
        [sys.executable, "-m", "service", "export-log", "--out", str(out)],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def _kill_when(proc: subprocess.Popen[bytes], out: Path, files_at_least: int) -> int:
    """SIGKILL the exporter once it has written that many part files; return how many."""
    deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
    while time.monotonic() < deadline and proc.poll() is None:
        written = len(list(out.glob("day=*/*.parquet")))
        if written >= files_at_least:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return written
        time.sleep(0.001)
    raise AssertionError(f"exporter ended (rc={proc.returncode}) before it could be killed")


async def test_export_process_killed_mid_batch_loses_and_doubles_nothing(
    server_client: Any, redis_url: str, tmp_path: Path
) -> None:
    now = time.time()
    ids = [f"kill-{i:06d}" for i in range(6000)]
    for start in range(0, len(ids), 100):
        events = [
            {
                "type": "view",
                "event_id": eid,
                "visitor_id": f"kill-visitor-{i % 211:010d}",
                "category": "running",
                # Two days interleaved in stream order: part files must stay contiguous.
                "timestamp": now - (2 * 86400 if i % 2 else 0),
            }
            for i, eid in enumerate(ids[start : start + 100], start)
        ]
        resp = await server_client.post("/v1/events", data=orjson.dumps({"events": events}))
        assert resp.status == 202
    out = tmp_path / "out"
    r = aioredis.Redis.from_url(redis_url)
    first = _kill_when(_export_process(redis_url, out), out, 1)
    assert (await LogReader(r, "export", "exporter").lag())["pending"] > 0  # killed before ack
    second = _kill_when(_export_process(redis_url, out), out, first + 20)
    assert (await LogReader(r, "export", "exporter").lag())["pending"] > 0
    assert second > first
    final = _export_process(redis_url, out)
    assert final.wait(timeout=120) == 0
    got = exported(out)
    assert len(got) == len(ids) and sorted(got) == ids
    assert await LogReader(r, "export", "exporter").lag() == {"lag": 0, "pending": 0}
    await r.aclose()


def test_export_command(redis_url: str, tmp_path: Path) -> None:
    result = run_persona(["export-log", "--out", str(tmp_path)], {"PERSONA_REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert "exported 0 events" in result.stdout


async def test_log_length_and_consumer_lag_are_exported(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    client = await app_client(make_settings(log_metrics_interval_s=0.05), server=True)
    assert (await client.post("/v1/events", data=batch(12))).status == 202
    r = aioredis.Redis.from_url(redis_url)
    reader = LogReader(r, "training", "t1")
    await reader.ensure_groups()
    await reader.ack((await reader.read(1000))[:5])
    await r.aclose()
    wanted = {
        "persona_event_log_entries 12.0",
        'persona_event_log_consumer_lag{group="training"} 0.0',
        'persona_event_log_consumer_pending{group="training"} 7.0',
    }
    for _ in range(200):  # sampled every 50 ms: wait for a sample after the ack
        lines = set((await (await client.get("/metrics")).text()).splitlines())
        if wanted <= lines:
            break
        await asyncio.sleep(0.05)
    assert wanted <= lines, [line for line in lines if line.startswith("persona_event_log")]
