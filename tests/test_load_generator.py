"""The benchmark's open-loop generator: it must not hide stalls, and must spread its connections."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from loadtests.generator import http_request, run_sync
from service.local_redis import free_port


@dataclass
class Server:
    """A tiny aiohttp server in a thread that notes each request's connection."""

    port: int
    peers: list[int] = field(default_factory=list)
    stall_on: int = -1
    stall_s: float = 0.0


def _block(seconds: float) -> None:
    time.sleep(seconds)  # blocks the server's loop on purpose: a stalled server


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(free_port())
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        state.peers.append(peer[1] if peer else -1)
        if len(state.peers) - 1 == state.stall_on:
            _block(state.stall_s)
        return web.json_response({"ok": True})

    async def main() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/x", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", state.port).start()
        return runner

    runner = loop.run_until_complete(main())
    thread = threading.Thread(target=lambda: (ready.set(), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait()
    yield state
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def _request(rng: random.Random) -> bytes:
    return http_request("POST", "/x", b"{}")


def test_a_server_stall_counts_against_every_request_scheduled_during_it(server: Server) -> None:
    server.stall_on, server.stall_s = 50, 0.2
    result = run_sync("127.0.0.1", server.port, _request, rate=500, duration_s=1.0)
    assert result.errors == 0 and len(result.latencies) == 500
    # ~100 requests were due while the server was stalled: each is timed from when it
    # was meant to leave, so they show the wait (a closed-loop tool would show one slow one)
    assert sum(1 for s in result.latencies if s > 0.05) >= 60
    assert max(result.latencies) >= 0.15


def test_connections_are_used_in_turn(server: Server) -> None:
    result = run_sync("127.0.0.1", server.port, _request, rate=200, duration_s=1.0)
    assert result.errors == 0
    # at this rate one connection could carry everything; used in turn, all 32 carry some
    assert len(set(server.peers)) == 32
