"""Rate limits per client address and per visitor: 429 with Retry-After, counted, one per host."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from service.local_redis import LocalRedis
from service.ratelimit import RateTable, Rule, per_second
from service.settings import REPO_DIR
from tests.conftest import API_KEY, SECRET, SERVER
from tests.served import wait_ready

HERO = b'{"placements": ["home-hero"]}'


def test_gcra_allows_the_burst_then_the_rate() -> None:
    table = RateTable.local()
    rule = Rule("t", rate=10.0, burst=5)
    now = 1000.0
    assert [table.take(rule, "k", now) == 0.0 for _ in range(6)] == [True] * 5 + [False]
    assert table.take(rule, "k", now) > 0.0  # still refused, and nothing was counted
    assert table.take(rule, "other", now) == 0.0  # keys are separate
    assert table.take(rule, "k", now + 0.1) == 0.0  # one more per 1/rate seconds
    assert table.take(rule, "k", now + 0.1) > 0.0
    wait = table.take(rule, "k", now + 0.15)
    assert 0.0 < wait <= 0.05 + 1e-9  # the time until the next one is allowed
    assert table.take(rule, "k", now + 0.15, commit=False) > 0
    assert table.take(rule, "k", now + 10.0) == 0.0  # after a pause, a whole burst again


def test_a_full_bucket_forgets_its_oldest_key_and_never_refuses_within_the_limit() -> None:
    table = RateTable.local()
    rule = per_second("t", 1.0, burst_s=1.0)
    # far more keys than slots: every first request of a key is allowed
    assert all(table.take(rule, f"client-{i}", 5.0) == 0.0 for i in range(200_000))


async def test_a_client_address_is_limited_on_decide_and_events(
    app_client: Any, make_settings: Any
) -> None:
    settings = make_settings(rate_decide_client_per_s=5.0, rate_events_client_per_s=5.0)
    browser = await app_client(settings)
    statuses = [(await browser.post("/v1/decide", data=HERO)).status for _ in range(15)]
    assert statuses[:10] == [200] * 10 and statuses[-1] == 429  # 2 s of 5/s, then refused
    refused = await browser.post("/v1/decide", data=HERO)
    assert refused.headers["Retry-After"] == "1"
    assert (await refused.json())["error"] == "rate_limited"
    view = {"events": [{"type": "view", "event_id": "rl-view-0001"}]}
    codes = [(await browser.post("/v1/events", json=view)).status for _ in range(12)]
    assert codes[0] == 202 and codes[-1] == 429
    # the site's server speaks for many visitors: its calls are not limited per address
    server = await app_client(settings, server=True)
    assert all([(await server.post("/v1/decide", data=HERO)).status == 200 for _ in range(15)])
    text = await (await browser.get("/metrics")).text()
    assert 'persona_rate_limited_total{endpoint="/v1/decide",scope="client"}' in text


async def test_one_browser_visitor_is_limited_from_any_address(
    app_client: Any, make_settings: Any
) -> None:
    settings = make_settings(rate_decide_visitor_per_s=2.0, rate_events_visitor_per_s=2.0)
    browser = await app_client(settings)
    first = await browser.post("/v1/decide", data=HERO)  # the cookie is minted here
    cookie = {"Cookie": f"persona_vid={first.cookies['persona_vid'].value}"}
    codes = [(await browser.post("/v1/decide", data=HERO, headers=cookie)).status for _ in range(6)]
    assert codes == [200] * 4 + [429] * 2
    view = {"events": [{"type": "view", "event_id": "rl-visitor-01"}]}
    codes = [(await browser.post("/v1/events", json=view)).status for _ in range(6)]
    assert codes[:4] == [202] * 4 and codes[-1] == 429
    # another visitor is not held up, and neither is the site's server naming this one
    assert (await (await app_client(settings)).post("/v1/decide", data=HERO)).status == 200
    server = await app_client(settings, server=True)
    visitor = first.cookies["persona_vid"].value.split(".")[0]
    body = orjson.dumps({"placements": ["home-hero"], "visitor_id": visitor})
    assert all([(await server.post("/v1/decide", data=body)).status == 200 for _ in range(6)])


async def test_failed_admin_sign_ins_are_limited_and_counted(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    from service.admin.tokens import TokenStore
    from service.store.address import redis_client_for

    redis = redis_client_for(redis_url, timeout_s=5)
    token = await TokenStore(redis).create("ana", ["config:read"])
    await redis.aclose()
    client = await app_client(make_settings(rate_admin_failures_per_min=5.0))
    wrong = {"Authorization": "Bearer pst_" + "x" * 43}
    codes = [(await client.get("/v1/admin/whoami", headers=wrong)).status for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2
    # blocked for now: even a valid token waits (the attempts are not checked)
    good = {"Authorization": f"Bearer {token}"}
    resp = await client.get("/v1/admin/whoami", headers=good)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    text = await (await client.get("/metrics")).text()
    assert "persona_admin_auth_failures_total 5.0" in text


def _post(port: int, headers: dict[str, str]) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/decide",
        data=HERO,
        method="POST",
        headers={"Connection": "close", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_two_workers_share_one_limit(service_env: dict[str, str], tmp_path: Path) -> None:
    redis = LocalRedis(tmp_path / "redis", appendonly=False)
    redis.start()
    port = int(service_env["PERSONA_PORT"])
    env = {
        **service_env,
        "PERSONA_REDIS_URL": redis.url,
        "PERSONA_COOKIE_SECRETS": SECRET,
        "PERSONA_API_KEYS": API_KEY,
        # 1 per second, bursts of 2: the 80 calls below take about a second
        "PERSONA_RATE_DECIDE_CLIENT_PER_S": "1",
    }
    env_burst = {**env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--workers", "2"],
        cwd=REPO_DIR,
        env=env_burst,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, proc)
        started = time.monotonic()
        codes = [_post(port, {}) for _ in range(80)]  # a new connection each: both workers
        elapsed = time.monotonic() - started
        allowed = codes.count(200)
        # burst 2 (2 s of 1/s) plus what refilled meanwhile; two separate tables would allow twice
        assert allowed <= 2 + elapsed + 1, (allowed, elapsed)
        assert codes.count(429) == 80 - allowed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith('persona_rate_limited_total{endpoint="/v1/decide",scope="client"}')
        )
        assert float(line.rsplit(" ", 1)[1]) >= 1  # the other worker's count may be late
        assert _post(port, SERVER) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        redis.stop()
