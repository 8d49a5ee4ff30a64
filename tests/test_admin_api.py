"""The admin API: tokens and scopes, validated versioned edits, publish, restore, diff."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from service.admin.tokens import TokenStore
from service.store.keyspace import ADMIN_TOKENS, CONFIG_VERSIONS
from tests.conftest import SERVER
from tests.helpers import fan_profile, run_persona, store_profile

ALL = ["config:read", "config:write", "publish", "models", "privacy"]


async def token(redis_url: str, name: str, scopes: list[str]) -> dict[str, str]:
    client = aioredis.Redis.from_url(redis_url)
    value = await TokenStore(client).create(name, scopes)
    await client.aclose()
    return {"Authorization": f"Bearer {value}"}


def sprint_variant(vid: str, category: str = "running") -> dict[str, Any]:
    return {
        "id": vid,
        "category": category,
        "content": {"title": f"Title of {vid}", "link": f"/{vid}"},
    }


async def test_every_admin_route_checks_the_token_and_its_scope(
    client: Any, redis_url: str
) -> None:
    routes = [
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/v1/admin")
    ]
    assert len(routes) >= 18
    none_scoped = await token(redis_url, "nobody", ["privacy"])
    for method, path in routes:
        url = path.replace("{name}", "home-hero").replace("{n}", "1").replace("{version}", "m1")
        resp = await client.request(method, url)
        assert resp.status == 401, (method, path)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        if method != "HEAD":  # aiohttp's automatic HEAD of each GET has no body
            assert (await resp.json())["error"] == "unauthorized"
        wrong = {"Authorization": "Bearer pst_" + "x" * 43}
        assert (await client.request(method, url, headers=wrong)).status == 401, (method, path)
        handler = next(
            r.handler
            for r in client.app.router.routes()
            if r.method == method and r.resource is not None and r.resource.canonical == path
        )
        if handler.required_scope is not None:
            resp = await client.request(method, url, headers=none_scoped)
            assert resp.status == 403, (method, path)
            if method != "HEAD":
                assert handler.required_scope in (await resp.json())["message"]


def test_tokens_come_from_the_cli_and_are_stored_only_as_hashes(redis_url: str) -> None:
    env = {"PERSONA_REDIS_URL": redis_url}
    cmd = ["admin-token"]
    created = run_persona([*cmd, "create", "--name", "ana", "--scope", "config:read",
                           "--scope", "publish"], env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    plain = created.stdout.strip()
    assert plain.startswith("pst_") and len(plain) == 47
    listed = run_persona([*cmd, "list"], env)
    assert listed.stdout.strip() == "ana\tconfig:read,publish"
    r = redis.Redis.from_url(redis_url)
    dump = b"".join(k + v for k, v in r.hgetall(ADMIN_TOKENS).items())
    assert plain.encode() not in dump and b"ana" in dump
    bad = run_persona([*cmd, "create", "--name", "x", "--scope", "root"], env)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
    revoked = run_persona([*cmd, "revoke", "--name", "ana"], env)
    assert revoked.returncode == 0 and r.hlen(ADMIN_TOKENS) == 0
    r.close()


async def test_a_marketer_sets_up_a_slot_publishes_and_decide_serves_it(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    client = await app_client(make_settings(config_poll_ms=20))
    auth = await token(redis_url, "marketer", ALL)
    for vid, cat in (("sprint-a", "running"), ("sprint-b", "running"), ("sprint-c", "yoga")):
        resp = await client.put(
            f"/v1/admin/variants/{vid}", json=sprint_variant(vid, cat), headers=auth
        )
        assert resp.status == 200, await resp.text()
    audience = {"visits": {"$gte": 3}, "device": "mobile"}
    resp = await client.put("/v1/admin/audiences/loyal-mobile", json=audience, headers=auth)
    assert resp.status == 200
    placement = {"variants": ["sprint-a", "sprint-b", "sprint-c"], "default_variant": "sprint-a"}
    resp = await client.put("/v1/admin/placements/spring-sale", json=placement, headers=auth)
    assert resp.status == 200
    draft = await resp.json()
    assert draft["author"] == "marketer" and draft["changes"] == ["added placement spring-sale"]
    # not live yet
    body = await (await client.post("/v1/decide", json={"placements": ["spring-sale"]})).json()
    assert body["decisions"]["spring-sale"]["fallback"] == "unknown_placement"
    resp = await client.post("/v1/admin/publish", headers=auth)
    assert resp.status == 200 and (await resp.json())["version"] == draft["version"]
    for _ in range(200):
        body = await (await client.post("/v1/decide", json={"placements": ["spring-sale"]})).json()
        if body["decisions"]["spring-sale"]["fallback"] is None:
            break
        await asyncio.sleep(0.01)
    decision = body["decisions"]["spring-sale"]
    assert decision["variant_id"] in {"sprint-a", "sprint-b", "sprint-c"}
    assert decision["content"]["title"].startswith("Title of sprint-")
    # the demo slots came along from the catalog file the first edit started from
    home = await (await client.post("/v1/decide", json={"placements": ["home-hero"]})).json()
    assert home["decisions"]["home-hero"]["fallback"] is None


INVALID = [
    (
        "variants/v-bad",
        {"id": "v-bad", "category": "running", "content": {}, "colour": "red"},
        "unknown field `colour`",
    ),
    ("variants/v-bad", {"id": "v-bad", "category": 7, "content": {}}, "$.variants"),
    ("variants/v-bad", {"id": "v-other", "category": "running", "content": {}}, "differs"),
    (
        "variants/v-big",
        {"id": "v-big", "category": "running", "content": {"body": "x" * 20000}},
        "over the limit",
    ),
    (
        "placements/p-bad",
        {"variants": ["hero-running"], "default_variant": "hero-hiking"},
        "default_variant 'hero-hiking' is not among its variants",
    ),
    (
        "placements/p-bad",
        {"variants": ["no-such"], "default_variant": "no-such"},
        "unknown variants no-such",
    ),
    (
        "audiences/a-bad",
        {"visit": {"$gte": 3}},
        "unknown fact 'visit' (see the condition reference) - at `audiences.a-bad.visit`",
    ),
    ("audiences/a-bad", {"$audience": "a-bad"}, "cycle: a-bad -> a-bad"),
]


@pytest.mark.parametrize(("path", "item", "words"), INVALID, ids=[i[2] for i in INVALID])
async def test_invalid_changes_get_422_naming_the_problem_and_store_nothing(
    client: Any, redis_url: str, path: str, item: dict[str, Any], words: str
) -> None:
    auth = await token(redis_url, "marketer", ALL)
    ok = await client.put("/v1/admin/audiences/fine", json={"device": "mobile"}, headers=auth)
    assert ok.status == 200
    before = redis.Redis.from_url(redis_url).lrange(CONFIG_VERSIONS, 0, -1)
    resp = await client.put(f"/v1/admin/{path}", json=item, headers=auth)
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "invalid_config" and words in body["message"], body["message"]
    assert redis.Redis.from_url(redis_url).lrange(CONFIG_VERSIONS, 0, -1) == before


async def test_history_diff_restore_and_stale_edits(client: Any, redis_url: str) -> None:
    auth = await token(redis_url, "ana", ALL)
    v1 = await (
        await client.put("/v1/admin/audiences/mobile", json={"device": "mobile"}, headers=auth)
    ).json()
    v2 = await (
        await client.put(
            "/v1/admin/variants/hero-yoga",
            json={"category": "yoga", "content": {"title": "Breathe"}},
            headers=auth,
        )
    ).json()
    assert v2["changes"] == [
        "changed variant hero-yoga (content, discount, price_band, priority, tags)"
    ] or v2["changes"][0].startswith("changed variant hero-yoga")
    stale = await client.put(
        "/v1/admin/audiences/desktop",
        json={"device": "desktop"},
        headers={**auth, "If-Match": str(v1["version"])},
    )
    assert stale.status == 409
    history = await (await client.get("/v1/admin/versions", headers=auth)).json()
    assert [v["version"] for v in history["versions"]] == [v2["version"], v1["version"]]
    assert all(v["author"] == "ana" for v in history["versions"])
    diff = await (
        await client.get(f"/v1/admin/diff?from={v1['version']}&to={v2['version']}", headers=auth)
    ).json()
    assert len(diff["changes"]) == 1 and "hero-yoga" in diff["changes"][0]
    restored = await (
        await client.post(f"/v1/admin/versions/{v1['version']}/restore", headers=auth)
    ).json()
    assert restored["version"] == v2["version"] + 1
    current = await (await client.get("/v1/admin/variants/hero-yoga", headers=auth)).json()
    original = await (await client.get(f"/v1/admin/versions/{v1['version']}", headers=auth)).json()
    yoga = next(v for v in original["config"]["variants"] if v["id"] == "hero-yoga")
    assert current == yoga
    exported = await client.get("/v1/admin/config", headers=auth)
    assert exported.headers["ETag"] == f'"{restored["version"]}"'
    imported = await client.put(
        "/v1/admin/config",
        data=await exported.read(),
        headers={**auth, "If-Match": exported.headers["ETag"]},
    )
    assert imported.status == 200 and (await imported.json())["changes"] == []


async def test_every_admin_resource_can_be_put_back_as_it_was_read(
    client: Any, redis_url: str
) -> None:
    auth = await token(redis_url, "editor", ["config:read", "config:write"])
    await client.put("/v1/admin/audiences/phones", json={"device": "mobile"}, headers=auth)
    doc = await (await client.get("/v1/admin/config", headers=auth)).json()
    names = {
        "placements": [p["name"] for p in doc["placements"]],
        "variants": [v["id"] for v in doc["variants"]],
        "audiences": list(doc["audiences"]),
    }
    for section, items in names.items():
        for name in items:
            got = await client.get(f"/v1/admin/{section}/{name}", headers=auth)
            assert got.status == 200
            put = await client.put(
                f"/v1/admin/{section}/{name}",
                data=await got.read(),
                headers={**auth, "If-Match": got.headers["ETag"]},
            )
            assert put.status == 200, (section, name, await put.text())
            assert (await put.json())["changes"] == []


async def test_preview_explains_a_draft_for_a_stored_and_a_described_visitor(
    client: Any, redis_url: str
) -> None:
    auth = await token(redis_url, "marketer", ["config:read", "config:write"])
    runners = {"affinity.running": {"$gte": 0.5}}
    assert (
        await client.put("/v1/admin/audiences/runners", json=runners, headers=auth)
    ).status == 200
    items = {
        "sprint-a": {"rule": {"$audience": "runners"}},
        "sprint-b": {"schedule": {"start": "2999-01-01T00:00:00"}},
        "sprint-c": {"status": "paused"},
        "sprint-d": {},
    }
    for vid, extra in items.items():
        resp = await client.put(
            f"/v1/admin/variants/{vid}", json={**sprint_variant(vid), **extra}, headers=auth
        )
        assert resp.status == 200, await resp.text()
    placement = {"variants": list(items), "default_variant": "sprint-d"}
    resp = await client.put("/v1/admin/placements/spring-sale", json=placement, headers=auth)
    assert resp.status == 200
    store_profile(redis_url, "preview-runner-0001", fan_profile("running"))
    body = {
        "placement": "spring-sale",
        "visitor_id": "preview-runner-0001",
        "context": {"device": "mobile"},
    }
    # a stored person's data is for the privacy scope only
    refused = await client.post("/v1/admin/preview", json=body, headers=auth)
    assert refused.status == 403 and "privacy" in (await refused.json())["message"]
    dpo = await token(redis_url, "dpo", ["config:read", "privacy"])
    resp = await client.post("/v1/admin/preview", json=body, headers=dpo)
    assert resp.status == 200, await resp.text()
    seen = await resp.json()
    why = {v["variant_id"]: v["excluded_because"] for v in seen["variants"]}
    assert why == {"sprint-a": None, "sprint-b": "schedule", "sprint-c": "paused", "sprint-d": None}
    assert seen["known_visitor"] is True and seen["facts"]["affinity.running"] >= 0.5
    assert all(isinstance(v["score"], float) for v in seen["variants"])
    assert seen["choice"]["variant_id"] in {"sprint-a", "sprint-d"}
    stranger = await (
        await client.post("/v1/admin/preview", json={"placement": "spring-sale"}, headers=auth)
    ).json()
    assert stranger["known_visitor"] is False
    assert {v["variant_id"]: v["excluded_because"] for v in stranger["variants"]}[
        "sprint-a"
    ] == "rule"
    assert stranger["choice"]["variant_id"] == "sprint-d"  # the only one left
    missing = await client.post("/v1/admin/preview", json={"placement": "nope"}, headers=auth)
    assert missing.status == 404
    first = await client.post(
        "/v1/admin/preview", json={"placement": "spring-sale", "version": 1}, headers=auth
    )
    assert first.status == 404  # version 1 had only the audience: no such slot yet


async def test_stats_count_impressions_clicks_and_attributed_conversions(
    client: Any, redis_url: str
) -> None:
    auth = await token(redis_url, "analyst", ["config:read"])

    def ev(kind: str, n: int, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "event_id": f"stats-{kind}-{n:04d}",
            "visitor_id": f"stats-visitor-{n % 7:08d}",
            **fields,
        }

    events = [
        ev(
            "impression",
            i,
            decision_id=f"{i:027x}",
            placement="home-hero",
            variant_id="hero-running" if i < 6 else "hero-yoga",
        )
        for i in range(10)
    ]
    events += [
        ev("click", i, decision_id=f"{i:027x}", placement="home-hero", variant_id="hero-running")
        for i in range(3)
    ]
    events += [
        ev("conversion", 0, decision_id=f"{0:027x}", value=40.0),
        ev("conversion", 7, decision_id=f"{7:027x}", value=10.0),
        ev("conversion", 99, value=5.0),
    ]  # no decision: not attributed
    resp = await client.post("/v1/events", data=orjson.dumps({"events": events}), headers=SERVER)
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["accepted"] == len(events)
    stats = await (await client.get("/v1/admin/stats?days=7", headers=auth)).json()
    hero = stats["placements"]["home-hero"]
    assert hero["hero-running"] == {
        "impressions": 6,
        "clicks": 3,
        "ctr": 0.5,
        "conversions": 1,
        "value": 40.0,
    }
    assert hero["hero-yoga"] == {
        "impressions": 4,
        "clicks": 0,
        "ctr": 0.0,
        "conversions": 1,
        "value": 10.0,
    }
    bad = await client.get("/v1/admin/stats?days=90", headers=auth)
    assert bad.status == 400 and "1 to 30" in (await bad.json())["message"]


async def test_the_configuration_round_trips_through_a_yaml_file(
    client: Any, redis_url: str
) -> None:
    auth = await token(redis_url, "ops", ["config:read", "config:write"])
    dated = {
        **sprint_variant("dated"),
        "schedule": {"start": "2027-03-01T09:00:00", "timezone": "Europe/Paris"},
    }
    assert (await client.put("/v1/admin/variants/dated", json=dated, headers=auth)).status == 200
    exported = await client.get("/v1/admin/config?format=yaml", headers=auth)
    assert exported.status == 200
    assert "attachment" in exported.headers["Content-Disposition"]
    text = await exported.text()
    assert "placements:" in text and "home-hero" in text
    yaml_headers = {**auth, "Content-Type": "application/yaml"}
    back = await client.put("/v1/admin/config", data=text, headers=yaml_headers)
    assert back.status == 200 and (await back.json())["changes"] == []
    broken = text.replace("default_variant: hero-welcome", "default_variant: nowhere", 1)
    refused = await client.put("/v1/admin/config", data=broken, headers=yaml_headers)
    assert refused.status == 422 and "nowhere" in (await refused.json())["message"]
    garbage = await client.put("/v1/admin/config", data="a: [1, 2", headers=yaml_headers)
    assert garbage.status == 400 and (await garbage.json())["error"] == "invalid_yaml"


async def test_an_import_with_overlapping_ids_is_refused_and_stores_nothing(
    client: Any, redis_url: str
) -> None:
    auth = await token(redis_url, "ops", ["config:read", "config:write"])
    doc = await (await client.get("/v1/admin/config", headers=auth)).json()
    doc["variants"].append(dict(doc["variants"][0]))
    resp = await client.put("/v1/admin/config", json=doc, headers=auth)
    assert resp.status == 422
    assert (
        f"variant {doc['variants'][0]['id']!r} is defined twice" in (await resp.json())["message"]
    )
    assert redis.Redis.from_url(redis_url).llen(CONFIG_VERSIONS) == 0
