"""Rate limits shared by every worker process of a host (GCRA in a shared table).

Each limit is a generic cell rate algorithm: a key (a client address, a
visitor id) may make ``rate`` requests per second with bursts of ``burst``;
the state per key is one number, its theoretical arrival time (TAT). The
table lives in memory that every worker maps (a file the parent creates
before it starts them, and one lock), so a client whose connections land on
different workers is limited once, as nginx's ``limit_req`` zones do. Keys are
hashed (64 bits) into buckets of eight slots; a full bucket forgets its
oldest entry, which can only make a limit more lenient, never refuse a
request that is within it. The clock is ``time.monotonic`` (system-wide on
Linux, so the same for every worker).

A single process uses the same table in its own memory, without the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SLOTS = 1 << 16
BUCKET = 8
_SLOT = struct.Struct("<Qd")
_BUCKET = struct.Struct("<" + "Qd" * BUCKET)
SIZE = SLOTS * _SLOT.size


class Lock(Protocol):
    """What the table needs of a lock (``multiprocessing.Lock`` or a no-op)."""

    def __enter__(self) -> Any: ...

    def __exit__(self, kind: Any, value: Any, traceback: Any, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Rule:
    """A limit: ``rate`` per second with bursts of ``burst``; ``rate == 0`` disables it."""

    name: str
    rate: float
    burst: int

    @property
    def enabled(self) -> bool:
        """Whether this rule limits anything."""
        return self.rate > 0


def per_second(name: str, rate: float, burst_s: float = 2.0) -> Rule:
    """A rule of ``rate`` per second that tolerates ``burst_s`` seconds' worth at once."""
    return Rule(name, rate, max(round(rate * burst_s), 1))


class RateTable:
    """The shared table: 2**16 slots of (key hash, TAT)."""

    def __init__(self, buffer: Any, lock: Lock | None = None) -> None:
        self._buf = buffer
        self._lock: Lock = lock if lock is not None else contextlib.nullcontext()

    @classmethod
    def local(cls) -> RateTable:
        """A table for one process."""
        return cls(bytearray(SIZE))

    @staticmethod
    def create_file(path: Path) -> None:
        """Create the zeroed file workers map (called once, by the parent)."""
        with open(path, "wb") as f:
            f.truncate(SIZE)

    @classmethod
    def shared(cls, path: Path, lock: Lock) -> RateTable:
        """Map the file made by :meth:`create_file` (in each worker)."""
        with open(path, "r+b") as f:
            buf = mmap.mmap(f.fileno(), SIZE)
        return cls(buf, lock)

    def take(self, rule: Rule, key: str, now: float, commit: bool = True) -> float:
        """Count one request of ``key`` under ``rule`` at ``now``.

        Returns 0.0 when it is allowed, else the seconds until it would be.
        With ``commit=False`` it only tells, counting nothing.
        """
        h = int.from_bytes(
            hashlib.blake2b(f"{rule.name}\0{key}".encode(), digest_size=8).digest(), "little"
        )
        h |= 1  # 0 marks an empty slot
        base = (h % (SLOTS // BUCKET)) * BUCKET
        interval = 1.0 / rule.rate
        # a hair over the exact tolerance: sums of intervals are not exact in binary
        tolerance = interval * rule.burst + 1e-9
        offset = base * _SLOT.size
        with self._lock:
            cells = _BUCKET.unpack_from(self._buf, offset)
            slot = -1
            oldest = 0
            for i in range(BUCKET):
                if cells[2 * i] == h:
                    slot = i
                    break
                if cells[2 * i + 1] < cells[2 * oldest + 1]:
                    oldest = i
            tat = max(cells[2 * slot + 1], now) if slot >= 0 else now
            new_tat = tat + interval
            if new_tat - now > tolerance:
                return new_tat - now - tolerance
            if not commit:
                return 0.0
            # an expired or empty slot has the smallest TAT: it is the one reused
            _SLOT.pack_into(
                self._buf, offset + (slot if slot >= 0 else oldest) * _SLOT.size, h, new_tat
            )
        return 0.0


class Limiter:
    """Rules applied to keys, with a clock."""

    def __init__(self, table: RateTable, clock: Callable[[], float]) -> None:
        self.table = table
        self.clock = clock

    def retry_after(self, rule: Rule, key: str) -> float:
        """Count one request: 0.0 when ``key`` may go on under ``rule``, else seconds to wait."""
        if not rule.enabled:
            return 0.0
        return self.table.take(rule, key, self.clock())

    def blocked_for(self, rule: Rule, key: str) -> float:
        """Seconds ``key`` must wait before one more would be allowed (counts nothing)."""
        if not rule.enabled:
            return 0.0
        return self.table.take(rule, key, self.clock(), commit=False)
