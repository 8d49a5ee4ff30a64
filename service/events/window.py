"""How much of the event log Redis keeps: the one trimming rule and the loop that applies it.

Redis holds a window of the log; the archive (:mod:`service.events.archive`)
holds all of it. Every few seconds each partition is trimmed (``XTRIM MINID ~``)
to :func:`trim_floor`: entries older than ``PERSONA_LOG_WINDOW_S`` go, but never
one the archive group has not acknowledged, which it does only once the entry
is durably in a file. A partition without that group keeps the window alone,
unless this process archives (then it has simply archived nothing yet).

The hard limit: when the log's memory (the partitions' ``MEMORY USAGE``)
passes ``PERSONA_LOG_MEMORY_LIMIT_MB``, the oldest entries of every partition
go, archived or not, until the log is back to about 90 % of it (Redis frees
whole stream nodes: give or take one per partition); they are counted
in ``persona_event_log_trimmed_entries_total{reason="memory_limit"}`` and a
warning is logged. Unset, the limit is half of Redis' ``maxmemory`` (none when
Redis has none).

The service runs this loop in every worker and ``persona archive`` runs it
too; trims are idempotent, so where several run the tightest settings win.
The writers' ``XADD … MAXLEN ~ PERSONA_LOG_MAXLEN`` stays as a last-resort cap
per partition, far above what the memory limit lets the log reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.events.archive import ARCHIVE_GROUP
from service.events.log import stream_id_key
from service.metrics import Metrics
from service.store.keyspace import PARTITIONS, log_key

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger(__name__)

WINDOW_WITH_ARCHIVE_S = 3600
WINDOW_WITHOUT_ARCHIVE_S = 7 * 86400
MEMORY_TARGET = 0.9
"""A forced trim brings the log down to this share of the limit (not just under it)."""


@dataclass(frozen=True, slots=True)
class Retention:
    """What the log in Redis keeps."""

    window_s: float
    memory_limit_bytes: int | None
    """The hard limit; ``None``: half of Redis' maxmemory; 0: none."""
    archiving: bool
    """An archive is configured: a partition without the archive group has archived nothing."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        """PERSONA_LOG_WINDOW_S (default: an hour with an archive, 7 days without),
        PERSONA_LOG_MEMORY_LIMIT_MB and PERSONA_ARCHIVE_URL."""
        archiving = settings.archive_url is not None
        window = settings.log_window_s
        if window is None:
            window = WINDOW_WITH_ARCHIVE_S if archiving else WINDOW_WITHOUT_ARCHIVE_S
        limit = settings.log_memory_limit_mb
        return cls(float(window), None if limit is None else limit * 1024 * 1024, archiving)

    @property
    def interval_s(self) -> float:
        """How often to trim: a small share of the window, at most every 5 s."""
        return min(5.0, max(0.2, self.window_s / 20))


def _after(entry_id: str) -> str:
    ms, seq = stream_id_key(entry_id)
    return f"{ms}-{seq + 1}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def trim_floor(window_floor: str, archived: str | None) -> str:
    """The rule: the id a partition is trimmed to (``MINID``: older entries go).

    ``archived`` is the id below which the partition is archived (``None``: no
    archive applies); the window's floor is never passed beyond it.
    """
    if archived is None:
        return window_floor
    return min(window_floor, archived, key=stream_id_key)


async def archived_points(client: aioredis.Redis, archiving: bool) -> list[str | None]:
    """Per partition, the id below which every entry is archived (acknowledged by the
    archive group); ``None`` where no archive applies."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(PARTITIONS):
            pipe.xinfo_groups(log_key(p))
        infos: list[Any] = await pipe.execute(raise_on_error=False)
    points: list[str | None] = []
    pending_at: list[int] = []
    for p, info in enumerate(infos):
        group = None
        if isinstance(info, list):
            group = next((g for g in info if _text(g["name"]) == ARCHIVE_GROUP), None)
        if group is None:
            points.append("0-0" if archiving else None)
            continue
        points.append(_after(_text(group["last-delivered-id"])))
        if int(group.get("pending") or 0) > 0:
            pending_at.append(p)
    if pending_at:
        async with client.pipeline(transaction=False) as pipe:
            for p in pending_at:
                pipe.xpending(log_key(p), ARCHIVE_GROUP)
            summaries: list[Any] = await pipe.execute(raise_on_error=False)
        for p, summary in zip(pending_at, summaries, strict=True):
            oldest = summary.get("min") if isinstance(summary, dict) else None
            if oldest is None:  # unknown: archive nothing more than is certain
                points[p] = "0-0"
                continue
            current = points[p]
            assert current is not None
            points[p] = min(current, _text(oldest), key=stream_id_key)
    return points


async def log_memory(client: aioredis.Redis) -> tuple[int, list[int]]:
    """The log's memory in bytes (sampled ``MEMORY USAGE``) and each partition's length."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(PARTITIONS):
            pipe.memory_usage(log_key(p))
            pipe.xlen(log_key(p))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    used = sum(r for r in replies[0::2] if isinstance(r, int))
    lengths = [r if isinstance(r, int) else 0 for r in replies[1::2]]
    return used, lengths


async def memory_limit(client: aioredis.Redis, retention: Retention) -> int:
    """The hard limit in bytes (0: none)."""
    if retention.memory_limit_bytes is not None:
        return retention.memory_limit_bytes
    info: Any = await client.info("memory")
    return int(info.get("maxmemory") or 0) // 2


async def trim_once(
    client: aioredis.Redis, retention: Retention, metrics: Metrics, now: float | None = None
) -> dict[str, int]:
    """Apply the rule to every partition, then the hard limit; return entries removed by
    reason (``window``, ``memory_limit``)."""
    now = time.time() if now is None else now
    window_floor = f"{int((now - retention.window_s) * 1000)}-0"
    points = await archived_points(client, retention.archiving)
    async with client.pipeline(transaction=False) as pipe:
        for p, archived in enumerate(points):
            pipe.xtrim(log_key(p), minid=trim_floor(window_floor, archived), approximate=True)
        trimmed: list[Any] = await pipe.execute(raise_on_error=False)
    removed = {"window": sum(n for n in trimmed if isinstance(n, int)), "memory_limit": 0}
    limit = await memory_limit(client, retention)
    if limit > 0:
        used, lengths = await log_memory(client)
        if used > limit:
            keep = MEMORY_TARGET * limit / used
            async with client.pipeline(transaction=False) as pipe:
                for p, length in enumerate(lengths):
                    pipe.xtrim(log_key(p), maxlen=int(length * keep), approximate=True)
                forced: list[Any] = await pipe.execute(raise_on_error=False)
            removed["memory_limit"] = sum(n for n in forced if isinstance(n, int))
            log.warning(
                "the event log uses %.1f MB, over its limit of %.1f MB: removed its %d oldest "
                "entries, archived or not (raise PERSONA_LOG_MEMORY_LIMIT_MB, shorten "
                "PERSONA_LOG_WINDOW_S or fix the archiver)",
                used / 2**20,
                limit / 2**20,
                removed["memory_limit"],
            )
    for reason, n in removed.items():
        if n:
            metrics.log_trimmed.labels(reason).inc(n)
    return removed


async def run(
    client: aioredis.Redis, retention: Retention, metrics: Metrics, stop: asyncio.Event
) -> None:
    """Trim every ``retention.interval_s`` until ``stop`` is set (an event, not a
    cancellation: redis-py can swallow one that lands inside a pipeline)."""
    while not stop.is_set():
        try:
            await trim_once(client, retention, metrics)
        except (RedisError, OSError) as exc:
            log.warning("event-log trim failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retention.interval_s)
