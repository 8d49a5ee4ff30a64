"""Running the app: one process, or N worker processes sharing the port."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import queue
import signal
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiohttp import web

from service.app import create_app
from service.http.server import (
    PortUnavailable,
    Runner,
    check_port_free,
    listen,
)
from service.ratelimit import Lock, RateTable
from service.settings import Settings

READY_TIMEOUT_S = 300.0
WORKER_CANNOT_LISTEN = 3

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


async def serve_until_signal(
    settings: Settings,
    reuse_port: bool,
    rate_table: RateTable | None = None,
    on_listening: Callable[[], None] | None = None,
    metrics_dir: Path | None = None,
) -> None:
    """Serve ``create_app(settings)`` until SIGTERM or SIGINT.

    Raises :class:`PortUnavailable` before anything starts when the port is taken.
    """
    sock = listen(settings.host, settings.port, reuse_port)
    app = create_app(settings, rate_table=rate_table, metrics_dir=metrics_dir)
    runner = Runner(
        app,
        header_timeout_s=settings.http_header_timeout_s,
        keepalive_timeout=settings.http_idle_timeout_s,
        access_log=None,
        handle_signals=False,
    )
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    if on_listening is not None:
        on_listening()
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


@dataclass(frozen=True)
class Shared:
    """What the parent gives every worker: the rate-limit table and a line back."""

    rate_path: Path
    rate_lock: Lock
    reports: Any  # a multiprocessing queue of (status, worker index, message)
    metrics_dir: Path


def _worker_main(settings: Settings, index: int, shared: Shared) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s worker{index} %(levelname)s %(name)s: %(message)s",
    )
    table = RateTable.shared(shared.rate_path, shared.rate_lock)

    def ready() -> None:
        shared.reports.put(("ready", index, ""))

    try:
        run_loop(
            lambda: serve_until_signal(
                settings, True, table, on_listening=ready, metrics_dir=shared.metrics_dir
            ),
            settings.uvloop,
        )
    except PortUnavailable as exc:
        shared.reports.put(("failed", index, str(exc)))
        raise SystemExit(WORKER_CANNOT_LISTEN) from None


def serve_workers(settings: Settings, on_ready: Callable[[], None], metrics_dir: Path) -> int:
    """Run ``settings.workers`` processes on one port, restarting any that crash.

    Returns the exit status: 0 after a signal, 2 when the workers could not
    start listening (the reason is logged), 1 when they keep crashing.
    """
    check_port_free(settings.host, settings.port)
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="persona-shared-") as folder:
        rate_path = Path(folder) / "ratelimit"
        RateTable.create_file(rate_path)
        shared = Shared(rate_path, ctx.Lock(), ctx.Queue(), metrics_dir)
        return _supervise(settings, ctx, shared, on_ready)


def _supervise(settings: Settings, ctx: Any, shared: Shared, on_ready: Callable[[], None]) -> int:
    workers: dict[int, BaseProcess] = {}
    stopping = False

    def start(index: int) -> None:
        proc = ctx.Process(target=_worker_main, args=(settings, index, shared), daemon=False)
        proc.start()
        workers[index] = proc

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(settings.workers):
        start(i)
    status = _await_ready(settings.workers, shared, lambda: stopping)
    if status == 0:
        on_ready()
    else:
        stopping = True
    restarts: list[float] = []
    while not stopping:
        time.sleep(0.2)
        _drain(shared)
        for index, proc in list(workers.items()):
            if proc.is_alive() or stopping:
                continue
            _mark_dead(proc.pid, shared.metrics_dir)
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 5 * settings.workers:
                log.error("workers keep crashing; giving up")
                stopping, status = True, 1
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
    return status


def _await_ready(count: int, shared: Shared, stopping: Callable[[], bool]) -> int:
    """Wait until ``count`` workers listen: 0, or 2 when one cannot."""
    ready: set[int] = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(ready) < count and not stopping():
        try:
            status, index, message = shared.reports.get(timeout=0.2)
        except queue.Empty:
            if time.monotonic() > deadline:
                log.error("workers did not start listening within %.0f s", READY_TIMEOUT_S)
                return 2
            continue
        if status == "failed":
            log.error("worker %d cannot listen: %s", index, message)
            return 2
        ready.add(index)
    return 0


def _drain(shared: Shared) -> None:
    """Read the reports of restarted workers (a failed restart is logged)."""
    while True:
        try:
            status, index, message = shared.reports.get_nowait()
        except queue.Empty:
            return
        if status == "failed":
            log.error("worker %d cannot listen: %s", index, message)


def _mark_dead(pid: int | None, metrics_dir: Path) -> None:
    from prometheus_client import multiprocess

    if pid is not None:
        multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]
