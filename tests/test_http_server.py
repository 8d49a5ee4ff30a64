"""Connection rules of the HTTP server: read timeouts, what is measured, headers, a taken port."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.settings import REPO_DIR

HERO = b'{"placements": ["home-hero"]}'


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if it kept the connection open."""
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:
        return None


async def answer_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """The first bytes of the server's answer, or None when none came in time."""
    try:
        return await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return None


@pytest.fixture
async def timed(app_client: Any, make_settings: Any) -> Any:
    settings = make_settings(
        http_header_timeout_s=0.3, http_body_timeout_s=0.3, http_idle_timeout_s=1.5
    )
    return await app_client(settings)


async def test_headers_that_trickle_in_are_cut_off(timed: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", timed.server.port)
    writer.write(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    assert await closed_within(reader, 1.0) == b""  # closed, nothing answered
    writer.close()


async def test_an_idle_connection_lasts_until_the_idle_timeout(timed: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", timed.server.port)
    assert await closed_within(reader, 0.6) is None  # longer than the header timeout
    assert await closed_within(reader, 1.5) == b""  # the idle timeout ends it
    writer.close()


async def test_a_body_that_does_not_arrive_is_a_408(timed: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", timed.server.port)
    writer.write(
        b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Persona-Consent: personalization\r\nContent-Length: 100\r\n\r\n" + HERO[:10]
    )
    await writer.drain()
    answer = await answer_within(reader, 2.0)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer and b"Connection: close" in answer
    assert await closed_within(reader, 3.0) == b""  # and the connection ends
    writer.close()


async def test_the_latency_histogram_measures_the_service_not_the_upload(
    app_client: Any, make_settings: Any
) -> None:
    client = await app_client(make_settings(http_body_timeout_s=5.0))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(HERO) + HERO[:5]
    )
    await writer.drain()
    await asyncio.sleep(1.0)  # a slow upload: the client's time, not the service's
    writer.write(HERO[5:])
    await writer.drain()
    answer = await answer_within(reader, 5.0)
    assert answer is not None and answer.startswith(b"HTTP/1.1 200"), answer
    writer.close()
    text = await (await client.get("/metrics")).text()
    total = next(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('persona_http_request_duration_seconds_sum{endpoint="/v1/decide"}')
    )
    assert total < 0.5, total


async def test_pages_carry_security_headers_and_nothing_names_the_software(client: Any) -> None:
    for path in ("/admin", "/demo"):
        resp = await client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Frame-Options"] == "DENY"
    for path in ("/v1/decide", "/nowhere", "/static/admin.js", "/metrics"):
        resp = await client.get(path)
        assert resp.headers["Server"] == "persona", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path


async def test_a_rejected_request_is_one_short_log_line(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(b"GET /v1/decide HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
    await writer.drain()
    answer = await answer_within(reader, 5.0)
    writer.close()
    assert answer is not None and b" 400 " in answer.split(b"\r\n")[0]
    assert b"Server: persona" in answer
    assert b"aiohttp" not in answer
    resp = await client.post("/v1/decide", data=b"{nope")
    assert resp.status == 400
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.name for r in records] == ["persona.rejected", "persona.rejected"], [
        r.getMessage() for r in records
    ]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert records[1].getMessage() == "POST /v1/decide -> 400 invalid_json"


@pytest.mark.parametrize(("uvloop", "workers"), [("true", 1), ("false", 1), ("true", 2)])
def test_a_taken_port_stops_the_service_with_a_clear_error(
    service_env: dict[str, str], tmp_path: Path, uvloop: str, workers: int
) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    env = {
        **service_env,
        "PERSONA_PORT": str(port),
        "PERSONA_UVLOOP": uvloop,
        "PERSONA_WORKERS": str(workers),
        "PERSONA_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "service"],
            cwd=REPO_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "is serving" not in done.stdout
