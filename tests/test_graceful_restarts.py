"""SIGTERM finishes what is in flight; SIGHUP replaces the workers one by one under load.

The service runs as real processes (``python -m service``) on a private
redis-server; the load is real HTTP. What must hold: no answer other than 2xx,
every acknowledged event in the log, every answered decision counted in the
metrics (the stopping workers flushed their tallies).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis

from service.store.keyspace import PARTITIONS, log_key
from tests.conftest import API_KEY, SERVER
from tests.served import Running, children, cmdline, running

pytestmark = pytest.mark.slow


@pytest.fixture
def service(service_env: dict[str, str], tmp_path: Path, request: Any) -> Iterator[Running]:
    """Two workers (or ``request.param``), a 5 s shutdown budget, events waiting up to 4 s."""
    with running(
        service_env,
        tmp_path,
        workers=getattr(request, "param", 2),
        PERSONA_SHUTDOWN_TIMEOUT_S="5",
        PERSONA_EVENTS_TIMEOUT_MS="4000",
    ) as r:
        yield r


def logged_event_ids(url: str) -> set[str]:
    """The ids of every event (not decision) in the log."""
    r = redis.Redis.from_url(url)
    try:
        ids = set()
        for p in range(PARTITIONS):
            for _, fields in r.xrange(log_key(p)):
                e = orjson.loads(fields[b"e"])
                if e.get("type") != "decision":
                    ids.add(e["event_id"])
        return ids
    finally:
        r.close()


@dataclass
class Load:
    """What a fixed-rate load saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: set[str] = field(default_factory=set)
    decisions: int = 0
    resent: int = 0  # requests sent again after the connection closed before any answer


async def drive(port: int, seconds: float, rate: float, load: Load) -> None:
    """Decisions and event batches at ``rate`` per second each, as the site's server sends.

    A request whose keep-alive connection the server closed before answering
    is sent again on a new connection, as browsers and HTTP clients do (it was
    never processed: the server only closes idle connections).
    """
    ids = itertools.count()
    url = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=64)
    headers = {**SERVER, "X-Persona-Consent": "personalization,analytics"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def send(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            for attempt in range(3):
                try:
                    async with session.post(url + path, json=body) as resp:
                        return resp.status, await resp.json()
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    load.resent += 1
                    await asyncio.sleep(0.01 * (attempt + 1))
            raise AssertionError(f"{path}: no answer after 3 connections")

        async def one_decision(n: int) -> None:
            status, _ = await send(
                "/v1/decide",
                {"placements": ["home-hero"], "visitor_id": f"restart-visitor-{n % 50:08d}-x"},
            )
            load.statuses[status] += 1
            if status == 200:
                load.decisions += 1

        async def one_batch(n: int) -> None:
            events = [
                {
                    "type": "view",
                    "event_id": f"restart-event-{n:08d}-{k}",
                    "visitor_id": f"restart-visitor-{n % 50:08d}-x",
                    "page_type": "category",
                    "category": "running",
                }
                for k in range(2)
            ]
            status, body = await send("/v1/events", {"events": events})
            load.statuses[status] += 1
            if status == 202:
                for verdict in body["results"]:
                    if verdict["status"] in ("accepted", "duplicate"):
                        load.acknowledged.add(verdict["event_id"])

        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            n = next(ids)
            tasks.append(asyncio.create_task(one_decision(n)))
            tasks.append(asyncio.create_task(one_batch(n)))
        await asyncio.gather(*tasks)


def metric(port: int, name: str) -> float:
    """The sum of the series of ``name`` (a name, or a name and the start of its labels)."""

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    prefixes = (name,) if "{" in name else (name + " ", name + "{")
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefixes)
    )


def workers_of(pid: int) -> set[int]:
    return {c for c in children(pid) if "spawn_main" in cmdline(c)}


async def test_sighup_replaces_every_worker_under_load_without_an_error(
    service: Running,
) -> None:
    before = workers_of(service.proc.pid)
    assert len(before) == 2
    load = Load()
    driving = asyncio.create_task(drive(service.port, 14.0, 60.0, load))
    await asyncio.sleep(2.0)
    service.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while b"rolling restart done" not in service.log.read_bytes():
        assert time.monotonic() < deadline, service.log.read_text()
        await asyncio.sleep(0.2)
    after = workers_of(service.proc.pid)
    await driving
    assert len(after) == 2 and not after & before, (before, after)
    assert set(load.statuses) <= {200, 202}, load.statuses
    assert load.statuses[200] == load.decisions > 700
    missing = load.acknowledged - logged_event_ids(service.redis_url)
    assert not missing, f"{len(missing)} acknowledged events are not in the log"
    assert len(load.acknowledged) > 1400
    # every answered decision was counted, also by the workers that stopped
    await asyncio.sleep(1.5)  # the live workers flush their tallies every second
    counted = metric(service.port, 'persona_decisions_total{placement="home-hero"')
    assert counted == load.decisions
    assert metric(service.port, 'persona_worker_restarts_total{reason="rolling"}') == 2
    print(f"resent after a closed keep-alive connection: {load.resent}")


@pytest.mark.parametrize("service", [1], indirect=True)
def test_sigterm_finishes_a_request_in_flight_and_refuses_new_connections(
    service: Running,
) -> None:
    body = orjson.dumps(
        {
            "events": [
                {
                    "type": "view",
                    "event_id": "in-flight-event-0000000001",
                    "visitor_id": "in-flight-visitor-000000001",
                    "page_type": "home",
                }
            ]
        }
    )
    request = (
        f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {API_KEY}\r\nX-Persona-Consent: personalization\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    assert service.redis.process is not None
    redis_pid = service.redis.process.pid
    os.kill(redis_pid, signal.SIGSTOP)  # the batch waits for Redis: it is in flight
    try:
        conn = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        conn.sendall(request)
        time.sleep(0.3)
        service.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(OSError):  # no new connections once stopping
            socket.create_connection(("127.0.0.1", service.port), timeout=2).close()
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    answer = b""
    while chunk := conn.recv(65536):  # until the service closes the connection
        answer += chunk
    conn.close()
    assert answer.startswith(b"HTTP/1.1 202"), answer
    assert b'"status":"accepted"' in answer
    assert service.proc.wait(timeout=15) == 0
    assert "in-flight-event-0000000001" in logged_event_ids(service.redis_url)
