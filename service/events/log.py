"""Reading the durable event log: consumer groups over the 64 stream partitions.

Delivery is at-least-once: an entry stays pending for its consumer until
acknowledged; a restarted consumer first re-reads its own pending entries, and
entries left pending by a consumer that died are claimed after ``min_idle``.
Whatever consumes must therefore be idempotent — :mod:`service.events.export`
is, by keying its output on stream ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from service.store.keyspace import PARTITIONS, log_key


@dataclass(frozen=True, slots=True)
class Entry:
    """One logged event."""

    partition: int
    id: str
    visitor_id: str
    event: dict[str, Any]
    """The entry decoded (empty when read by a reader that does not decode)."""
    raw: bytes = b""
    """The entry's JSON as logged."""

    @property
    def millis(self) -> int:
        """Milliseconds since the epoch when Redis appended it."""
        return int(self.id.split("-", 1)[0])


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """Sortable form of a stream id."""
    ms, seq = entry_id.split("-", 1)
    return int(ms), int(seq)


class LogReader:
    """A named consumer in a consumer group over every partition.

    With ``decode=False`` entries carry their JSON as logged and no decoded
    event (for a consumer that only stores them).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        group: str,
        consumer: str,
        min_idle_ms: int = 60_000,
        partitions: range = range(PARTITIONS),
        decode: bool = True,
    ) -> None:
        self.client = client
        self.decode = decode
        self.group = group
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self.partitions = partitions
        self._pending_done: set[int] = set()

    async def ensure_groups(self) -> None:
        """Create the group on every partition (from the beginning) if missing."""
        for p in self.partitions:
            try:
                await self.client.xgroup_create(log_key(p), self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _parse(self, partition: int, raw: list[Any]) -> list[Entry]:
        out = []
        for entry_id, fields in raw:
            if not fields:  # deleted while pending
                continue
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            logged = fields[b"e"]
            event = orjson.loads(logged) if self.decode else {}
            out.append(Entry(partition, eid, fields[b"v"].decode(), event, logged))
        return out

    async def read(self, count: int = 500) -> list[Entry]:
        """Next entries for this consumer: its own pending ones, then claimed, then new."""
        entries: list[Entry] = []
        for p in self.partitions:
            key = log_key(p)
            if p not in self._pending_done:
                reply: Any = await self.client.xreadgroup(
                    self.group, self.consumer, {key: "0"}, count=count
                )
                got = self._parse(p, reply[0][1]) if reply else []
                entries += got
                if len(got) >= count:
                    continue
                self._pending_done.add(p)
            claimed: Any = await self.client.xautoclaim(
                key, self.group, self.consumer, self.min_idle_ms, "0-0", count=count
            )
            entries += self._parse(p, claimed[1])
            fresh: Any = await self.client.xreadgroup(
                self.group, self.consumer, {key: ">"}, count=count
            )
            if fresh:
                entries += self._parse(p, fresh[0][1])
        return entries

    async def ack(self, entries: list[Entry]) -> None:
        """Acknowledge processed entries."""
        by_partition: dict[int, list[str]] = {}
        for e in entries:
            by_partition.setdefault(e.partition, []).append(e.id)
        async with self.client.pipeline(transaction=False) as pipe:
            for p, ids in by_partition.items():
                pipe.xack(log_key(p), self.group, *ids)
            await pipe.execute()

    async def lag(self) -> dict[str, int]:
        """Entries not yet delivered to the group, and entries pending acknowledgement."""
        lag = pending = 0
        for p in self.partitions:
            try:
                groups: Any = await self.client.xinfo_groups(log_key(p))
            except ResponseError:
                continue
            for g in groups:
                if g["name"] in (self.group, self.group.encode()):
                    lag += int(g.get("lag") or 0)
                    pending += int(g.get("pending") or 0)
        return {"lag": lag, "pending": pending}


async def entries_since(
    client: aioredis.Redis, since: float, page: int = 5000
) -> AsyncIterator[dict[str, Any]]:
    """Every logged entry (events and decisions) appended since ``since``, partition by partition.

    Stream ids are millisecond timestamps, so each partition's scan starts at
    the right entry; pages of ``page`` entries bound the memory per call.
    Reporting and training read this way (through :mod:`service.events.history`,
    which adds what the archive holds); consumers that must not miss or
    repeat use :class:`LogReader`.
    """
    for p in range(PARTITIONS):
        async for _, event in partition_since(client, p, since, page):
            yield event


async def partition_since(
    client: aioredis.Redis, p: int, since: float, page: int = 5000
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """One partition's entries appended since ``since``, oldest first, with their stream ids."""
    start = f"{int(since * 1000)}-0"
    while True:
        raw: Any = await client.xrange(log_key(p), min=start, max="+", count=page)
        for entry_id, fields in raw:
            yield entry_id.decode(), orjson.loads(fields[b"e"])
        if len(raw) < page:
            break
        ms, seq = raw[-1][0].decode().split("-")
        start = f"{ms}-{int(seq) + 1}"
