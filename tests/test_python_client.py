"""persona_client against the real service (the app, a real Redis, the bundled model).

The sync client runs in a thread: the service runs in this test's event loop.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry

import persona_client
from persona_client import (
    AsyncPersonaClient,
    Decision,
    Decisions,
    EventResult,
    PersonaClient,
    conversion,
    cookie_visitor_id,
    identify,
    impressions,
    login_token,
    view,
)
from service.app import create_app
from service.features.profile import decode_profile
from service.local_redis import LocalRedis, free_port
from service.settings import REPO_DIR
from service.store.keyspace import PARTITIONS, log_key, profile_key
from tests.conftest import API_KEY, SITE_SECRET, PersonaTestServer
from tests.helpers import (
    PATIENT,
    catalog_without_randomness,
    doc_snippet,
    fan_profile,
    store_profile,
)

VID = "client-visitor-0000000001"
GRANTED = "personalization,analytics"
HERO_RUNNING = "Find your next running shoe"
SLOTS = ["home-hero", "sidebar-offer"]


@dataclass
class Live:
    """The real service on a real port, and what it saw."""

    url: str
    http: TestClient[Any, Any]
    ports: list[int]
    """The client-side port of every /v1 call, as it arrived."""
    transports: list[Any]


@pytest.fixture
def serve(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Any]
) -> Callable[..., Awaitable[Live]]:
    """Start the real app (patient deadlines unless overridden) on a listening socket."""

    async def start(**overrides: Any) -> Live:
        app = create_app(make_settings(**{**PATIENT, **overrides}), registry=CollectorRegistry())
        ports: list[int] = []
        transports: list[Any] = []

        @web.middleware
        async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/v1/") and request.transport is not None:
                ports.append(request.transport.get_extra_info("peername")[1])
                transports.append(request.transport)
            return await handler(request)

        app.middlewares.insert(0, note)
        http: TestClient[Any, Any] = await aiohttp_client(PersonaTestServer(app))
        return Live(f"http://{http.server.host}:{http.server.port}", http, ports, transports)

    return start


class Either:
    """The sync or the async client behind one awaitable face."""

    def __init__(self, kind: str, url: str, **kw: Any) -> None:
        api_key = kw.pop("api_key", API_KEY)
        self.kind = kind
        self.sync = PersonaClient(url, api_key, **kw) if kind == "sync" else None
        self.aio = AsyncPersonaClient(url, api_key, **kw) if kind == "async" else None

    async def decide(self, *args: Any, **kw: Any) -> Decisions:
        if self.sync is not None:
            return await asyncio.to_thread(self.sync.decide, *args, **kw)
        assert self.aio is not None
        return await self.aio.decide(*args, **kw)

    async def send_events(self, *args: Any, **kw: Any) -> EventResult:
        if self.sync is not None:
            return await asyncio.to_thread(self.sync.send_events, *args, **kw)
        assert self.aio is not None
        return await self.aio.send_events(*args, **kw)

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.aio is not None:
            await self.aio.aclose()


@pytest.fixture(params=["sync", "async"])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Either]]:
    """Make clients of one kind (both kinds in turn); closed after the test."""
    made: list[Either] = []

    def make(url: str, **kw: Any) -> Either:
        made.append(Either(request.param, url, **{"timeout_s": 5.0, **kw}))
        return made[-1]

    yield make
    for client in made:
        await client.close()


def running_fan(redis_url: str, tmp_path: Path) -> Path:
    """Store a running fan as ``VID``; the catalog without exploration or holdout."""
    store_profile(redis_url, VID, fan_profile("running"))
    return catalog_without_randomness(tmp_path)


def stored_profile(redis_url: str, visitor_id: str = VID) -> dict[str, Any] | None:
    r: Any = redis.Redis.from_url(redis_url)
    raw = r.get(profile_key(visitor_id))
    r.close()
    return decode_profile(raw) if raw is not None else None


def logged_event_ids(redis_url: str, kind: str) -> list[str]:
    r: Any = redis.Redis.from_url(redis_url)
    ids = []
    for p in range(PARTITIONS):
        for _, fields in r.xrange(log_key(p)):
            event = orjson.loads(fields[b"e"])
            if event["type"] == kind:
                ids.append(event["event_id"])
    r.close()
    return ids


# ---- decisions -------------------------------------------------------------


async def test_decide_returns_the_models_typed_decisions(
    serve: Any, connect: Any, redis_url: str, tmp_path: Path
) -> None:
    live = await serve(catalog_path=running_fan(redis_url, tmp_path))
    client = connect(live.url)
    decisions = await client.decide(
        SLOTS, visitor_id=VID, consent=GRANTED, context={"page_type": "home"}
    )
    assert isinstance(decisions, Decisions) and list(decisions) == SLOTS
    assert decisions.visitor_id == VID
    hero = decisions["home-hero"]
    assert isinstance(hero, Decision)
    assert (hero.slot, hero.variant_id, hero.policy, hero.fallback) == (
        "home-hero",
        "hero-running",
        "model",
        None,
    )
    assert hero.content["title"] == HERO_RUNNING
    assert re.fullmatch(r"[0-9a-f]{27}", hero.decision_id or "")
    assert (hero.model_version or "").startswith("default-")
    assert decisions["sidebar-offer"].fallback is None and decisions["sidebar-offer"].content
    with pytest.raises(dataclasses.FrozenInstanceError):
        hero.variant_id = "other"  # type: ignore[misc]


async def test_a_call_without_consent_sends_no_header_and_withdraws_nothing(
    serve: Any, connect: Any, redis_url: str, tmp_path: Path
) -> None:
    live = await serve(catalog_path=running_fan(redis_url, tmp_path))
    client = connect(live.url)
    decisions = await client.decide(["home-hero"], visitor_id=VID)
    # the service's default (denied) applied: nothing read for the visitor, nothing deleted
    assert decisions.visitor_id is None and decisions["home-hero"].fallback is None
    assert stored_profile(redis_url) is not None
    # an explicit refusal reaches the service as given, and withdraws
    await client.decide(["home-hero"], visitor_id=VID, consent="none")
    assert stored_profile(redis_url) is None


async def test_customer_and_minted_visitors(serve: Any, connect: Any) -> None:
    live = await serve()
    client = connect(live.url)
    customer = await client.decide(["home-hero"], customer_id="4711", consent="all")
    assert (customer.visitor_id or "").startswith("cust-")
    # no id named: the service mints one per call, and the client keeps no cookie between
    # calls (by a host name: aiohttp's default jar would keep one, though not for an address)
    by_name = connect(live.url.replace("127.0.0.1", "localhost"))
    first = await by_name.decide(["home-hero"], consent="all")
    second = await by_name.decide(["home-hero"], consent="all")
    assert first.visitor_id and second.visitor_id and first.visitor_id != second.visitor_id


async def test_arguments_no_call_could_succeed_with_raise(connect: Any) -> None:
    client = connect(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="not both"):
        await client.decide(["home-hero"], visitor_id=VID, customer_id="4711")
    with pytest.raises(ValueError, match="X-Persona-Consent"):
        await client.decide(["home-hero"], consent="yes")
    with pytest.raises(ValueError, match="at least one"):
        await client.decide([])
    with pytest.raises(TypeError, match="list of slot names"):
        await client.decide("home-hero")
    with pytest.raises(ValueError, match="endpoint"):
        PersonaClient("persona:8080", API_KEY)


async def test_a_slot_the_catalog_lacks_gets_its_default(serve: Any, connect: Any) -> None:
    live = await serve()
    client = connect(live.url, defaults={"no-such-slot": {"title": "client-wide"}})
    decisions = await client.decide(
        {"home-hero": {"title": "Hello"}, "no-such-slot": {"title": "Ours"}, "nor-this": {}},
        visitor_id=VID,
        consent=GRANTED,
    )
    lacking = decisions["no-such-slot"]
    assert (lacking.variant_id, lacking.policy, lacking.fallback) == (
        None,
        "fallback",
        "unknown_placement",
    )
    assert lacking.content == {"title": "Ours"}  # the call's default before the client's
    assert lacking.decision_id is not None and "unknown placement" in (lacking.error or "")
    assert decisions["nor-this"].content == {}
    assert decisions["home-hero"].fallback is None and decisions["home-hero"].variant_id


async def test_a_wrong_api_key_serves_defaults_and_logs_why(
    serve: Any, connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    live = await serve()
    client = connect(live.url, api_key="not-" + API_KEY, defaults={"home-hero": {"t": 1}})
    decisions = await client.decide(["home-hero"], visitor_id=VID, consent=GRANTED)
    hero = decisions["home-hero"]
    assert (hero.fallback, hero.content, hero.decision_id) == ("client_http_401", {"t": 1}, None)
    assert decisions.visitor_id == VID
    assert any("client_http_401" in r.getMessage() for r in caplog.records)


async def test_a_stopped_service_serves_defaults_within_the_timeout(
    serve: Any, connect: Any
) -> None:
    live = await serve()
    client = connect(live.url, timeout_s=0.25, defaults={"home-hero": {"title": "Welcome"}})
    assert (await client.decide(["home-hero"], visitor_id=VID))["home-hero"].fallback is None
    await live.http.close()  # the service stops, closing the connection the client kept
    started = time.monotonic()
    decisions = await client.decide(["home-hero", "sidebar-offer"], visitor_id=VID)
    assert time.monotonic() - started < 0.25 + 1
    assert decisions["home-hero"].content == {"title": "Welcome"}
    assert {d.fallback for d in decisions.values()} == {"client_unavailable"}
    never = connect(f"http://127.0.0.1:{free_port()}", timeout_s=0.25)
    assert (await never.decide(["home-hero"]))["home-hero"].fallback == "client_unavailable"


async def test_a_hung_service_serves_defaults_within_the_timeout(
    serve: Any, connect: Any, tmp_path: Path
) -> None:
    own = LocalRedis(tmp_path / "redis", appendonly=False)
    own.start()
    assert own.process is not None
    try:
        # the service waits up to a second for a frozen Redis; the client does not
        live = await serve(redis_url=own.url, decide_deadline_ms=2000.0, redis_timeout_ms=1000.0)
        client = connect(live.url, timeout_s=0.25, defaults={"home-hero": {"title": "Welcome"}})
        os.kill(own.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        decisions = await client.decide(["home-hero"], visitor_id=VID, consent=GRANTED)
        assert time.monotonic() - started < 0.25 + 1
        hero = decisions["home-hero"]
        assert (hero.fallback, hero.content) == ("client_timeout", {"title": "Welcome"})
    finally:
        os.kill(own.process.pid, signal.SIGCONT)
        own.stop()


def _stub(status: int, body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    return answer


_GOOD = {
    "decision_id": "0" * 27,
    "variant_id": "hero-running",
    "content": {"title": HERO_RUNNING},
    "policy": "model",
    "fallback": None,
    "model_version": "default-x",
}


def _all(reason: str) -> dict[str, str | None]:
    return dict.fromkeys(["home-hero", "sidebar-offer", "article-footer"], reason)


@pytest.mark.parametrize(
    ("status", "body", "reasons"),
    [
        (500, b'{"error": "internal"}', _all("client_http_500")),
        (502, b"<html>Bad Gateway</html>", _all("client_http_502")),
        (200, b"<html>a captive portal</html>", _all("client_bad_answer")),
        (200, b'{"decisions": []}', _all("client_bad_answer")),
        (
            200,
            orjson.dumps({"decisions": {"home-hero": _GOOD, "sidebar-offer": {"policy": 3}}}),
            {
                "home-hero": None,
                "sidebar-offer": "client_bad_answer",
                "article-footer": "client_bad_answer",
            },
        ),
    ],
)
async def test_answers_the_service_never_gives_serve_defaults(
    aiohttp_server: Any, connect: Any, status: int, body: bytes, reasons: dict[str, str | None]
) -> None:
    # a stub, because a valid decide call to the real service is always a 200 with
    # valid decisions; proxies and broken deployments answer like this
    app = web.Application()
    app.router.add_post("/persona/v1/decide", _stub(status, body))
    server = await aiohttp_server(app)
    client = connect(f"http://127.0.0.1:{server.port}/persona/", defaults={"home-hero": {"d": 1}})
    decisions = await client.decide(list(reasons))
    assert {slot: d.fallback for slot, d in decisions.items()} == reasons
    served = {"title": HERO_RUNNING} if reasons["home-hero"] is None else {"d": 1}
    assert decisions["home-hero"].content == served
    assert decisions["article-footer"].content == {}


async def test_an_answer_that_is_not_http_serves_defaults(connect: Any) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    # a stub: the wrong port configured, a non-HTTP server behind it
    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = connect(f"http://127.0.0.1:{port}")
        decisions = await client.decide(["home-hero"])
        assert decisions["home-hero"].fallback == "client_bad_answer"
    finally:
        server.close()
        await server.wait_closed()


# ---- connections -----------------------------------------------------------


async def test_calls_reuse_one_connection(serve: Any, connect: Any) -> None:
    live = await serve()
    client = connect(live.url)
    for _ in range(5):
        decisions = await client.decide(SLOTS, visitor_id=VID, consent=GRANTED)
        assert decisions["home-hero"].fallback is None
    await client.send_events([view(category="running")], visitor_id=VID, consent=GRANTED)
    assert len(live.ports) == 6 and len(set(live.ports)) == 1


async def test_the_sync_client_is_shared_by_threads(serve: Any) -> None:
    live = await serve()
    with PersonaClient(live.url, API_KEY, timeout_s=5.0) as client:

        def worker() -> list[Decisions]:
            return [client.decide(SLOTS, visitor_id=VID, consent=GRANTED) for _ in range(5)]

        results = await asyncio.gather(*(asyncio.to_thread(worker) for _ in range(4)))
    assert all(d["home-hero"].fallback is None for batch in results for d in batch)
    # a connection is opened only while every other one is in use: at most one per thread
    assert len(live.ports) == 20 and len(set(live.ports)) <= 4


async def test_a_connection_the_service_closed_is_replaced(serve: Any, connect: Any) -> None:
    live = await serve(http_idle_timeout_s=0.2)
    client = connect(live.url)
    assert (await client.decide(["home-hero"], visitor_id=VID))["home-hero"].fallback is None
    for _ in range(500):  # the service closes the idle connection after 0.2 s
        if all(t.is_closing() for t in live.transports):
            break
        await asyncio.sleep(0.01)
    assert all(t.is_closing() for t in live.transports)
    assert (await client.decide(["home-hero"], visitor_id=VID))["home-hero"].fallback is None
    assert len(set(live.ports)) == 2


# ---- events ----------------------------------------------------------------


async def test_events_are_batched_stored_and_counted(
    serve: Any, connect: Any, redis_url: str
) -> None:
    live = await serve()
    client = connect(live.url)
    events: list[dict[str, Any]] = [view(category="running", page_type="category")] * 250
    events[150] = {"type": "feedback", "question_id": "relevance", "rating": 9}
    result = await client.send_events(events, visitor_id=VID, consent=GRANTED)
    assert (result.accepted, result.rejected, result.unsent, result.ok) == (249, 1, 0, False)
    assert len(live.ports) == 3  # batches of 100
    assert [v.index for v in result.verdicts] == list(range(250))
    bad = result.verdicts[150]
    assert bad.status == "rejected" and "$.rating" in (bad.reason or "")
    ids = [v.event_id for v in result.verdicts]
    assert len(set(ids)) == 250 and all(re.fullmatch(r"[0-9a-f]{32}", i or "") for i in ids)
    profile = stored_profile(redis_url)
    assert profile is not None and profile["views"] == 249
    assert sorted(logged_event_ids(redis_url, "view")) == sorted(ids[:150] + ids[151:])


async def test_events_without_consent_are_ignored(serve: Any, connect: Any, redis_url: str) -> None:
    live = await serve()
    client = connect(live.url)
    result = await client.send_events([view(category="running")], visitor_id=VID)
    assert (result.ignored, result.ok) == (1, True)
    assert stored_profile(redis_url) is None


async def test_a_503_is_retried_and_the_batch_stored_once(
    serve: Any, connect: Any, tmp_path: Path
) -> None:
    own = LocalRedis(tmp_path / "redis", appendonly=False)
    own.start()
    assert own.process is not None
    try:
        live = await serve(redis_url=own.url, events_timeout_ms=100.0)
        client = connect(live.url, events_timeout_s=5.0, events_max_wait_s=30.0)

        async def thaw_after_a_503() -> None:
            for _ in range(1000):
                metrics = await (await live.http.get("/metrics")).text()
                if re.search(r"^persona_event_batches_unavailable_total [1-9]", metrics, re.M):
                    os.kill(pid, signal.SIGCONT)
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the service never answered 503")

        pid = own.process.pid
        os.kill(pid, signal.SIGSTOP)  # Redis hangs: the service answers 503
        result, _ = await asyncio.gather(
            client.send_events(
                [view(category="hiking") for _ in range(3)], visitor_id=VID, consent=GRANTED
            ),
            thaw_after_a_503(),
        )
        assert result.unsent == 0 and result.accepted + result.duplicate == 3
        ids = [v.event_id for v in result.verdicts]
        # each event stored once, under the id both attempts carried
        assert sorted(logged_event_ids(own.url, "view")) == sorted(ids)
        profile = stored_profile(own.url)
        assert profile is not None and profile["views"] == 3
    finally:
        os.kill(own.process.pid, signal.SIGCONT)
        own.stop()


async def test_a_lost_answer_is_retried_with_the_same_event_ids(
    serve: Any, connect: Any, tmp_path: Path
) -> None:
    own = LocalRedis(tmp_path / "redis", appendonly=False)
    own.start()
    assert own.process is not None
    try:
        # the service waits for Redis longer than the client waits for the service
        live = await serve(redis_url=own.url, events_timeout_ms=20000.0)
        client = connect(live.url, events_timeout_s=0.5, events_max_wait_s=30.0)
        # the service's connection to Redis is up, so the first attempt's write leaves at once
        warm = await client.send_events(
            [conversion(1.0)], visitor_id="warm-up-visitor-000000001", consent=GRANTED
        )
        assert warm.accepted == 1

        async def thaw_once_retried() -> None:
            for _ in range(2000):
                if len(live.ports) >= 3:  # the first attempt timed out; the second arrived
                    os.kill(pid, signal.SIGCONT)
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the client never retried")

        pid = own.process.pid
        os.kill(pid, signal.SIGSTOP)
        result, _ = await asyncio.gather(
            client.send_events(
                [view(category="yoga") for _ in range(3)], visitor_id=VID, consent=GRANTED
            ),
            thaw_once_retried(),
        )
        # Redis stored the unanswered attempt; the retry carried its ids and found them
        assert (result.duplicate, result.unsent) == (3, 0)
        profile = stored_profile(own.url)
        assert profile is not None and profile["views"] == 3
        assert sorted(logged_event_ids(own.url, "view")) == sorted(
            v.event_id for v in result.verdicts
        )
    finally:
        os.kill(own.process.pid, signal.SIGCONT)
        own.stop()


async def test_events_the_service_did_not_take_are_returned_unsent(connect: Any) -> None:
    client = connect(
        f"http://127.0.0.1:{free_port()}", events_timeout_s=0.25, events_max_attempts=2
    )
    started = time.monotonic()
    result = await client.send_events(
        [view(category="running", event_id="order-page-0001"), identify("4711")], visitor_id=VID
    )
    assert time.monotonic() - started < 2 * 0.25 + 1 + 1
    assert (result.unsent, result.ok) == (2, False)
    assert {v.reason for v in result.verdicts} == {"client_unavailable"}
    assert [e["event_id"] for e in result.unsent_events] == [v.event_id for v in result.verdicts]
    assert result.unsent_events[0]["event_id"] == "order-page-0001"
    assert all(e["visitor_id"] == VID for e in result.unsent_events)


async def test_impressions_of_what_a_page_showed(serve: Any, connect: Any, redis_url: str) -> None:
    live = await serve()
    client = connect(live.url)
    decisions = await client.decide(["home-hero", "no-such-slot"], visitor_id=VID, consent=GRANTED)
    events = impressions(decisions.values())
    assert [e["placement"] for e in events] == ["home-hero"]  # nothing to report for the other
    result = await client.send_events(events, visitor_id=VID, consent=GRANTED)
    assert result.accepted == 1
    assert logged_event_ids(redis_url, "impression") == [result.verdicts[0].event_id]


# ---- login tokens ----------------------------------------------------------


async def test_a_login_token_from_the_cookie_links_the_browser(client: Any) -> None:
    """The browser's HttpOnly cookie reaches the site's server, which makes the token."""
    resp = await client.post("/v1/decide", data=orjson.dumps({"placements": ["home-hero"]}))
    vid = cookie_visitor_id(resp.cookies[persona_client.COOKIE_NAME].value)
    assert vid is not None
    stranger = "another-browser-00000001"

    async def identify_with(token: str, event_id: str) -> dict[str, Any]:
        event = {**identify("4711", event_id=event_id), "signature": token}
        r = await client.post("/v1/events", data=orjson.dumps({"events": [event]}))
        verdict: dict[str, Any] = (await r.json())["results"][0]
        return verdict

    assert (await identify_with(login_token(SITE_SECRET, "4711", vid), "login-0001"))[
        "status"
    ] == "accepted"
    refused = await identify_with(login_token(SITE_SECRET, "4711", stranger), "login-0002")
    assert refused["status"] == "rejected"
    assert cookie_visitor_id(None) is None and cookie_visitor_id("x.y") is None
    with pytest.raises(ValueError, match="ttl_s"):
        login_token(SITE_SECRET, "4711", vid, ttl_s=7200)


# ---- the package -----------------------------------------------------------


def test_the_sync_client_needs_only_the_standard_library() -> None:
    code = f"""
