"""Running the app: one process, or N worker processes sharing the port."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import queue
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiohttp import web

from service import logs
from service.app import create_app
from service.http.server import Runner, listen
from service.keys import METRICS
from service.ratelimit import Lock, RateTable
from service.settings import Settings

READY_TIMEOUT_S = 300.0
SHUTDOWN_MARGIN_S = 5.0
"""What a worker gets beyond the shutdown timeout to flush and close before it is killed."""

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
    sock: socket.socket | None = None,
    rate_table: RateTable | None = None,
    on_listening: Callable[[], None] | None = None,
    metrics_dir: Path | None = None,
    restart_reason: str | None = None,
) -> None:
    """Serve ``create_app(settings)`` on ``sock`` (or a socket of its own) until SIGTERM/SIGINT.

    Then it stops gracefully: it stops accepting (other workers on a shared
    socket take the new connections), closes idle keep-alive connections,
    lets requests in flight finish for at most ``PERSONA_SHUTDOWN_TIMEOUT_S``
    (their answers say ``Connection: close``), then flushes the decision log
    and the tallied metrics and closes its Redis connections.

    Raises :class:`PortUnavailable` before anything starts when the port is taken.
    """
    if sock is None:
        sock = listen(settings.host, settings.port, reuse_port=False)
    app = create_app(settings, rate_table=rate_table, metrics_dir=metrics_dir)
    runner = Runner(
        app,
        header_timeout_s=settings.http_header_timeout_s,
        keepalive_timeout=settings.http_idle_timeout_s,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout_s,
    )
    await runner.setup()
    if restart_reason is not None:
        app[METRICS].worker_restarts.labels(restart_reason).inc()
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
    started = time.monotonic()
    log.info(
        "stopping: finishing the requests in flight (at most %.1f s)", settings.shutdown_timeout_s
    )
    await runner.cleanup()
    log.info("stopped in %.2f s", time.monotonic() - started)


@dataclass(frozen=True)
class Shared:
    """What the parent gives every worker: the socket, the rate-limit table, a line back."""

    sock: socket.socket
    rate_path: Path
    rate_lock: Lock
    reports: Any  # a multiprocessing queue of (status, worker index, pid)
    metrics_dir: Path


def _worker_main(
    settings: Settings, index: int, shared: Shared, restart_reason: str | None
) -> None:
    logs.configure(settings.log_level, settings.log_format, worker=f"worker{index}")
    table = RateTable.shared(shared.rate_path, shared.rate_lock)

    def ready() -> None:
        shared.reports.put(("ready", index, os.getpid()))

    run_loop(
        lambda: serve_until_signal(
            settings,
            shared.sock,
            table,
            on_listening=ready,
            metrics_dir=shared.metrics_dir,
            restart_reason=restart_reason,
        ),
        settings.uvloop,
    )


def serve_workers(settings: Settings, on_ready: Callable[[], None], metrics_dir: Path) -> int:
    """Run ``settings.workers`` processes on one listening socket, restarting any that crash.

    The parent listens and every worker accepts from that one socket, so a
    worker that stops (a crash, a rolling restart) leaves no connection
    behind: whatever waits in the accept queue goes to the others. SIGHUP
    restarts the workers one by one (each replacement listens before its
    predecessor stops); SIGTERM/SIGINT stops them all gracefully.

    Returns the exit status: 0 after a signal, 2 when the port is taken, 1 when
    the workers keep crashing or do not start.
    """
    sock = listen(settings.host, settings.port, reuse_port=False)
    ctx = multiprocessing.get_context("spawn")
    with sock, tempfile.TemporaryDirectory(prefix="persona-shared-") as folder:
        rate_path = Path(folder) / "ratelimit"
        RateTable.create_file(rate_path)
        shared = Shared(sock, rate_path, ctx.Lock(), ctx.Queue(), metrics_dir)
        return Supervisor(settings, ctx, shared).run(on_ready)


class Supervisor:
    """Starts the workers, restarts crashed ones, rolls them on SIGHUP, stops them on SIGTERM."""

    def __init__(self, settings: Settings, ctx: Any, shared: Shared) -> None:
        self.settings = settings
        self.ctx = ctx
        self.shared = shared
        self.workers: dict[int, BaseProcess] = {}
        self.stopping = False
        self.rolling = False
        self.ready: set[int] = set()  # pids that said they listen

    def start(self, index: int, reason: str | None) -> BaseProcess:
        """Start worker ``index`` (``reason``: why it is started again, or ``None``)."""
        proc: BaseProcess = self.ctx.Process(
            target=_worker_main, args=(self.settings, index, self.shared, reason), daemon=False
        )
        proc.start()
        return proc

    def run(self, on_ready: Callable[[], None]) -> int:
        """Supervise until a signal; the exit status."""

        def stop(signum: int, frame: object) -> None:
            self.stopping = True

        def roll(signum: int, frame: object) -> None:
            self.rolling = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, roll)
        for i in range(self.settings.workers):
            self.workers[i] = self.start(i, None)
        status = 0
        if all(self.wait_ready(p) for p in self.workers.values()):
            on_ready()
        elif not self.stopping:  # a worker died or never listened (a signal is no failure)
            log.error("the workers did not all start listening")
            self.stopping, status = True, 1
        restarts: list[float] = []
        while not self.stopping:
            time.sleep(0.2)
            self.read_reports()
            if self.rolling:
                self.rolling = False
                self.roll()
            for index, proc in list(self.workers.items()):
                if proc.is_alive() or self.stopping:
                    continue
                _mark_dead(proc.pid, self.shared.metrics_dir)
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > 5 * self.settings.workers:
                    log.error("workers keep crashing; giving up")
                    self.stopping, status = True, 1
                    break
                log.warning("worker %d exited with %s; restarting", index, proc.exitcode)
                self.workers[index] = self.start(index, "crashed")
        self.stop_all()
        return status

    def roll(self) -> None:
        """Replace every worker in turn: the new one listens before the old one stops."""
        log.info("rolling restart of %d worker(s)", len(self.workers))
        for index in sorted(self.workers):
            if self.stopping:
                return
            old = self.workers[index]
            new = self.start(index, "rolling")
            if not self.wait_ready(new):
                log.error("worker %d's replacement did not start; keeping the old one", index)
                if new.is_alive() and new.pid:
                    os.kill(new.pid, signal.SIGKILL)
                new.join(5)
                _mark_dead(new.pid, self.shared.metrics_dir)
                continue
            self.workers[index] = new
            self.stop_one(old)
        log.info("rolling restart done")

    def wait_ready(self, proc: BaseProcess) -> bool:
        """Wait until ``proc`` listens (``False`` if it exits or takes too long)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while proc.pid not in self.ready:
            if not proc.is_alive() or time.monotonic() > deadline or self.stopping:
                return False
            self.read_reports(0.2)
        return True

    def read_reports(self, wait_s: float = 0.0) -> None:
        """Take the workers' "ready" reports (waiting up to ``wait_s`` for the first)."""
        reports = self.shared.reports
        while True:
            try:
                _, _, pid = reports.get(timeout=wait_s) if wait_s > 0 else reports.get_nowait()
            except queue.Empty:
                return
            self.ready.add(pid)
            wait_s = 0.0

    def stop_one(self, proc: BaseProcess) -> None:
        """SIGTERM, a bounded wait for its graceful shutdown, then SIGKILL."""
        if proc.is_alive() and proc.pid:
            os.kill(proc.pid, signal.SIGTERM)
        proc.join(self.settings.shutdown_timeout_s + SHUTDOWN_MARGIN_S)
        if proc.is_alive():
            log.error("worker pid %s did not stop in time; killing it", proc.pid)
            proc.kill()
            proc.join(5)
        _mark_dead(proc.pid, self.shared.metrics_dir)
        self.ready.discard(proc.pid)

    def stop_all(self) -> None:
        """Stop every worker gracefully, at once."""
        for proc in self.workers.values():
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.workers.values():
            self.stop_one(proc)


def _mark_dead(pid: int | None, metrics_dir: Path) -> None:
    from prometheus_client import multiprocess

    if pid is not None:
        multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]
