"""Long windows read the archive for what Redis no longer holds: the same rows as all-Redis."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from models.fromlog import read_log, rows_from_redis
from service.admin.stats import variant_counts
from service.catalog.loader import parse_catalog
from service.events.archive import Archiver, write_batch
from service.events.archive_store import ArchiveStore
from service.events.log import LogReader, stream_id_key
from service.metrics import Metrics
from service.store.keyspace import PARTITIONS, log_key
from tests.helpers import PATIENT, exploring_catalog, run_persona
from tests.test_admin_api import token
from tests.test_train_from_log import drive_traffic

HALF_LIFE_S = 14 * 86400


def canonical(entries: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in entries)


async def stream_ids(r: aioredis.Redis) -> dict[int, list[str]]:
    out = {}
    for p in range(PARTITIONS):
        entries: Any = await r.xrange(log_key(p))
        out[p] = [entry_id.decode() for entry_id, _ in entries]
    return out


async def test_a_window_split_between_archive_and_redis_reads_as_all_redis(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    catalog_path = exploring_catalog(tmp_path)
    client = await app_client(make_settings(catalog_path=catalog_path, **PATIENT), server=True)
    decisions, clicks = await drive_traffic(client, redis_url, catalog_path, 600, seed=11)
    catalog = parse_catalog(catalog_path.read_bytes())
    r = aioredis.Redis.from_url(redis_url)
    # the all-Redis reads
    everything = await read_log(r, 0.0)
    rows = await rows_from_redis(r, 0.0, catalog, HALF_LIFE_S)
    counts = await variant_counts(r, 0.0)
    before = await stream_ids(r)
    middle = sorted(stream_id_key(i) for ids in before.values() for i in ids)[len(everything) // 2]
    middle_s = middle[0] / 1000
    recent = await read_log(r, middle_s)
    # everything archived, some of it twice (claimed by another consumer before its ack)
    store = ArchiveStore(str(tmp_path / "archive"))
    assert await Archiver(r, store, Metrics(CollectorRegistry()), "c1").archive_once() == len(
        everything
    )
    again = LogReader(r, "copy", "c2", decode=False)
    await again.ensure_groups()
    write_batch(store, (await again.read(40))[::3], "c2")
    # Redis keeps only the newer half of each partition (exact, mid-partition cuts)
    for p in range(PARTITIONS):
        await r.xtrim(log_key(p), minid=f"{middle[0]}-{middle[1]}", approximate=False)
    after = await stream_ids(r)
    assert sum(map(len, after.values())) < len(everything)
    split = [p for p in range(PARTITIONS) if 0 < len(after[p]) < len(before[p])]
    assert split  # partitions whose window is in both places
    assert await read_log(r, 0.0) != everything  # Redis alone lost the older half

    assert canonical(await read_log(r, 0.0, store)) == canonical(everything)
    assert canonical(await read_log(r, middle_s, store)) == canonical(recent)
    from_both = await rows_from_redis(r, 0.0, catalog, HALF_LIFE_S, archive=store)
    assert len(from_both.y) == decisions and int(from_both.y.sum()) == clicks
    for name in ("x", "y", "t", "propensity"):
        assert np.array_equal(getattr(from_both, name), getattr(rows, name), equal_nan=True)
    assert from_both.skipped == rows.skipped
    assert await variant_counts(r, 0.0, archive=store) == counts
    await r.aclose()
    # the stats route reads the archive named by PERSONA_ARCHIVE_URL
    archived = await app_client(
        make_settings(catalog_path=catalog_path, archive_url=str(tmp_path / "archive"))
    )
    auth = await token(redis_url, "stats", ["config:read"])
    stats = await (await archived.get("/v1/admin/stats?days=1", headers=auth)).json()
    assert stats["placements"] == counts and counts["home-hero"]

    # the command reads the archive named by PERSONA_ARCHIVE_URL
    env = {
        **os.environ,
        "PERSONA_REDIS_URL": redis_url,
        "PERSONA_CATALOG": str(catalog_path),
        "PERSONA_ARCHIVE_URL": str(tmp_path / "archive"),
    }
    cli = await asyncio.to_thread(
        run_persona, ["train", "--out", str(tmp_path / "bundle"), "--days", "1"], env
    )
    assert cli.returncode == 0, cli.stderr
    assert f"{decisions:,} decisions with {clicks:,} clicks" in cli.stdout
