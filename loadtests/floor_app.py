"""The floor: a trivial aiohttp app on uvloop, served exactly like the service.

``POST /v1/decide`` reads the body and answers a small orjson document;
``GET /healthz`` answers ``{"status": "ok"}``. No middleware, no Redis, no
model: whatever the service costs above this, the service adds. Served with
the same ``AppRunner``/``TCPSite`` setup (access log off, backlog 2048).

Usage::

    python -m loadtests.floor_app --port 8090 [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
import sys
from collections.abc import Sequence

import orjson
import uvloop
from aiohttp import web

_ANSWER = {
    "visitor_id": "floor",
    "decisions": {"home-hero": {"variant_id": "hero-welcome", "policy": "floor", "fallback": None}},
}


async def decide(request: web.Request) -> web.Response:
    """Read the body, answer a fixed decision."""
    await request.read()
    return web.Response(body=orjson.dumps(_ANSWER), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    """Liveness."""
    return web.Response(body=orjson.dumps({"status": "ok"}), content_type="application/json")


def create_app() -> web.Application:
    """The floor app."""
    app = web.Application()
    app.router.add_post("/v1/decide", decide)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    return app


async def serve(host: str, port: int, reuse_port: bool) -> None:
    """Serve until SIGTERM or SIGINT."""
    runner = web.AppRunner(create_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=2048)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def _worker(host: str, port: int) -> None:
    uvloop.run(serve(host, port, reuse_port=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m loadtests.floor_app", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    if args.workers <= 1:
        uvloop.run(serve(args.host, args.port, reuse_port=False))
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(args.host, args.port)) for _ in range(args.workers)]
    for proc in procs:
        proc.start()
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for proc in procs:
        proc.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
