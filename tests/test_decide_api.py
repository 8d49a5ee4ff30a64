"""POST/GET /v1/decide through the real app, a real Redis and the bundled model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.store.keyspace import ERASURE_QUEUE, consent_key, profile_key
from tests.helpers import catalog_without_randomness, cookie_visitor, fan_profile, store_profile

VID = "known-visitor-0000000001"


async def decide(client: Any, body: dict[str, Any], **kw: Any) -> tuple[int, dict[str, Any], Any]:
    resp = await client.post("/v1/decide", data=orjson.dumps(body), **kw)
    return resp.status, await resp.json(), resp


async def test_new_visitor_gets_a_signed_cookie_and_a_model_decision(client: Any) -> None:
    status, body, resp = await decide(
        client, {"placements": ["home-hero"], "context": {"page_type": "home"}}
    )
    assert status == 200
    cookie = resp.headers["Set-Cookie"]
    assert re.match(r"persona_vid=[A-Za-z0-9_-]{22}\.[0-9a-z]+\.[A-Za-z0-9_-]+;", cookie)
    assert "visitor_id" not in body  # a page never sees the id its HttpOnly cookie holds
    for attr in ("HttpOnly", "Max-Age=34214400", "Path=/", "SameSite=Lax"):
        assert attr in cookie
    assert "Secure" not in cookie  # plain http and PERSONA_COOKIE_SECURE=auto
    d = body["decisions"]["home-hero"]
    assert re.fullmatch(r"[0-9a-f]{27}", d["decision_id"])
    assert d["policy"] in {"model", "explore", "holdout"}
    assert d["fallback"] is None
    assert d["content"]["title"]
    assert d["model_version"].startswith("default-")
    assert "scores" not in d
    assert resp.headers["Cache-Control"] == "no-store"


async def test_returning_visitor_keeps_its_id_without_a_new_cookie(client: Any) -> None:
    _, _, first = await decide(client, {"placements": ["home-hero"]})
    _, _, resp = await decide(client, {"placements": ["home-hero"]})
    assert cookie_visitor(first) and "Set-Cookie" not in resp.headers


async def test_secure_flag_when_configured(app_client: Any, make_settings: Any) -> None:
    client = await app_client(make_settings(cookie_secure="true"))
    _, _, resp = await decide(client, {"placements": ["home-hero"]})
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_tampered_cookie_is_replaced(app_client: Any, make_settings: Any) -> None:
    client = await app_client()
    _, _, resp = await decide(client, {"placements": ["home-hero"]})
    value = resp.cookies["persona_vid"].value
    client.session.cookie_jar.clear()
    forged = value.split(".")[0][:-1] + "Z." + ".".join(value.split(".")[1:])
    _, _, resp2 = await decide(
        client, {"placements": ["home-hero"]}, headers={"Cookie": f"persona_vid={forged}"}
    )
    assert cookie_visitor(resp2) not in (None, cookie_visitor(resp))


@pytest.mark.parametrize("category", ["running", "hiking", "yoga"])
async def test_ranking_follows_the_visitors_features(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path, category: str
) -> None:
    client = await app_client(
        make_settings(catalog_path=catalog_without_randomness(tmp_path)), server=True
    )
    store_profile(redis_url, VID, fan_profile(category))
    status, body, _ = await decide(
        client,
        {
            "placements": ["home-hero"],
            "visitor_id": VID,
            "include_scores": True,
            "context": {"page_type": "home"},
        },
    )
    assert status == 200
    d = body["decisions"]["home-hero"]
    assert d["variant_id"] == f"hero-{category}"
    assert d["policy"] == "model" and d["propensity"] == 1.0
    scores = [s["score"] for s in d["scores"]]
    assert scores == sorted(scores, reverse=True)
    assert d["scores"][0]["variant_id"] == f"hero-{category}"
    assert len(d["scores"]) == 10


async def test_unknown_visitor_is_scored_on_context_and_variants(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    client = await app_client(
        make_settings(catalog_path=catalog_without_randomness(tmp_path)), server=True
    )
    _, body, _ = await decide(
        client,
        {
            "placements": ["home-hero"],
            "include_scores": True,
            "context": {"page_type": "category", "category": "cycling"},
        },
    )
    d = body["decisions"]["home-hero"]
    assert d["policy"] == "model" and d["fallback"] is None
    assert len({s["score"] for s in d["scores"]}) > 1  # variant and context features matter


async def test_several_placements_and_an_unknown_one(client: Any) -> None:
    status, body, _ = await decide(
        client, {"placements": ["home-hero", "no-such-slot", "sidebar-offer"]}
    )
    assert status == 200
    assert list(body["decisions"]) == ["home-hero", "no-such-slot", "sidebar-offer"]
    unknown = body["decisions"]["no-such-slot"]
    assert unknown["fallback"] == "unknown_placement"
    assert unknown["error"] == "unknown placement 'no-such-slot'"
    assert unknown["content"] is None and unknown["policy"] == "fallback"
    assert body["decisions"]["sidebar-offer"]["content"] is not None


async def test_get_decide_for_a_plain_browser_fetch(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    # holdout off: a minted visitor would otherwise be held out (unscored) 5 % of the time
    client = await app_client(make_settings(catalog_path=catalog_without_randomness(tmp_path)))
    resp = await client.get(
        "/v1/decide?placement=home-hero,sidebar-offer&device=mobile&page_type=home"
    )
    assert resp.status == 200
    body = await resp.json()
    assert set(body["decisions"]) == {"home-hero", "sidebar-offer"}
    assert body["decisions"]["home-hero"]["policy"] == "model"
    assert "Set-Cookie" in resp.headers


async def test_explicit_visitor_id_sets_no_cookie(server_client: Any) -> None:
    _, body, resp = await decide(server_client, {"placements": ["home-hero"], "visitor_id": VID})
    assert body["visitor_id"] == VID
    assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize(
    ("raw", "code", "fragment"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"", "invalid_request", "empty"),
        (b"[]", "invalid_request", "Expected `object`"),
        (b'{"placements": "home-hero"}', "invalid_request", "$.placements"),
        (b'{"placements": []}', "invalid_request", "$.placements"),
        (
            b'{"placements": ["home-hero"], "colour": 1}',
            "invalid_request",
            "unknown field `colour`",
        ),
        (
            b'{"placements": ["home-hero"], "visitor_id": "short"}',
            "invalid_request",
            "$.visitor_id",
        ),
        (
            b'{"placements": ["home-hero"], "visitor_id": "persona:{a}:profile-xx"}',
            "invalid_request",
            "$.visitor_id",
        ),
        (
            b'{"placements": ["home-hero"], "visitor_id": "0000000000000000000000"}',
            "invalid_request",
            "too predictable",
        ),
        (
            b'{"placements": ["home-hero"], "visitor_id": "ab12-cd34_ef56-XY"}',
            "invalid_request",
            "at least 22 characters",
        ),
        (b'{"placements": ["Home Hero"]}', "invalid_request", "$.placements[0]"),
        (
            b'{"placements": ["home-hero"], "context": {"device": "fridge"}}',
            "invalid_request",
            "$.context.device",
        ),
        (
            b'{"placements": ["home-hero"], "context": {"local_hour": 24}}',
            "invalid_request",
            "$.context.local_hour",
        ),
        (b'{"placements": ["home-hero", "home-hero"]}', "invalid_request", "listed twice"),
        (
            b'{"placements": ["a","b","c","d","e","f","g","h","i","j","k"]}',
            "invalid_request",
            "at most 10 placements",
        ),
        (b'{"placements": ["home-hero"]}\xff', "invalid_json", "not valid JSON"),
    ],
)
async def test_bad_bodies_get_400_with_a_message(
    server_client: Any, raw: bytes, code: str, fragment: str
) -> None:
    resp = await server_client.post("/v1/decide", data=raw)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == code
    assert fragment in body["message"]


async def test_oversized_body_gets_413(client: Any) -> None:
    raw = orjson.dumps({"placements": ["home-hero"], "context": {"url": "x" * 70_000}})
    resp = await client.post("/v1/decide", data=raw)
    assert resp.status == 413
    assert (await resp.json())["error"] == "request_entity_too_large"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("placement=home-hero&colour=red", "unknown query parameters"),
        ("placement=home-hero&local_hour=noon", "local_hour"),
        ("device=mobile", "placements"),
        ("placement=home-hero&visitor_id=bad", "visitor_id"),
    ],
)
async def test_bad_queries_get_400(server_client: Any, query: str, fragment: str) -> None:
    resp = await server_client.get(f"/v1/decide?{query}")
    assert resp.status == 400
    assert fragment in (await resp.json())["message"]


async def test_cors_allowlist(app_client: Any, make_settings: Any) -> None:
    client = await app_client(make_settings(cors_origins=("https://shop.example",)))
    ok = await client.post(
        "/v1/decide",
        data=b'{"placements":["home-hero"]}',
        headers={"Origin": "https://shop.example"},
    )
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in ok.headers["Vary"]
    other = await client.post(
        "/v1/decide",
        data=b'{"placements":["home-hero"]}',
        headers={"Origin": "https://evil.example"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    pre = await client.options(
        "/v1/decide",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert pre.status == 204
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    denied = await client.options("/v1/decide", headers={"Origin": "https://evil.example"})
    assert denied.status == 403


async def test_without_consent_no_cookie_no_read_and_no_personalization(
    sync_redis: Any, app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(catalog_path=catalog_without_randomness(tmp_path))
    store_profile(redis_url, VID, fan_profile("yoga"))
    body = {"placements": ["home-hero"], "visitor_id": VID, "include_scores": True}
    stranger = {"placements": ["home-hero"], "include_scores": True}
    # no header (the default applies): nothing read, nothing written, nothing withdrawn
    client = await app_client(settings, consent=None, server=True)
    before = sync_redis.dbsize()
    status, got, resp = await decide(client, body)
    assert status == 200 and "Set-Cookie" not in resp.headers
    assert got["visitor_id"] is None
    _, anon, _ = await decide(client, stranger)
    assert got["decisions"]["home-hero"]["scores"] == anon["decisions"]["home-hero"]["scores"]
    assert got["decisions"]["home-hero"]["variant_id"] != "hero-yoga"
    assert sync_redis.dbsize() == before
    granted = await app_client(settings, consent="personalization", server=True)
    _, yes, _ = await decide(granted, body)
    assert yes["decisions"]["home-hero"]["variant_id"] == "hero-yoga"


async def test_refusing_consent_withdraws_the_callers_own_identity(
    app_client: Any, sync_redis: Any, redis_url: str
) -> None:
    client = await app_client(consent="personalization")
    _, _, resp = await decide(client, {"placements": ["home-hero"]})
    visitor = cookie_visitor(resp)
    assert visitor is not None
    store_profile(redis_url, visitor, fan_profile("yoga"))
    _, body, resp2 = await decide(
        client, {"placements": ["home-hero"]}, headers={"X-Persona-Consent": "none"}
    )
    assert "visitor_id" not in body
    assert 'persona_vid=""' in resp2.headers["Set-Cookie"]
    assert "Max-Age=0" in resp2.headers["Set-Cookie"]
    assert sync_redis.get(profile_key(visitor)) is None
    assert sync_redis.zscore(ERASURE_QUEUE, visitor) is not None
    assert sync_redis.hget(consent_key(visitor), "personalization") == b"0"


async def test_consent_default_granted_is_configurable(app_client: Any, make_settings: Any) -> None:
    client = await app_client(make_settings(consent_default="granted"), consent=None)
    _, _, resp = await decide(client, {"placements": ["home-hero"]})
    assert cookie_visitor(resp) is not None


@pytest.mark.parametrize("header", ["", "personalisation", "none,analytics"])
async def test_malformed_consent_header_is_a_400(client: Any, header: str) -> None:
    resp = await client.post(
        "/v1/decide",
        data=b'{"placements": ["home-hero"]}',
        headers={"X-Persona-Consent": header},
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "invalid_consent" and "X-Persona-Consent" in body["message"]