import sys
import persona_client
with persona_client.PersonaClient("http://127.0.0.1:{free_port()}", "k" * 40) as c:
    c.decide(["home-hero"])
    c.send_events([persona_client.view()], visitor_id="{VID}")
ours = {{"persona_client", "service", "__main__", "sitecustomize", "usercustomize"}}
tops = {{m.split(".")[0] for m in sys.modules}} - set(sys.stdlib_module_names) - ours
print(sorted(t for t in tops if not t.startswith("_")))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_DIR)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_DIR, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


PYTHON_SNIPPETS = ("decide", "events", "aiohttp", "django", "flask", "login")
CLIENTS = (PersonaClient, AsyncPersonaClient)
RESULTS = {"decide": Decisions, "send_events": EventResult}


def _awaited(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Await) else node


def _called(node: ast.expr | None, names: set[str]) -> bool:
    """Whether ``node`` calls one of ``names`` (a plain name or an attribute)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return name in names


def _clients(trees: list[ast.Module]) -> tuple[set[str], set[str]]:
    """Names bound to a client (``x = PersonaClient(...)``, ``async with ... as x``), and
    names of aiohttp app keys that hold one (``web.AppKey("...", AsyncPersonaClient)``)."""
    kinds = {cls.__name__ for cls in CLIENTS}
    names: set[str] = set()
    keys: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                if _called(node.value, kinds):
                    names.add(node.targets[0].id)
                elif _called(node.value, {"AppKey"}):
                    keys.add(node.targets[0].id)
            bound = node.optional_vars if isinstance(node, ast.withitem) else None
            if isinstance(bound, ast.Name) and _called(getattr(node, "context_expr", None), kinds):
                names.add(bound.id)
    return names, keys


def test_the_snippets_use_only_what_persona_client_offers() -> None:
    """Every name a Python snippet of the guide imports exists; every call on a client is a
    method taking those arguments; every attribute read on a result is one it has."""
    trees = [ast.parse(doc_snippet("docs/sdk.md", f"python-{n}")) for n in PYTHON_SNIPPETS]
    client_names, app_keys = _clients(trees)
    assert client_names and app_keys

    def is_client(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in client_names
        return isinstance(node, ast.Subscript) and getattr(node.slice, "id", None) in app_keys

    for name, tree in zip(PYTHON_SNIPPETS, trees, strict=True):
        imported = {
            alias.asname or alias.name: getattr(persona_client, alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "persona_client"
            for alias in node.names
        }
        results = {
            node.targets[0].id: RESULTS[call.func.attr]
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            for call in [_awaited(node.value)]
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in RESULTS
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                args = [None] * len(node.args)
                kwargs = {k.arg: None for k in node.keywords if k.arg is not None}
                func = node.func
                if isinstance(func, ast.Name) and func.id in imported:
                    inspect.signature(imported[func.id]).bind(*args, **kwargs)
                elif isinstance(func, ast.Attribute) and is_client(func.value):
                    offered = [getattr(cls, func.attr, None) for cls in CLIENTS]
                    assert any(offered), (name, func.attr)
                    for method in filter(None, offered):
                        inspect.signature(method).bind(None, *args, **kwargs)
            if isinstance(node, ast.Attribute):
                target = node.value
                if isinstance(target, ast.Name) and target.id in results:
                    assert hasattr(results[target.id], node.attr), (name, node.attr)
                inner = target.value if isinstance(target, ast.Subscript) else None
                if isinstance(inner, ast.Name) and results.get(inner.id) is Decisions:
                    assert node.attr in Decision.__dataclass_fields__, (name, node.attr)


async def test_the_aiohttp_snippet_serves_a_personalized_page(
    serve: Any,
    aiohttp_client: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    tmp_path: Path,
) -> None:
    live = await serve(catalog_path=running_fan(redis_url, tmp_path))
    monkeypatch.setenv("PERSONA_URL", live.url)
    monkeypatch.setenv("PERSONA_API_KEY", API_KEY)
    namespace: dict[str, Any] = {"__name__": "sdk_snippet"}
    exec(compile(doc_snippet("docs/sdk.md", "python-aiohttp"), "docs/sdk.md", "exec"), namespace)
    site = await aiohttp_client(namespace["app"])
    page = await site.get("/", cookies={"vid": VID, "consent": "yes"})
    assert page.status == 200 and await page.text() == HERO_RUNNING
    anonymous = await site.get("/")
    assert anonymous.status == 200 and await anonymous.text()
