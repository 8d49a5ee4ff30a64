"""The service as a real process: starting it on a private Redis, waiting for it, its children."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from service.admin.tokens import TokenStore
from service.local_redis import LocalRedis
from service.settings import REPO_DIR
from service.store.address import redis_client_for
from tests.conftest import API_KEY, SECRET


@dataclass(frozen=True)
class Served:
    """Where the service listens, and an admin token for it."""

    port: int
    token: str
    redis_url: str


@contextlib.contextmanager
def served(
    env: dict[str, str], tmp_path: Path, scopes: list[str], workers: int = 1
) -> Iterator[Served]:
    """Start ``python -m service`` (``workers`` processes) and create a token with ``scopes``."""
    redis = LocalRedis(tmp_path / "redis", appendonly=False)
    redis.start()
    port = int(env["PERSONA_PORT"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--workers", str(workers)],
        cwd=REPO_DIR,
        env={
            **env,
            "PERSONA_REDIS_URL": redis.url,
            "PERSONA_COOKIE_SECRETS": SECRET,
            "PERSONA_API_KEYS": API_KEY,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, proc)

        async def make_token() -> str:
            client = redis_client_for(redis.url, timeout_s=10)
            value = await TokenStore(client).create("e2e", scopes)
            await client.aclose()
            return value

        # in a thread of its own: the caller may run an event loop (Playwright's sync API does)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            token = pool.submit(lambda: asyncio.run(make_token())).result()
        yield Served(port, token, redis.url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        redis.stop()


@dataclass
class Running:
    """A service process started by :func:`running`, its private Redis and its log."""

    proc: subprocess.Popen[bytes]
    port: int
    redis: LocalRedis
    log: Path

    @property
    def redis_url(self) -> str:
        """The private Redis' URL."""
        return self.redis.url


@contextlib.contextmanager
def running(
    env: dict[str, str], tmp_path: Path, workers: int = 1, **extra: str
) -> Iterator[Running]:
    """``python -m service`` on a private Redis, its output in ``tmp_path / "service.log"``;
    ``extra``: more environment variables. Stopped with SIGTERM unless it already exited."""
    redis = LocalRedis(tmp_path / "redis", appendonly=False)
    redis.start()
    port = int(env["PERSONA_PORT"])
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "--workers", str(workers)],
            cwd=REPO_DIR,
            env={
                **env,
                "PERSONA_REDIS_URL": redis.url,
                "PERSONA_COOKIE_SECRETS": SECRET,
                "PERSONA_API_KEYS": API_KEY,
                **extra,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(port, proc)
        yield Running(proc, port, redis, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        redis.stop()


def wait_ready(
    port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                body: dict[str, object] = orjson.loads(r.read())
                return body
        except OSError:
            time.sleep(0.1)
    raise AssertionError("service did not become ready")


def post_decide(port: int) -> dict[str, object]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/decide", data=b'{"placements": ["home-hero"]}', method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        body: dict[str, object] = orjson.loads(r.read())
        return body


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
