"""Running the app: one process, or N worker processes sharing the port."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Coroutine
from multiprocessing.process import BaseProcess
from typing import Any

from aiohttp import web

from service.app import create_app
from service.settings import Settings

log = logging.getLogger(__name__)


def run_loop(main: Callable[[], Coroutine[Any, Any, None]], use_uvloop: bool) -> None:
    """Run ``main`` on uvloop when available and wanted, else on asyncio's loop."""
    factory = None
    if use_uvloop:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            log.info("uvloop not installed; using the default event loop")
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


async def serve_until_signal(settings: Settings, reuse_port: bool) -> None:
    """Serve ``create_app(settings)`` until SIGTERM or SIGINT."""
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port, backlog=2048)
    await site.start()
    # Everything loaded so far (model, catalog, libraries) lives as long as the
    # process: keep it out of the collector's scans, which otherwise walk it on
    # every full collection while requests wait.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def _worker_main(settings: Settings, index: int) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s worker{index} %(levelname)s %(name)s: %(message)s",
    )
    run_loop(lambda: serve_until_signal(settings, reuse_port=True), settings.uvloop)


def serve_workers(settings: Settings, on_ready: Callable[[], None]) -> None:
    """Run ``settings.workers`` processes on one port, restarting any that crash."""
    ctx = multiprocessing.get_context("spawn")
    workers: dict[int, BaseProcess] = {}
    stopping = False

    def start(index: int) -> None:
        proc = ctx.Process(target=_worker_main, args=(settings, index), daemon=False)
        proc.start()
        workers[index] = proc

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(settings.workers):
        start(i)
    on_ready()
    restarts: list[float] = []
    while not stopping:
        time.sleep(0.2)
        for index, proc in list(workers.items()):
            if proc.is_alive() or stopping:
                continue
            _mark_dead(proc.pid)
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 5 * settings.workers:
                log.error("workers keep crashing; giving up")
                stopping = True
                break
            log.warning("worker %d exited with %s; restarting", index, proc.exitcode)
            start(index)
    for proc in workers.values():
        if proc.is_alive() and proc.pid:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in workers.values():
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def _mark_dead(pid: int | None) -> None:
    from prometheus_client import multiprocess

    if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
