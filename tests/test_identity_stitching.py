"""Identify: anonymous and customer profiles merge, any device that logs in shares them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from service.features.profile import decode_profile, profile_key
from service.identity.customer import CustomerKeys
from tests.conftest import SITE_SECRET
from tests.helpers import catalog_without_randomness

CUSTOMER = "customer-4711@example.com"
KEYS = CustomerKeys("customer-key-" + "k" * 32, SITE_SECRET)
API_KEY = "api-key-" + "a" * 32


async def events(client: Any, batch: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    resp = await client.post("/v1/events", data=orjson.dumps({"events": batch}), **kw)
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def views(prefix: str, category: str, n: int) -> list[dict[str, Any]]:
    yesterday = time.time() - 86400
    return [
        {
            "type": "view",
            "event_id": f"{prefix}-{i:06d}",
            "category": category,
            "timestamp": yesterday + i,
        }
        for i in range(n)
    ]


def identify(event_id: str, signed: bool = True) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "identify", "event_id": event_id, "customer_id": CUSTOMER}
    if signed:
        event["signature"] = KEYS.sign(CUSTOMER)
    return event


async def hero(client: Any, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/decide", data=orjson.dumps({"placements": ["home-hero"], **body}))
    decision: dict[str, Any] = (await resp.json())["decisions"]["home-hero"]
    return decision


async def test_a_second_device_that_logs_in_gets_the_same_profile(
    app_client: Any, make_settings: Any, tmp_path: Path, sync_redis: Any
) -> None:
    settings = make_settings(catalog_path=catalog_without_randomness(tmp_path))
    laptop = await app_client(settings)
    phone = await app_client(settings)
    await hero(laptop)  # cookie minted
    await events(laptop, views("laptop", "climbing", 25))
    body = await events(laptop, [identify("login-laptop-1")])
    assert body["accepted"] == 1
    pid = KEYS.profile_id(CUSTOMER)
    stored = decode_profile(sync_redis.get(profile_key(pid)))
    assert stored is not None and stored["views"] == 25
    # the phone has never seen climbing pages; after login it is the same person
    assert (await hero(phone))["variant_id"] != "hero-climbing"
    await events(phone, [identify("login-phone-1")])
    phone_hero = await hero(phone)
    assert phone_hero["variant_id"] == "hero-climbing"
    assert (await hero(laptop))["variant_id"] == "hero-climbing"


async def test_the_old_anonymous_id_becomes_an_alias(
    app_client: Any, make_settings: Any, tmp_path: Path, sync_redis: Any
) -> None:
    client = await app_client(make_settings(catalog_path=catalog_without_randomness(tmp_path)))
    anon = "anonymous-device-000001"
    batch = [{**e, "visitor_id": anon} for e in views("a", "yoga", 20)]
    await events(client, batch)
    await events(client, [{**identify("login-anon-1"), "visitor_id": anon}])
    pid = KEYS.profile_id(CUSTOMER)
    assert orjson.loads(sync_redis.get(profile_key(anon))) == {"alias": pid}
    # later events on the old id land in the customer profile, and decisions follow it
    await events(client, [{**e, "visitor_id": anon} for e in views("b", "yoga", 3)])
    merged = decode_profile(sync_redis.get(profile_key(pid)))
    assert merged is not None and merged["views"] == 23
    assert (await hero(client, visitor_id=anon))["variant_id"] == "hero-yoga"


async def test_unsigned_customer_ids_from_a_browser_are_refused(
    app_client: Any, make_settings: Any, sync_redis: Any
) -> None:
    client = await app_client(make_settings(api_keys=(API_KEY,)))
    await hero(client)
    resp = await client.post(
        "/v1/events", data=orjson.dumps({"events": [identify("login-xxxx", signed=False)]})
    )
    body = await resp.json()
    assert body["results"][0]["status"] == "rejected"
    assert "signature" in body["results"][0]["reason"]
    forged = {**identify("login-yyyy"), "signature": KEYS.sign("someone-else")}
    resp = await client.post("/v1/events", data=orjson.dumps({"events": [forged]}))
    assert (await resp.json())["results"][0]["status"] == "rejected"
    assert sync_redis.get(profile_key(KEYS.profile_id(CUSTOMER))) is None
    # the site's own server may pass the id with its API key
    body = await events(
        client,
        [identify("login-zzzz", signed=False)],
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert body["accepted"] == 1


async def test_the_raw_customer_id_is_never_stored(app_client: Any, sync_redis: Any) -> None:
    client = await app_client()
    await hero(client)
    await events(client, [*views("v", "running", 3), identify("login-raw")])
    for key in sync_redis.scan_iter("*"):
        assert CUSTOMER.encode() not in key
        kind = sync_redis.type(key)
        if kind == b"string":
            assert CUSTOMER.encode() not in sync_redis.get(key)
        elif kind == b"stream":
            for _, fields in sync_redis.xrange(key):
                assert all(CUSTOMER.encode() not in v for v in fields.values())
