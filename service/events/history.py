"""Reading a long window of the log: Redis for what it still holds, the archive for the rest.

Each partition is read from Redis first; the first stream id found there at or
after ``since`` is the partition's cut. The archive then gives, per partition,
only the entries before its cut (all of them since ``since`` where Redis had
none), read day folder by day folder, keeping one row per partition and stream
id (an entry can be archived twice; see :mod:`service.events.archive`). So an
entry comes once, from Redis or from the archive, whichever trimmed it or not
in between: the result is what an all-Redis read would have given. Entries
come partition by partition, then file by file, not in time order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import redis.asyncio as aioredis

from service.events.archive import DATE_PREFIX
from service.events.archive_store import ArchiveStore
from service.events.log import partition_since, stream_id_key
from service.store.keyspace import PARTITIONS

Cut = tuple[int, int]
"""A stream id as (milliseconds, sequence)."""


async def log_entries(
    client: aioredis.Redis,
    since: float,
    archive: ArchiveStore | None = None,
    types: Collection[str] | None = None,
    page: int = 5000,
) -> AsyncIterator[dict[str, Any]]:
    """Every entry appended since ``since`` (of ``types`` only, when given), from Redis and,
    for what Redis no longer holds, from ``archive``."""
    until_ms = int(time.time() * 1000)
    cuts: list[Cut | None] = [None] * PARTITIONS
    for p in range(PARTITIONS):
        async for entry_id, event in partition_since(client, p, since, page):
            if cuts[p] is None:
                cuts[p] = stream_id_key(entry_id)
            if types is None or event.get("type") in types:
                yield event
    if archive is not None:
        async for event in archived_entries(archive, since, cuts, until_ms, types):
            yield event


async def archived_entries(
    archive: ArchiveStore,
    since: float,
    cuts: list[Cut | None],
    until_ms: int,
    types: Collection[str] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The archive's entries appended since ``since`` and before each partition's cut
    (up to ``until_ms`` where there is none), once each. Files are read in a thread."""
    since_ms = int(since * 1000)
    first = DATE_PREFIX + time.strftime("%Y-%m-%d", time.gmtime(since))
    last = DATE_PREFIX + time.strftime("%Y-%m-%d", time.gmtime(until_ms / 1000))
    bounds = np.array([c if c is not None else (until_ms + 1, 0) for c in cuts], dtype=np.int64)
    folders = await asyncio.to_thread(archive.listdir)
    for folder in folders:
        if not folder.startswith(DATE_PREFIX) or not first <= folder <= last:
            continue
        seen: set[tuple[int, int, int]] = set()  # an entry's copies share its day folder
        names = await asyncio.to_thread(archive.listdir, folder)
        for name in names:
            if not name.endswith(".parquet"):
                continue
            rows = await asyncio.to_thread(
                _select, archive, f"{folder}/{name}", since_ms, bounds, types, seen
            )
            for raw in rows:
                yield orjson.loads(raw)


def _select(
    archive: ArchiveStore,
    path: str,
    since_ms: int,
    bounds: np.ndarray[Any, np.dtype[np.int64]],
    types: Collection[str] | None,
    seen: set[tuple[int, int, int]],
) -> list[str]:
    """One file's wanted entries (JSON), not already in ``seen`` (which they are added to)."""
    columns = ["partition", "ms", "seq", "event"] + (["type"] if types is not None else [])
    table = archive.read_table(path, columns)
    part = table.column("partition").to_numpy().astype(np.int64)
    ms = table.column("ms").to_numpy()
    seq = table.column("seq").to_numpy()
    cut_ms, cut_seq = bounds[part, 0], bounds[part, 1]
    keep = (ms >= since_ms) & ((ms < cut_ms) | ((ms == cut_ms) & (seq < cut_seq)))
    if types is not None:
        wanted = pc.is_in(table.column("type"), value_set=pa.array(list(types), pa.string()))
        keep &= np.asarray(wanted.to_numpy(zero_copy_only=False), dtype=bool)
    index = np.flatnonzero(keep)
    events = table.column("event").take(pa.array(index)).to_pylist()
    out = []
    for i, raw in zip(index.tolist(), events, strict=True):
        key = (int(part[i]), int(ms[i]), int(seq[i]))
        if key not in seen:
            seen.add(key)
            out.append(raw)
    return out
