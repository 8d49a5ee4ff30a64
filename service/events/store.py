"""Writing events: one server-side script per person, all pipelined in one round trip.

The script (``apply.lua``) dedupes by event id, updates the profile the
decision path reads, and appends to the person's event-log partition, all
atomically; the batch is acknowledged only after Redis answered for every
person in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from service.features.profile import partition, profile_key

LOG_PREFIX = "persona:{p%02d}:log"


def seen_key(visitor_id: str) -> str:
    """The ZSET of a person's recently seen event ids (for idempotency)."""
    return f"persona:{{p{partition(visitor_id):02d}}}:seen:{visitor_id}"


def consent_key(visitor_id: str) -> str:
    """The HASH recording a person's latest consent choice (proof of consent)."""
    return f"persona:{{p{partition(visitor_id):02d}}}:consent:{visitor_id}"


ERASURE_QUEUE = "persona:erasure:pending"


def log_key(part: int) -> str:
    """The event-log stream of one partition."""
    return LOG_PREFIX % part


@dataclass(frozen=True, slots=True)
class WriteConfig:
    """How events are written."""

    half_life_s: float
    ttl_s: int
    log_maxlen: int
    dedupe_window_s: int


class EventWriter:
    """Applies normalized events (dicts) to Redis, grouped by person."""

    def __init__(self, client: aioredis.Redis, config: WriteConfig) -> None:
        self.client = client
        self.config = config
        source = resources.files("service.events").joinpath("apply.lua").read_text()
        self.script = client.register_script(source)

    async def apply(
        self, by_person: dict[str, list[dict[str, Any]]], now: float
    ) -> dict[str, list[int]]:
        """Apply each person's events; return per-event 1 (applied) / 0 (duplicate).

        A person who withdrew consent is queued for erasure (the profile itself
        is already deleted by the script).
        """
        c = self.config
        async with self.client.pipeline(transaction=False) as pipe:
            order = list(by_person)
            for visitor_id in order:
                events = by_person[visitor_id]
                keys = [
                    profile_key(visitor_id),
                    seen_key(visitor_id),
                    log_key(partition(visitor_id)),
                    consent_key(visitor_id),
                ]
                args: list[bytes | str | int | float] = [
                    now,
                    c.half_life_s,
                    c.ttl_s,
                    c.log_maxlen,
                    c.dedupe_window_s,
                    visitor_id,
                    orjson.dumps(events),
                ]
                await self.script(keys=keys, args=args, client=pipe)
            replies = await pipe.execute()
        out: dict[str, list[int]] = {}
        withdrawn: dict[str, float] = {}
        for vid, reply in zip(order, replies, strict=True):
            *flags, gone = (int(x) for x in reply)
            out[vid] = flags
            if gone:
                withdrawn[vid] = now
        if withdrawn:
            await self.client.zadd(ERASURE_QUEUE, withdrawn)
        return out
