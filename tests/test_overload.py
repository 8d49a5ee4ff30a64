"""Shedding before queueing: a lagging event loop answers decisions at once and refuses events.

The loop is really made to lag: a task blocks it for 30 ms at a time (as a
flood of requests would), and the budget is 20 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis

from service.http.shed_lane import LANE
from service.overload import MAX_EVENT_BATCHES_IN_FLIGHT, Overload
from service.store.keyspace import PARTITIONS, log_key
from tests.conftest import API_KEY
from tests.helpers import catalog_without_randomness, fan_profile, store_profile
from tests.test_fallbacks import metric

VID = "overload-visitor-0000001"
DECIDE = orjson.dumps({"placements": ["home-hero", "sidebar-offer"], "visitor_id": VID})


def log_length(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(int(client.xlen(log_key(p))) for p in range(PARTITIONS))
    finally:
        client.close()


@contextlib.asynccontextmanager
async def lagging_loop(block_s: float = 0.03) -> AsyncIterator[None]:
    """Keep the running loop blocked ``block_s`` at a time until the block ends."""
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(block_s)  # noqa: ASYNC251  (blocking the loop is the point)
            await asyncio.sleep(0)

    task = asyncio.create_task(hog())
    await asyncio.sleep(0.1)  # the probe has measured the lag
    try:
        yield
    finally:
        stop.set()
        await task
        await asyncio.sleep(0.05)  # the probe sees the loop on time again


async def decide(client: Any) -> dict[str, Any]:
    resp = await client.post("/v1/decide", data=DECIDE)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_lagging_loop_answers_the_defaults_at_once_and_catches_up(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Any
) -> None:
    settings = make_settings(
        overload_lag_ms=20.0, catalog_path=catalog_without_randomness(tmp_path)
    )
    client = await app_client(settings, server=True)
    store_profile(redis_url, VID, fan_profile("running"))
    personalized = await decide(client)
    assert personalized["decisions"]["home-hero"]["fallback"] is None
    for _ in range(100):  # the recorder appends in the background
        if log_length(redis_url) == 2:
            break
        await asyncio.sleep(0.02)
    logged = log_length(redis_url)
    assert logged == 2

    async with lagging_loop():
        shed = await decide(client)
    await asyncio.sleep(0.2)  # what the recorder would have appended has landed
    for name, default in (("home-hero", "hero-welcome"), ("sidebar-offer", "offer-free-shipping")):
        d = shed["decisions"][name]
        assert (d["variant_id"], d["policy"], d["fallback"]) == (default, "fallback", "overloaded")
    assert shed["visitor_id"] == VID
    assert log_length(redis_url) == logged, "a shed decision reads and writes nothing"
    assert await metric(client, 'persona_overload_shed_total{endpoint="decide"}') == 1
    assert await metric(client, 'persona_fallbacks_total{reason="overloaded"}') == 2
    assert await metric(client, "persona_event_loop_lag_seconds_count") > 0

    again = await decide(client)
    assert again["decisions"]["home-hero"] == {
        **personalized["decisions"]["home-hero"],
        "decision_id": again["decisions"]["home-hero"]["decision_id"],
    }


async def test_a_lagging_loop_refuses_event_batches_with_retry_after(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    client = await app_client(make_settings(overload_lag_ms=20.0), server=True)
    batch = {
        "events": [
            {
                "event_id": "overload-event-0000000001",
                "type": "view",
                "visitor_id": VID,
                "page_type": "category",
                "category": "running",
            }
        ]
    }
    before = log_length(redis_url)
    async with lagging_loop():
        resp = await client.post("/v1/events", json=batch)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"] == "overloaded"
    assert log_length(redis_url) == before, "a refused batch stores nothing"
    assert await metric(client, 'persona_overload_shed_total{endpoint="events"}') == 1

    resp = await client.post("/v1/events", json=batch)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["accepted"] == 1
    assert log_length(redis_url) == before + 1


def test_too_many_event_batches_waiting_are_refused_before_memory_grows() -> None:
    overload = Overload(budget_s=0.02)
    overload.events_in_flight = MAX_EVENT_BATCHES_IN_FLIGHT - 1
    assert not overload.events_full()
    overload.events_in_flight += 1
    assert overload.events_full()
    assert not overload.shedding(), "decisions still go through: only events wait for Redis"


async def raw_decide(client: Any, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, bytes]:
    """A whole ``POST /v1/decide`` written at once, as a browser or server sends it."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /v1/decide HTTP/1.1\r\nHost: persona\r\nContent-Type: application/json\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(request)
    status_line = await reader.readline()
    raw_headers = b""
    while (line := await reader.readline()) != b"\r\n":
        raw_headers += line
    length = int(raw_headers.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    payload = await reader.readexactly(length)
    writer.close()
    return int(status_line.split()[1]), raw_headers, payload


async def test_while_shedding_the_connection_answers_a_whole_decide_with_the_same_rules(
    app_client: Any, make_settings: Any
) -> None:
    settings = make_settings(overload_lag_ms=20.0, cors_origins=("https://shop.example",))
    client = await app_client(settings)
    server = {"Authorization": f"Bearer {API_KEY}"}
    named = orjson.dumps({"placements": ["home-hero"], "visitor_id": VID})
    async with lagging_loop():
        ok = await raw_decide(
            client, named, {**server, "Origin": "https://shop.example", "X-Request-Id": "r-1"}
        )
        browser_naming = await raw_decide(client, named, {})
        wrong_key = await raw_decide(client, named, {"Authorization": "Bearer nope"})
        twice = await raw_decide(
            client, orjson.dumps({"placements": ["home-hero", "home-hero"]}), {}
        )
        browser = await raw_decide(client, orjson.dumps({"placements": ["home-hero"]}), {})
    status, headers, payload = ok
    assert status == 200
    doc = orjson.loads(payload)
    assert doc["visitor_id"] == VID
    assert doc["decisions"]["home-hero"]["fallback"] == "overloaded"
    assert doc["decisions"]["home-hero"]["variant_id"] == "hero-welcome"
    for header in (
        b"cache-control: no-store",
        b"x-request-id: r-1",
        b"access-control-allow-origin: https://shop.example",
        b"x-content-type-options: nosniff",
    ):
        assert header in headers.lower(), headers
    assert browser_naming[0] == 403, "a browser may not name a visitor, shedding or not"
    assert wrong_key[0] == 401
    assert twice[0] == 400
    assert browser[0] == 200 and "visitor_id" not in orjson.loads(browser[2])
    assert b"set-cookie" not in browser[1].lower()
    sheds = await metric(client, 'persona_overload_shed_total{endpoint="decide"}')
    assert sheds == 2
    counted = await metric(
        client, 'persona_http_request_duration_seconds_count{endpoint="/v1/decide"}'
    )
    assert counted >= 5


async def test_the_lane_takes_only_whole_plain_decide_requests(
    app_client: Any, make_settings: Any
) -> None:
    client = await app_client(make_settings(overload_lag_ms=20.0))
    lane = client.server.app[LANE]
    body = b'{"placements": ["home-hero"]}'

    def request(line: str = "POST /v1/decide HTTP/1.1", extra: str = "", cut: int = 0) -> bytes:
        data = f"{line}\r\nHost: x\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode()
        data += body
        return data[: len(data) - cut]

    whole = lane.answer(request())
    assert whole is not None and whole.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (
        orjson.loads(whole.split(b"\r\n\r\n", 1)[1])["decisions"]["home-hero"]["fallback"]
        == "overloaded"
    )
    for refused in (
        request(cut=3),  # the body is still on its way
        request(cut=len(body) + 4),  # so are the headers' end
        request("GET /v1/decide?placement=home-hero HTTP/1.1"),
        request("POST /v1/events HTTP/1.1"),
        request("POST /v1/decide HTTP/1.0"),
        request(extra="Connection: close\r\n"),
        request(extra="Content-Encoding: gzip\r\n"),
        request(extra="Transfer-Encoding: chunked\r\n"),
        request(extra="Authorization: Bearer wrong\r\n"),
        request() + request(),  # pipelined
    ):
        assert lane.answer(refused) is None, refused


async def test_the_connection_uses_the_lane_only_while_shedding(
    app_client: Any, make_settings: Any
) -> None:
    client = await app_client(make_settings(overload_lag_ms=20.0))
    lane = client.server.app[LANE]
    answered: list[bool] = []
    real = lane.answer

    def counting(data: bytes) -> bytes | None:
        out = real(data)
        answered.append(out is not None)
        return out

    lane.answer = counting
    body = orjson.dumps({"placements": ["home-hero"]})
    assert (await raw_decide(client, body, {}))[0] == 200
    assert answered == [], "not consulted while the loop is on time"
    async with lagging_loop():
        status, _, payload = await raw_decide(client, body, {})
    assert status == 200 and orjson.loads(payload)["decisions"]["home-hero"]["fallback"] == (
        "overloaded"
    )
    assert answered == [True]
