"""The service as a real process on a private Redis, with an admin token (for end-to-end tests)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from service.admin.tokens import TokenStore
from service.local_redis import LocalRedis
from service.settings import REPO_DIR
from service.store.address import redis_client_for
from tests.conftest import API_KEY, SECRET
from tests.test_cli_and_processes import wait_ready


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

        yield Served(port, asyncio.run(make_token()), redis.url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        redis.stop()
