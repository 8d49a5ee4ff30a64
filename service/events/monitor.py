"""Sampling for the metrics: the event log's length, each consumer group's lag, and Redis'
memory against its maxmemory (an alert must fire before Redis refuses writes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.metrics import Metrics
from service.store.keyspace import PARTITIONS, log_key

log = logging.getLogger(__name__)


async def sample(client: aioredis.Redis) -> tuple[int, dict[str, tuple[int, int]]]:
    """Entries in the log, and per consumer group (undelivered lag, pending)."""
    async with client.pipeline(transaction=False) as pipe:
        for p in range(PARTITIONS):
            pipe.xlen(log_key(p))
            pipe.xinfo_groups(log_key(p))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    entries = 0
    groups: dict[str, tuple[int, int]] = {}
    for i in range(0, len(replies), 2):
        length, info = replies[i], replies[i + 1]
        if isinstance(length, int):
            entries += length
        if isinstance(info, list):
            for g in info:
                name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
                lag, pending = groups.get(name, (0, 0))
                groups[name] = (lag + int(g.get("lag") or 0), pending + int(g.get("pending") or 0))
    return entries, groups


async def memory(client: aioredis.Redis) -> tuple[int, int]:
    """Redis' used memory and its maxmemory (0: unlimited), in bytes."""
    info: Any = await client.info("memory")
    return int(info.get("used_memory") or 0), int(info.get("maxmemory") or 0)


async def run(
    client: aioredis.Redis, metrics: Metrics, interval_s: float, stop: asyncio.Event
) -> None:
    """Update the log and memory gauges every ``interval_s`` until ``stop`` is set.

    Stopped by an event rather than by cancelling: redis-py can swallow a
    cancellation that lands inside a pipeline, which would leave the sampler
    (and the shutdown waiting for it) running forever.
    """
    while not stop.is_set():
        try:
            entries, groups = await sample(client)
        except (RedisError, OSError) as exc:
            log.debug("event-log sample failed: %s", exc)
        else:
            metrics.log_entries.set(entries)
            for name, (lag, pending) in groups.items():
                metrics.log_lag.labels(name).set(lag)
                metrics.log_pending.labels(name).set(pending)
        try:
            used, limit = await memory(client)
        except (RedisError, OSError) as exc:
            log.debug("Redis memory sample failed: %s", exc)
        else:
            metrics.redis_memory_used.set(used)
            metrics.redis_memory_max.set(limit)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
