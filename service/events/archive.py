"""The archiver: the event log, written continuously to Parquet files under PERSONA_ARCHIVE_URL.

It is the consumer group :data:`ARCHIVE_GROUP` over every partition
(:class:`~service.events.log.LogReader`), run inside the service (one consumer
per worker) or as ``persona archive``. Each pass reads what the group has not
acknowledged, writes it as one file per day of the entries' stream ids,

    date=YYYY-MM-DD/part-<first stream id>-<consumer>-<digest>.parquet

and acknowledges the entries only once their file is durably written, so the
group's acknowledged point is the archived point the trimmer
(:mod:`service.events.window`) never trims past. The digest names the set of
entries: a batch delivered again whole (a consumer restarted under the same
name) rewrites the same file. An entry can still land in two files (written,
then claimed by another consumer before its acknowledgement); readers
(:mod:`service.events.history`) keep one row per partition and stream id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from service.events.archive_store import ArchiveStore
from service.events.log import Entry, LogReader
from service.metrics import Metrics
from service.store.keyspace import PARTITIONS, log_key

log = logging.getLogger(__name__)

ARCHIVE_GROUP = "archive"
DATE_PREFIX = "date="
SCHEMA = pa.schema(
    [
        ("partition", pa.int16()),
        ("stream_id", pa.string()),
        ("ms", pa.int64()),
        ("seq", pa.int64()),
        ("visitor_id", pa.string()),
        ("type", pa.string()),
        ("timestamp", pa.float64()),
        ("event", pa.string()),
    ]
)
"""One row per log entry: where it was in Redis, whose it is, its type and time, its JSON."""

FORGET_CONSUMERS_IDLE_MS = 86_400_000
SLICE = 1000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# every entry Persona writes starts with its type, and its first "timestamp" (or "ts") key is
# its time: a decision's comes before its nested profile, events nest no objects, and a
# quote inside a string is escaped
_TYPE_RE = r'^\{"type":"(?P<type>[^"\\]*)"'
_TIMESTAMP_RE = r'"(?:timestamp|ts)":(?P<ts>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)'


def consumer_name(pid: bool = True) -> str:
    """This process's consumer name: the host, and its pid when several run on one host."""
    host = _UNSAFE.sub("_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}" if pid else host


def file_name(table: pa.Table, consumer: str) -> str:
    """The archive path of one day's batch (named by its entries, so a batch is one file)."""
    keys = np.stack(
        [table.column(c).to_numpy().astype(np.int64) for c in ("partition", "ms", "seq")]
    )
    keys = keys[:, np.lexsort(keys[::-1])]
    first = int(np.lexsort((keys[2], keys[1]))[0])
    first_id = f"{keys[1, first]}-{keys[2, first]}"
    digest = hashlib.blake2b(keys.tobytes(), digest_size=6).hexdigest()
    day = time.strftime("%Y-%m-%d", time.gmtime(int(keys[1, first]) / 1000))
    name = f"part-{first_id}-{_UNSAFE.sub('_', consumer)}-{digest}.parquet"
    return f"{DATE_PREFIX}{day}/{name}"


def _events(entries: Sequence[Entry]) -> pa.Array:
    raw = pa.array([e.raw for e in entries], pa.binary())
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:  # archived as it is, whatever the log held
        return pa.array([e.raw.decode(errors="replace") for e in entries], pa.string())


def table_of(entries: Sequence[Entry]) -> pa.Table:
    """The entries as an archive table (:data:`SCHEMA`).

    Built column by column in Arrow (the type and time found by pattern, not by
    decoding each entry), a slice of entries at a time: in the service this runs
    in a thread beside the request path, and converting a Python list holds the
    interpreter lock for as long as the list is long.
    """
    slices = [_table(entries[i : i + SLICE]) for i in range(0, len(entries), SLICE)]
    return pa.concat_tables(slices).combine_chunks()


def _table(entries: Sequence[Entry]) -> pa.Table:
    ids = pa.array([e.id for e in entries], pa.string())
    parts = pc.split_pattern(ids, "-")
    event = _events(entries)
    typed = pc.extract_regex(event, _TYPE_RE)
    timed = pc.extract_regex(event, _TIMESTAMP_RE)
    kind = pc.struct_field(typed, 0)
    ts = pc.if_else(pc.is_valid(timed), pc.cast(pc.struct_field(timed, 0), pa.float64()), None)
    missing = pc.is_null(typed).to_numpy(zero_copy_only=False)
    if missing.any():  # not written by Persona's writers: decode to find what the pattern did not
        kinds, times = kind.to_pylist(), ts.to_pylist()
        for i in np.flatnonzero(missing).tolist():
            kinds[i], times[i] = _type_and_time(entries[i].raw)
        kind, ts = pa.array(kinds, pa.string()), pa.array(times, pa.float64())
    columns = {
        "partition": pa.array([e.partition for e in entries], pa.int16()),
        "stream_id": ids,
        "ms": pc.cast(pc.list_element(parts, 0), pa.int64()),
        "seq": pc.cast(pc.list_element(parts, 1), pa.int64()),
        "visitor_id": pa.array([e.visitor_id for e in entries], pa.string()),
        "type": kind,
        "timestamp": ts,
        "event": event,
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _type_and_time(raw: bytes) -> tuple[str, float | None]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "", None
    if not isinstance(doc, dict):
        return "", None
    ts = doc.get("timestamp", doc.get("ts"))
    return str(doc.get("type", "")), float(ts) if isinstance(ts, int | float) else None


def encode(table: pa.Table) -> bytes:
    """The table as Parquet bytes (zstd: log JSON compresses several times over)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def write_batch(store: ArchiveStore, entries: Sequence[Entry], consumer: str) -> list[str]:
    """Write the entries, one file per day; return the files written (blocking: run it in a
    thread)."""
    by_day: dict[int, list[Entry]] = {}
    for e in entries:
        by_day.setdefault(e.millis // 86_400_000, []).append(e)
    written = []
    for group in by_day.values():
        table = table_of(group)
        path = file_name(table, consumer)
        store.write(path, encode(table))
        written.append(path)
    return written


class Archiver:
    """One consumer of the archive group, writing what it reads to the store."""

    def __init__(
        self,
        client: aioredis.Redis,
        store: ArchiveStore,
        metrics: Metrics,
        consumer: str,
        *,
        max_entries: int = 20_000,
        read_count: int = 200,
        min_idle_ms: int = 60_000,
    ) -> None:
        self.client = client
        self.store = store
        self.metrics = metrics
        self.consumer = consumer
        self.max_entries = max_entries
        self.read_count = read_count
        self.min_idle_ms = min_idle_ms
        self.reader = self._new_reader()
        self._grouped = False
        self.archived = 0
        """Entries this archiver wrote and acknowledged."""
        self.failures = 0
        """Passes that failed."""

    def _new_reader(self) -> LogReader:
        # a fresh reader first re-reads this consumer's pending entries (and the groups are
        # checked again: a failure may have been a flushed Redis)
        self._grouped = False
        return LogReader(self.client, ARCHIVE_GROUP, self.consumer, self.min_idle_ms, decode=False)

    async def archive_once(self) -> int:
        """Archive what the group has not acknowledged yet (up to ``max_entries``); return
        the entries written. Failures are counted by stage and leave the entries pending."""
        stage = "read"
        try:
            if not self._grouped:
                await self.reader.ensure_groups()
                self._grouped = True
            batch: dict[tuple[int, str], Entry] = {}
            while len(batch) < self.max_entries:
                # a slow pass can claim back its own entries (idle past min_idle): once each
                got = await self.reader.read(self.read_count)
                fresh = [e for e in got if (e.partition, e.id) not in batch]
                if not fresh:
                    break
                batch.update(((e.partition, e.id), e) for e in fresh)
            entries = list(batch.values())
            if entries:
                stage = "write"
                files = await asyncio.to_thread(write_batch, self.store, entries, self.consumer)
                stage = "ack"
                await self.reader.ack(entries)
                self.metrics.archive_files.inc(len(files))
                self.metrics.archive_entries.inc(len(entries))
                self.archived += len(entries)
        except (RedisError, OSError, pa.ArrowException) as exc:
            self.metrics.archive_errors.labels(stage).inc()
            self.failures += 1
            log.warning("archive pass failed at %s: %s", stage, exc)
            self.reader = self._new_reader()
            return 0
        except Exception:  # a bug must not stop archiving for good: count it, retry next pass
            self.metrics.archive_errors.labels(stage).inc()
            self.failures += 1
            log.exception("archive pass failed at %s", stage)
            self.reader = self._new_reader()
            return 0
        self.metrics.archive_last_success.set(time.time())
        return len(entries)

    async def run(self, stop: asyncio.Event, interval_s: float = 10.0) -> None:
        """Archive every ``interval_s`` (at once again while there is a backlog) until
        ``stop`` is set; a pass under way finishes first.

        Stopped by an event rather than by cancelling: redis-py can swallow a
        cancellation that lands inside a command.
        """
        with contextlib.suppress(RedisError):
            await forget_idle_consumers(self.client, ARCHIVE_GROUP, FORGET_CONSUMERS_IDLE_MS)
        while not stop.is_set():
            written = await self.archive_once()
            if written >= self.max_entries:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)


async def forget_idle_consumers(client: aioredis.Redis, group: str, idle_ms: int) -> int:
    """Remove the group's consumers idle for ``idle_ms`` with nothing pending (workers that
    are gone: each worker's consumer is named by its pid); return how many."""
    removed = 0
    for p in range(PARTITIONS):
        try:
            consumers: Any = await client.xinfo_consumers(log_key(p), group)
        except ResponseError:  # no such stream or group yet
            continue
        for c in consumers:
            if int(c.get("pending") or 0) == 0 and int(c.get("idle") or 0) >= idle_ms:
                await client.xgroup_delconsumer(log_key(p), group, c["name"])
                removed += 1
    return removed
