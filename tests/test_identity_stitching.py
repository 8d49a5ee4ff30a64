"""Identify: anonymous and customer profiles merge, any device that logs in shares them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from service.features.profile import decode_profile
from service.identity.customer import CustomerKeys
from service.store.keyspace import profile_key
from tests.conftest import SITE_SECRET
from tests.helpers import catalog_without_randomness, cookie_visitor

CUSTOMER = "customer-4711@example.com"
KEYS = CustomerKeys("customer-key-" + "k" * 32, (SITE_SECRET,))


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


def identify(event_id: str, visitor: str | None = None) -> dict[str, Any]:
    """A login; with ``visitor``, carrying the token the site's server makes for that cookie."""
    event: dict[str, Any] = {"type": "identify", "event_id": event_id, "customer_id": CUSTOMER}
    if visitor is not None:
        event["signature"] = KEYS.sign_login(CUSTOMER, visitor, int(time.time()) + 300)
    return event


async def hero(client: Any, **body: Any) -> dict[str, Any]:
    decision, _ = await hero_and_response(client, **body)
    return decision


async def hero_and_response(client: Any, **body: Any) -> tuple[dict[str, Any], Any]:
    resp = await client.post("/v1/decide", data=orjson.dumps({"placements": ["home-hero"], **body}))
    decision: dict[str, Any] = (await resp.json())["decisions"]["home-hero"]
    return decision, resp


async def test_a_second_device_that_logs_in_gets_the_same_profile(
    app_client: Any, make_settings: Any, tmp_path: Path, sync_redis: Any
) -> None:
    settings = make_settings(catalog_path=catalog_without_randomness(tmp_path))
    laptop = await app_client(settings)
    phone = await app_client(settings)
    _, minted = await hero_and_response(laptop)
    laptop_id = cookie_visitor(minted)
    await events(laptop, views("laptop", "climbing", 25))
    body = await events(laptop, [identify("login-laptop-1", laptop_id)])
    assert body["accepted"] == 1
    pid = KEYS.profile_id(CUSTOMER)
    stored = decode_profile(sync_redis.get(profile_key(pid)))
    assert stored is not None and stored["views"] == 25
    # the phone has never seen climbing pages; after login it is the same person
    _, minted = await hero_and_response(phone)
    assert (await hero(phone))["variant_id"] != "hero-climbing"
    await events(phone, [identify("login-phone-1", cookie_visitor(minted))])
    phone_hero = await hero(phone)
    assert phone_hero["variant_id"] == "hero-climbing"
    assert (await hero(laptop))["variant_id"] == "hero-climbing"


async def test_the_old_anonymous_id_becomes_an_alias(
    app_client: Any, make_settings: Any, tmp_path: Path, sync_redis: Any
) -> None:
    client = await app_client(
        make_settings(catalog_path=catalog_without_randomness(tmp_path)), server=True
    )
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


async def test_a_browser_logs_in_only_with_a_fresh_token_for_its_own_cookie(
    app_client: Any, sync_redis: Any
) -> None:
    client = await app_client()
    _, resp = await hero_and_response(client)
    me = cookie_visitor(resp)
    assert me is not None
    cases = [
        (identify("login-none"), "login token"),
        ({**identify("login-other", "someone-elses-cookie-id-0001")}, "not valid"),
        (
            {**identify("login-cust"), "signature": KEYS.sign_login("x", me, int(time.time()))},
            "not valid",
        ),
        (
            {**identify("login-old"), "signature": KEYS.sign_login(CUSTOMER, me, 1_700_000_000)},
            "expired",
        ),
        (
            {
                **identify("login-long"),
                "signature": KEYS.sign_login(CUSTOMER, me, int(time.time()) + 86400),
            },
            "longer than",
        ),
        ({**identify("login-bad"), "signature": "v1.123.zz"}, "malformed"),
    ]
    for event, words in cases:
        resp = await client.post("/v1/events", data=orjson.dumps({"events": [event]}))
        result = (await resp.json())["results"][0]
        assert result["status"] == "rejected" and words in result["reason"], (event, result)
    assert sync_redis.get(profile_key(KEYS.profile_id(CUSTOMER))) is None
    body = await events(client, [identify("login-good", me)])
    assert body["accepted"] == 1


async def test_the_sites_server_links_a_named_visitor_without_a_token(
    app_client: Any, sync_redis: Any
) -> None:
    client = await app_client(server=True)
    anon = "server-named-device-00000001"
    body = await events(client, [{**identify("login-zzzz"), "visitor_id": anon}])
    assert body["accepted"] == 1
    assert orjson.loads(sync_redis.get(profile_key(anon))) == {"alias": KEYS.profile_id(CUSTOMER)}


async def test_the_raw_customer_id_is_never_stored(app_client: Any, sync_redis: Any) -> None:
    client = await app_client()
    _, resp = await hero_and_response(client)
    await events(client, [*views("v", "running", 3), identify("login-raw", cookie_visitor(resp))])
    assert sync_redis.get(profile_key(KEYS.profile_id(CUSTOMER))) is not None
    for key in sync_redis.scan_iter("*"):
        assert CUSTOMER.encode() not in key
        kind = sync_redis.type(key)
        if kind == b"string":
            assert CUSTOMER.encode() not in sync_redis.get(key)
        elif kind == b"stream":
            for _, fields in sync_redis.xrange(key):
                assert all(CUSTOMER.encode() not in v for v in fields.values())
