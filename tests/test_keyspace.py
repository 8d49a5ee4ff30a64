"""The one key layout: every key a realistic workload leaves is declared, every per-person key
expires, and the decision path and the event writer follow aliases alike."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.admin.models import ModelRegistry
from service.admin.tokens import TokenStore
from service.features.profile import decode_profile
from service.identity.customer import CustomerKeys
from service.scoring.bundle import load_bundle
from service.settings import REPO_DIR
from service.store.address import redis_client_for
from service.store.keyspace import ALIAS_MAX_DEPTH, describe, profile_key, spec_of
from tests.conftest import SITE_SECRET
from tests.helpers import (
    PATIENT,
    catalog_without_randomness,
    cookie_visitor,
    fan_profile,
    store_profile,
    tiny_bundle,
)

KEYS = CustomerKeys("customer-key-" + "k" * 32, (SITE_SECRET,))
CUSTOMER = "keyspace-customer@example.com"


async def workload(app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path) -> None:
    """Decisions, every event type, logins on two devices, withdrawals, admin work."""
    settings = make_settings(catalog_path=catalog_without_randomness(tmp_path))
    devices = [await app_client(settings) for _ in range(2)]
    for n, device in enumerate(devices):
        resp = await device.post("/v1/decide", data=b'{"placements": ["home-hero"]}')
        me = cookie_visitor(resp)
        assert me is not None
        decision_id = (await resp.json())["decisions"]["home-hero"]["decision_id"]
        shown = {"decision_id": decision_id, "placement": "home-hero", "variant_id": "hero-yoga"}
        events = [
            {"type": "view", "event_id": f"ks-view-{n}", "category": "yoga", "tags": ["mat"]},
            {"type": "impression", "event_id": f"ks-imp-{n}", **shown},
            {"type": "click", "event_id": f"ks-click-{n}", **shown},
            {"type": "conversion", "event_id": f"ks-conv-{n}", "value": 9.5},
            {"type": "feedback", "event_id": f"ks-feedback-{n}", "question_id": "q", "rating": 6},
            {"type": "consent", "event_id": f"ks-cons-{n}", "personalization": True,
             "analytics": True, "policy_version": "1"},
            {"type": "identify", "event_id": f"ks-login-{n}", "customer_id": CUSTOMER,
             "signature": KEYS.sign_login(CUSTOMER, me, int(time.time()) + 300)},
        ]  # fmt: skip
        resp = await device.post("/v1/events", json={"events": events})
        result = await resp.json()
        assert result["accepted"] == len(events), result["results"]
        await device.post("/v1/decide", data=b'{"placements": ["home-hero", "sidebar-offer"]}')
    server = await app_client(settings, server=True)
    anon = "keyspace-server-visitor-0001"
    await server.post("/v1/events", json={"events": [{"type": "view", "event_id": "ks-srv-1",
                                                      "visitor_id": anon}]})  # fmt: skip
    leaving = await app_client(settings)
    await leaving.post("/v1/decide", data=b'{"placements": ["home-hero"]}')
    await leaving.post("/v1/events", json={"events": [{"type": "view", "event_id": "ks-left-1"}]})
    await leaving.post(
        "/v1/decide", data=b'{"placements": ["home-hero"]}', headers={"X-Persona-Consent": "none"}
    )
    client = redis_client_for(redis_url, timeout_s=10)
    token = await TokenStore(client).create("keyspace", ["config:read", "config:write", "publish"])
    await ModelRegistry(client).register(load_bundle(tiny_bundle(tmp_path, "ks-model")), "test")
    await client.aclose()
    auth = {"Authorization": f"Bearer {token}"}
    await server.put("/v1/admin/audiences/phones", json={"device": "mobile"}, headers=auth)
    await server.post("/v1/admin/publish", headers=auth)


async def test_every_key_is_declared_and_every_per_person_key_expires(
    app_client: Any, make_settings: Any, redis_url: str, sync_redis: Any, tmp_path: Path
) -> None:
    await workload(app_client, make_settings, redis_url, tmp_path)
    await asyncio.sleep(0.05)  # the decision log's write is not awaited
    seen: set[str] = set()
    for raw in sync_redis.scan_iter("*"):
        key = raw.decode()
        spec = spec_of(key)
        assert spec is not None, f"undeclared key {key}"
        assert sync_redis.type(raw).decode() == spec.type, key
        seen.add(spec.pattern)
        if spec.per_person:
            assert sync_redis.ttl(raw) > 0, f"per-person key without expiry: {key}"
        for _, fields in sync_redis.xrange(raw) if spec.type == "stream" else ():
            assert CUSTOMER.encode() not in b"".join(fields.values())
    for kind in ("profile:", "seen:", "consent:", ":log", "erasure", "config", "tokens", "models"):
        assert any(kind in pattern for pattern in seen), (kind, seen)


def test_the_architecture_page_shows_the_layout() -> None:
    assert describe() in (REPO_DIR / "docs" / "architecture.md").read_text()


@pytest.mark.parametrize("links", [0, 1, ALIAS_MAX_DEPTH, ALIAS_MAX_DEPTH + 1])
async def test_decisions_and_events_follow_the_same_aliases(
    app_client: Any, make_settings: Any, redis_url: str, sync_redis: Any, tmp_path: Path, links: int
) -> None:
    chain = [f"alias-chain-{links}-{i:012d}" for i in range(links + 1)]
    for here, there in itertools.pairwise(chain):
        sync_redis.set(profile_key(here), orjson.dumps({"alias": there}), ex=3600)
    store_profile(redis_url, chain[-1], fan_profile("yoga"))
    settings = make_settings(catalog_path=catalog_without_randomness(tmp_path), **PATIENT)
    server = await app_client(settings, server=True)
    body = {"placements": ["home-hero"], "visitor_id": chain[0]}
    hero = (await (await server.post("/v1/decide", json=body)).json())["decisions"]["home-hero"]
    view = {"type": "view", "event_id": f"alias-view-{links}", "visitor_id": chain[0]}
    verdict = await (await server.post("/v1/events", json={"events": [view]})).json()
    reached = decode_profile(sync_redis.get(profile_key(chain[-1])))
    assert reached is not None
    if links <= ALIAS_MAX_DEPTH:  # both reach the profile at the end of the chain
        assert hero["variant_id"] == "hero-yoga"
        assert verdict["results"][0]["status"] == "accepted"
        assert reached["views"] == fan_profile("yoga")["views"] + 1
    else:  # neither does: the decision treats the visitor as new, the event is refused
        assert hero["variant_id"] != "hero-yoga"
        assert verdict["results"][0]["status"] == "rejected"
        assert reached["views"] == fan_profile("yoga")["views"]
