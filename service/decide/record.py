"""Logging decisions to the event log, so the model can learn from them.

Each decision of a consenting visitor is appended to the visitor's log
partition as a ``decision`` entry: the candidates with their scores, the
variant shown, its propensity and the policy, the model and catalog versions,
and what the features were built from (the profile as read, the context and
the time), so training rebuilds exactly the rows that were scored and nothing
that happened later leaks in. The write is not awaited by the request: it goes
out on the events connection, gathered with the other requests' entries of the
next few milliseconds into one write, and a failure is only counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from service.decide.types import Decision
from service.features.context import Context
from service.features.profile import Profile
from service.metrics import Metrics
from service.store.errors import StoreError, StoreTimeout
from service.store.keyspace import log_key, partition
from service.store.resp import PipelinedConnection, encode_command

log = logging.getLogger(__name__)
RETRIES = 5
RETRY_DELAY_S = 0.1
FLUSH_S = 0.003


def entry(
    decision: Decision,
    ctx: Context,
    profile: Profile | bytes | None,
    now: float,
    catalog_version: str,
    explore_share: float,
) -> dict[str, Any]:
    """The log entry of one decision.

    ``profile`` is the profile as read: its stored JSON bytes go into the entry
    as they are (not decoded and encoded again), or a decoded profile. Fields
    that would be null or empty (``fallback``, ``excluded``, ``profile``,
    ``shadow``, a context's ``category``...) are left out: readers take a
    missing field for null, and every entry costs Redis memory until it is
    trimmed.
    """
    out: dict[str, Any] = {
        "type": "decision",
        "decision_id": decision.decision_id,
        "timestamp": now,
        "placement": decision.placement,
        "variant_id": decision.variant_id,
        "policy": decision.policy,
        "fallback": decision.fallback,
        "propensity": decision.propensity,
        "model_version": decision.model_version,
        "catalog_version": catalog_version,
        "explore_share": explore_share,
        "candidates": [c for c, _ in decision.candidates],
        "scores": [s for _, s in decision.candidates],
        "excluded": [list(x) for x in decision.excluded] or None,
        "context": {
            k: v
            for k, v in (
                ("device", ctx.device),
                ("page_type", ctx.page_type),
                ("category", ctx.category),
                ("referrer", ctx.referrer),
                ("hour", ctx.hour),
                ("dow", ctx.dow),
            )
            if v is not None
        },
        "profile": orjson.Fragment(profile) if isinstance(profile, bytes) else profile,
        "shadow": None
        if decision.shadow is None
        else {"model_version": decision.shadow[0], "scores": list(decision.shadow[1])},
    }
    return {k: v for k, v in out.items() if v is not None}


def context_of(logged: dict[str, Any]) -> Context:
    """The context a logged decision was made in (a field left out was null)."""
    return Context(**logged.get("context", {}))


class DecisionRecorder:
    """Appends decisions to the log without making the request wait."""

    def __init__(
        self, conn: PipelinedConnection, metrics: Metrics, maxlen: int, timeout_s: float
    ) -> None:
        self.conn = conn
        self.metrics = metrics
        self.maxlen = maxlen
        self.timeout_s = timeout_s
        self._pending: set[asyncio.Task[None]] = set()
        self._queued: list[tuple[str, Callable[[], Sequence[dict[str, Any]]]]] = []
        self._flush_at: asyncio.TimerHandle | None = None

    def record(self, visitor_id: str, build: Callable[[], Sequence[dict[str, Any]]]) -> None:
        """Queue a request's entries, built by ``build`` when they are written
        (within FLUSH_S; the request does not wait)."""
        self._queued.append((visitor_id, build))
        if self._flush_at is None:
            # one write (one task, one syscall) for all the requests of the next few ms
            self._flush_at = asyncio.get_running_loop().call_later(FLUSH_S, self._flush)

    def _encode(
        self, queued: list[tuple[str, Callable[[], Sequence[dict[str, Any]]]]]
    ) -> list[bytes]:
        commands: list[bytes] = []
        for visitor_id, build in queued:
            key = log_key(partition(visitor_id))
            try:
                entries = build()
            except Exception:
                log.exception("could not build a decision log entry")
                self.metrics.decisions_logged.labels("failed").inc()
                continue
            commands.extend(
                encode_command(
                    "XADD",
                    key,
                    "MAXLEN",
                    "~",
                    self.maxlen,
                    "*",
                    "v",
                    visitor_id,
                    "e",
                    orjson.dumps(e),
                )
                for e in entries
            )
        return commands

    def _flush(self) -> None:
        self._flush_at = None
        queued, self._queued = self._queued, []
        commands = self._encode(queued)
        if commands:
            task = asyncio.get_running_loop().create_task(self._send(commands))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _send(self, commands: list[bytes]) -> None:
        failed = len(commands)
        for attempt in range(RETRIES + 1):
            try:
                replies = await self.conn.execute_many(commands, self.timeout_s)
                failed = sum(isinstance(r, StoreError) for r in replies)
                break
            except StoreTimeout as exc:  # sent: a retry could log the decision twice
                log.debug("decision log write timed out: %s", exc)
                break
            except StoreError as exc:  # not connected (or lost): not on the request path, retry
                log.debug("decision log write failed (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(RETRY_DELAY_S * (attempt + 1))
        self.metrics.decisions_logged.labels("ok").inc(len(commands) - failed)
        if failed:
            self.metrics.decisions_logged.labels("failed").inc(failed)

    async def drain(self) -> None:
        """Write what is queued and wait for the writes in flight (at shutdown)."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
