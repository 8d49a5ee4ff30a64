"""A fixed-rate (open-loop) HTTP load generator that does not hide the tail.

Requests are scheduled at intended send times (constant rate); each latency is
measured from the INTENDED send time to the end of the response, so a stall
in the server delays and counts every request scheduled behind it (no
coordinated omission). Connections are HTTP/1.1 keep-alive, one request in
flight per connection; a request finding no idle connection opens a new one.
Raw asyncio protocols on uvloop keep the generator's own cost per request
small.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

RequestFactory = Callable[[random.Random], bytes]


@dataclass
class Result:
    """What one run measured (latencies in seconds)."""

    target_rate: float
    duration_s: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        """Requests that completed (any status) or failed."""
        return len(self.latencies) + self.errors

    @property
    def non_2xx(self) -> int:
        """Responses outside 200-299."""
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300)

    def quantile(self, q: float) -> float:
        """The q-quantile of the latencies (nearest rank)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def summary(self) -> dict[str, float | int]:
        """Rate, errors and client-side quantiles in microseconds."""
        return {
            "target_rate": self.target_rate,
            "achieved_rate": round(len(self.latencies) / self.elapsed_s, 1)
            if self.elapsed_s
            else 0,
            "requests": self.sent,
            "errors": self.errors + self.non_2xx,
            "p50_us": round(self.quantile(0.5) * 1e6),
            "p90_us": round(self.quantile(0.9) * 1e6),
            "p99_us": round(self.quantile(0.99) * 1e6),
            "p999_us": round(self.quantile(0.999) * 1e6),
            "max_us": round(max(self.latencies, default=math.nan) * 1e6),
        }


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(str(exc)))


def _time_out(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no response in time"))


async def run(
    host: str,
    port: int,
    make_request: RequestFactory,
    rate: float,
    duration_s: float,
    seed: int = 1,
    timeout_s: float = 5.0,
    connections: int = 32,
) -> Result:
    """Send ``rate`` requests per second for ``duration_s`` seconds; measure each.

    ``connections`` are opened before the first request and used in turn
    (the longest idle first), as many visitors' browsers would: reusing the
    most recent one instead would put nearly every request on one
    connection, hence on one worker process of a multi-worker server.
    """
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    idle: deque[_Conn] = deque()
    for _ in range(connections):
        _, opened = await loop.create_connection(_Conn, host, port)
        idle.append(opened)
    result = Result(rate, duration_s)
    pending: set[asyncio.Task[None]] = set()

    async def one(intended: float, payload: bytes) -> None:
        conn = None
        while idle:
            candidate = idle.popleft()
            if not candidate.closed:
                conn = candidate
                break
        try:
            if conn is None:
                _, conn = await loop.create_connection(_Conn, host, port)
            waiter = conn.waiter = loop.create_future()
            assert conn.transport is not None
            conn.transport.write(payload)
            timer = loop.call_later(timeout_s, _time_out, waiter)
            try:
                status = await waiter
            finally:
                timer.cancel()
        except (OSError, TimeoutError, ConnectionError):
            result.errors += 1
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            return
        result.latencies.append(time.perf_counter() - intended)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        idle.append(conn)

    total = int(rate * duration_s)
    # built before the clock starts: the generator's own CPU is taken from the server's
    payloads = [make_request(rng) for _ in range(total)]
    start = time.perf_counter() + 0.05
    interval = 1.0 / rate
    for i in range(total):
        intended = start + i * interval
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(intended, payloads[i]))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending)
    result.elapsed_s = time.perf_counter() - start
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return result


def run_sync(
    host: str,
    port: int,
    make_request: RequestFactory,
    rate: float,
    duration_s: float,
    seed: int = 1,
) -> Result:
    """:func:`run` on a fresh uvloop (or asyncio) loop."""
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run(host, port, make_request, rate, duration_s, seed))


def http_request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> bytes:
    """Encode one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def wall_clock() -> float:
    """Seconds since the epoch (for result files)."""
    return time.time()
