"""Reading a person's profile in one round trip, bounded by a deadline.

Two interchangeable clients exist so their cost can be measured side by side
(docs/benchmarks.md): the pipelined hiredis connection (default) and redis-py.
Both sit behind a circuit breaker, so a dead or hung Redis costs a decision at
most one timeout until the breaker opens, and nothing after.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.features.profile import profile_key
from service.store.breaker import Breaker
from service.store.errors import StoreError, StoreTimeout, StoreUnavailable
from service.store.resp import PipelinedConnection, encode_command


class Fetcher(Protocol):
    """Gets one key's value."""

    async def get(self, key: str, timeout_s: float) -> bytes | None:
        """The value, ``None`` if absent; raises a StoreError."""
        ...

    def reset(self) -> None:
        """Drop connections that may be stuck."""
        ...


class PipelinedFetcher:
    """GET over the lean pipelined connection."""

    def __init__(self, conn: PipelinedConnection) -> None:
        self.conn = conn

    async def get(self, key: str, timeout_s: float) -> bytes | None:
        """The value, ``None`` if absent."""
        value = await self.conn.execute(encode_command(b"GET", key.encode()), timeout_s)
        if value is None or isinstance(value, bytes):
            return value
        raise StoreUnavailable(f"unexpected reply type {type(value).__name__}")

    def reset(self) -> None:
        """Drop the connection."""
        self.conn.reset()


class RedisPyFetcher:
    """GET through redis-py (the stack's general client), for comparison."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def get(self, key: str, timeout_s: float) -> bytes | None:
        """The value, ``None`` if absent."""
        try:
            value = await asyncio.wait_for(self.client.get(key), timeout_s)
        except (TimeoutError, RedisTimeoutError):
            raise StoreTimeout("Redis did not answer in time") from None
        except (RedisConnectionError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from None
        return value if value is None or isinstance(value, bytes) else None

    def reset(self) -> None:
        """redis-py replaces broken connections itself."""


class ProfileStore:
    """The decision path's view of Redis: one read per decision, or a fast refusal."""

    def __init__(self, fetcher: Fetcher, breaker: Breaker) -> None:
        self.fetcher = fetcher
        self.breaker = breaker

    async def read(self, visitor_id: str, timeout_s: float) -> bytes | None:
        """The person's stored profile record, or raise a StoreError."""
        if not self.breaker.allow():
            raise StoreUnavailable("circuit breaker open")
        try:
            value = await self.fetcher.get(profile_key(visitor_id), timeout_s)
        except StoreError:
            if self.breaker.failure():
                self.fetcher.reset()
            raise
        self.breaker.success()
        return value
