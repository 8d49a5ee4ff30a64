"""Reading a person's profile in one round trip, bounded by a deadline.

The read goes over the pipelined hiredis connection (``store/resp.py``; it
costs a fraction of redis-py's client work, docs/benchmarks.md) behind a
circuit breaker, so a dead or hung Redis costs a decision at most one timeout
until the breaker opens, and nothing after.
"""

from __future__ import annotations

from time import perf_counter
from typing import Protocol, cast

from service.store.breaker import Breaker
from service.store.errors import StoreError, StoreTimeout, StoreUnavailable
from service.store.keyspace import ALIAS_MAX_DEPTH, alias_of, follow_alias, profile_key
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


class ProfileStore:
    """The decision path's view of Redis: one read per decision, or a fast refusal."""

    def __init__(self, fetcher: Fetcher, breaker: Breaker) -> None:
        self.fetcher = fetcher
        self.breaker = breaker

    async def read(self, visitor_id: str, deadline: float) -> bytes | None:
        """The person's stored profile record, following a device's link to its customer
        profile; every read ends by ``deadline`` (``perf_counter`` seconds) or raises a
        StoreError."""
        raw = await self._get(profile_key(visitor_id), deadline)
        target = alias_of(raw)
        if target is None:  # nearly always: the visitor's own profile, one read
            return raw
        _, raw = await follow_alias(
            target, lambda key: self._get(key, deadline), links=ALIAS_MAX_DEPTH - 1
        )
        return cast(bytes | None, raw)

    async def _get(self, key: str, deadline: float) -> bytes | None:
        if not self.breaker.allow():
            raise StoreUnavailable("circuit breaker open")
        remaining = deadline - perf_counter()
        if remaining <= 0:
            raise StoreTimeout("no time left for Redis")
        try:
            value = await self.fetcher.get(key, remaining)
        except StoreError:
            if self.breaker.failure():
                self.fetcher.reset()
            raise
        self.breaker.success()
        return value
