"""Shared fixtures: a real redis-server on a free port, settings, the app."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.sync_api import Browser, sync_playwright
from prometheus_client import CollectorRegistry

from loadtests.browser import CHROMIUM, FLAGS
from service.app import create_app
from service.http.server import Runner
from service.keys import SETTINGS
from service.local_redis import LocalRedis, free_port
from service.settings import REPO_DIR, Settings

if TYPE_CHECKING:
    from tests.sdk_pages import Site
    from tests.served import Served

SECRET = "test-secret-" + "x" * 32
SITE_SECRET = "site-secret-" + "s" * 32
API_KEY = "api-key-" + "a" * 32
SERVER = {"Authorization": f"Bearer {API_KEY}"}
"""Headers of a call from the site's server (it may name visitors)."""
CACHE_DIR = Path(os.environ.get("PERSONA_TEST_CACHE", REPO_DIR / ".persona" / "cache"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """One private redis-server for the session (never the machine's shared one)."""
    server = LocalRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: LocalRedis) -> Iterator[str]:
    """The session server's URL, flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def make_settings(redis_url: str) -> Callable[..., Settings]:
    """Settings for tests: the test Redis, a fixed secret, the shared compile cache."""

    def make(**overrides: Any) -> Settings:
        base = Settings(
            redis_url=redis_url,
            cookie_secrets=(SECRET,),
            customer_id_key="customer-key-" + "k" * 32,
            site_secrets=(SITE_SECRET,),
            api_keys=(API_KEY,),
            cache_dir=CACHE_DIR,
            decide_deadline_ms=50.0,
            redis_timeout_ms=25.0,
            # tests send bursts from one address; the limits have tests of their own
            rate_decide_client_per_s=0.0,
            rate_decide_visitor_per_s=0.0,
            rate_events_client_per_s=0.0,
            rate_events_visitor_per_s=0.0,
            rate_admin_failures_per_min=0.0,
            overload_lag_ms=10_000.0,
        )
        return dataclasses.replace(base, **overrides)

    return make


AppClientFactory = Callable[..., Any]


class PersonaTestServer(TestServer):
    """The app behind the service's own runner (its connection rules and error answers)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        settings = self.app[SETTINGS]
        kwargs["access_log"] = None  # as the service runs
        return Runner(
            self.app,
            header_timeout_s=settings.http_header_timeout_s,
            keepalive_timeout=settings.http_idle_timeout_s,
            **kwargs,
        )


@pytest.fixture
def app_client(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> Callable[..., Any]:
    """Build the real app with overrides and return a test client for it."""

    async def make(
        settings: Settings | None = None,
        consent: str | None = "personalization,analytics",
        server: bool = False,
        **kwargs: Any,
    ) -> TestClient[Any, Any]:
        """``server=True``: every call carries the site's API key (it may name visitors)."""
        app: web.Application = create_app(
            settings or make_settings(), registry=CollectorRegistry(), **kwargs
        )
        headers = {"X-Persona-Consent": consent} if consent is not None else {}
        if server:
            headers.update(SERVER)
        client: TestClient[Any, Any] = await aiohttp_client(PersonaTestServer(app), headers=headers)
        return client

    return make


@pytest.fixture
async def client(app_client: Callable[..., Any]) -> AsyncIterator[TestClient[Any, Any]]:
    """A browser's client of the app with default test settings."""
    yield await app_client()


@pytest.fixture
async def server_client(app_client: Callable[..., Any]) -> AsyncIterator[TestClient[Any, Any]]:
    """The site's server as a client of the app (its calls carry the API key)."""
    yield await app_client(server=True)


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the test Redis, closed after the test."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def process_env(folder: Path) -> dict[str, str]:
    """The environment of a service started as a process: a private data folder and port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    env.update(
        PERSONA_DATA_DIR=str(folder / "data"),
        PERSONA_CACHE_DIR=str(CACHE_DIR),
        PERSONA_PORT=str(free_port()),
        # these tests send bursts from one address; the limits have tests of their own
        PERSONA_RATE_DECIDE_CLIENT_PER_S="0",
        PERSONA_RATE_EVENTS_CLIENT_PER_S="0",
        # a busy test VM stalls for tens of ms; shedding has tests of its own
        PERSONA_OVERLOAD_LAG_MS="10000",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@pytest.fixture
def service_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a service started as a process (see :func:`process_env`)."""
    yield process_env(tmp_path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium for a module's browser tests (Playwright; no browser download)."""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def site(browser: Browser, service: Served) -> Iterator[Site]:
    """A tab on test pages of the module's ``service``; fails on any page error."""
    from tests.sdk_pages import Site

    s = Site(browser, service)
    yield s
    assert not s.errors, s.errors
    s.close()
