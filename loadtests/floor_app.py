"""The floor: a trivial aiohttp handler (uvloop, orjson body), measured beside Persona."""

from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import web

BODY = orjson.dumps({"decisions": {"home-hero": {"variant_id": "hero-welcome"}}})


async def handle(request: web.Request) -> web.Response:
    """Read the body, answer a fixed JSON document."""
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    """Serve on --port until killed."""
    parser = argparse.ArgumentParser(description="Trivial aiohttp app (the latency floor).")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/decide", handle)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(app, args.port))


async def _serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
