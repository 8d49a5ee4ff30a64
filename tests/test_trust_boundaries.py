"""Attacks from another browser, reproduced over HTTP against a real Redis: each must fail.

The victim is a visitor (and a logged-in customer) whose profile the site's
server built; the attacker has only a browser: no API key, no secrets.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from service.features.profile import decode_profile
from service.identity.customer import CustomerKeys
from service.store.keyspace import ERASURE_QUEUE, consent_key, profile_key
from tests.conftest import SITE_SECRET
from tests.helpers import cookie_visitor, fan_profile, store_profile

KEYS = CustomerKeys("customer-key-" + "k" * 32, (SITE_SECRET,))
VICTIM = "victim-visitor-0000000001"
VICTIM_CUSTOMER = "victim@example.com"
ATTACKER_CUSTOMER = "attacker@example.com"


async def events(client: Any, batch: list[dict[str, Any]], **kw: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/events", data=orjson.dumps({"events": batch}), **kw)
    return resp.status, await resp.json()


async def browser_id(client: Any) -> str:
    """The visitor id a browser's own cookie holds (minted by its first decide call)."""
    resp = await client.post("/v1/decide", data=b'{"placements": ["home-hero"]}')
    visitor = cookie_visitor(resp)
    assert visitor is not None
    return visitor


def victim_profile(sync_redis: Any, visitor: str = VICTIM) -> dict[str, Any] | None:
    return decode_profile(sync_redis.get(profile_key(visitor)))


async def test_a_browser_cannot_write_into_another_visitors_profile(
    app_client: Any, redis_url: str, sync_redis: Any
) -> None:
    store_profile(redis_url, VICTIM, fan_profile("yoga"))
    before = victim_profile(sync_redis)
    attacker = await app_client()
    view = {"type": "view", "event_id": "evil-view-0001", "category": "darts"}
    status, body = await events(attacker, [{**view, "visitor_id": VICTIM}])
    assert status == 403 and body["rejected"] == 1
    assert "site's server" in body["results"][0]["reason"]
    assert victim_profile(sync_redis) == before


async def test_a_browser_cannot_withdraw_someone_elses_consent(
    app_client: Any, redis_url: str, sync_redis: Any
) -> None:
    victim_pid = KEYS.profile_id(VICTIM_CUSTOMER)
    store_profile(redis_url, victim_pid, fan_profile("yoga"))
    store_profile(redis_url, VICTIM, fan_profile("yoga"))
    attacker = await app_client(consent="none")
    withdraw = {
        "type": "consent",
        "event_id": "evil-consent-01",
        "personalization": False,
        "policy_version": "1",
    }
    for target in (VICTIM, victim_pid):
        status, body = await events(attacker, [{**withdraw, "visitor_id": target}])
        assert body["results"][0]["status"] == "rejected", body
    # without a cookie of its own, a withdrawal withdraws nothing (and creates nothing)
    keys_before = sync_redis.dbsize()
    status, body = await events(attacker, [withdraw])
    assert status == 202 and body["results"][0]["status"] == "ignored"
    assert sync_redis.dbsize() == keys_before
    assert victim_profile(sync_redis, victim_pid) is not None
    assert victim_profile(sync_redis) is not None
    assert sync_redis.zcard(ERASURE_QUEUE) == 0


async def test_a_browser_cannot_link_a_victim_to_its_own_account(
    app_client: Any, redis_url: str, sync_redis: Any
) -> None:
    store_profile(redis_url, VICTIM, fan_profile("yoga"))
    attacker = await app_client()
    me = await browser_id(attacker)
    # the attacker's own, valid login token, with the victim's visitor id
    token = KEYS.sign_login(ATTACKER_CUSTOMER, me, int(time.time()) + 300)
    login = {
        "type": "identify",
        "event_id": "evil-login-0001",
        "customer_id": ATTACKER_CUSTOMER,
        "signature": token,
    }
    _, body = await events(attacker, [{**login, "visitor_id": VICTIM}])
    assert body["results"][0]["status"] == "rejected"
    assert "alias" not in (victim_profile(sync_redis) or {})
    assert sync_redis.get(profile_key(KEYS.profile_id(ATTACKER_CUSTOMER))) is None


async def test_a_login_token_replayed_from_another_browser_is_refused(
    app_client: Any, sync_redis: Any
) -> None:
    victim = await app_client()
    victim_id = await browser_id(victim)
    token = KEYS.sign_login(VICTIM_CUSTOMER, victim_id, int(time.time()) + 300)
    login = {
        "type": "identify",
        "event_id": "login-victim-01",
        "customer_id": VICTIM_CUSTOMER,
        "signature": token,
    }
    status, body = await events(victim, [login])
    assert status == 202 and body["accepted"] == 1
    views = [
        {"type": "view", "event_id": f"victim-view-{i:04d}", "category": "yoga"} for i in range(5)
    ]
    await events(victim, views)
    stored = victim_profile(sync_redis, KEYS.profile_id(VICTIM_CUSTOMER))
    assert stored is not None and stored["views"] == 5
    attacker = await app_client()
    await browser_id(attacker)
    _, body = await events(attacker, [{**login, "event_id": "login-replay-1"}])
    assert body["results"][0]["status"] == "rejected"
    assert "not valid" in body["results"][0]["reason"]
    # the attacker's browsing did not reach the victim's profile, nor the other way round
    await events(attacker, [{"type": "view", "event_id": "evil-view-0002", "category": "darts"}])
    stored = victim_profile(sync_redis, KEYS.profile_id(VICTIM_CUSTOMER))
    assert stored is not None and stored["views"] == 5 and "darts" not in stored["cat"]


async def test_a_browser_cannot_read_a_named_persons_ranking(
    app_client: Any, redis_url: str
) -> None:
    store_profile(redis_url, VICTIM, fan_profile("yoga"))
    attacker = await app_client()
    for body in (
        {"placements": ["home-hero"], "visitor_id": VICTIM},
        {"placements": ["home-hero"], "visitor_id": VICTIM, "include_scores": True},
        {"placements": ["home-hero"], "customer_id": VICTIM_CUSTOMER},
        {"placements": ["home-hero"], "include_scores": True},
    ):
        resp = await attacker.post("/v1/decide", data=orjson.dumps(body))
        answer = await resp.json()
        assert resp.status == 403, answer
        assert "site's server" in answer["message"]
    resp = await attacker.get(f"/v1/decide?placement=home-hero&visitor_id={VICTIM}")
    assert resp.status == 403


async def test_a_wrong_api_key_is_a_401_not_a_browser_call(app_client: Any) -> None:
    client = await app_client()
    resp = await client.post(
        "/v1/decide",
        data=orjson.dumps({"placements": ["home-hero"], "visitor_id": VICTIM}),
        headers={"Authorization": "Bearer not-the-key-" + "x" * 30},
    )
    assert resp.status == 401 and "PERSONA_API_KEYS" in (await resp.json())["message"]


async def test_no_id_reaches_a_browsers_page_after_login(app_client: Any) -> None:
    browser = await app_client()
    me = await browser_id(browser)
    token = KEYS.sign_login(VICTIM_CUSTOMER, me, int(time.time()) + 300)
    login = {
        "type": "identify",
        "event_id": "login-page-0001",
        "customer_id": VICTIM_CUSTOMER,
        "signature": token,
    }
    await events(browser, [login])
    resp = await browser.post("/v1/decide", data=b'{"placements": ["home-hero"]}')
    text = await resp.text()
    assert "cust-" not in text and me not in text and "visitor_id" not in text
    # the cookie (HttpOnly) now names the customer profile
    assert browser.session.cookie_jar.filter_cookies(browser.make_url("/"))[
        "persona_vid"
    ].value.startswith(KEYS.profile_id(VICTIM_CUSTOMER) + ".")


async def test_consent_events_without_consent_create_no_keys(
    app_client: Any, sync_redis: Any
) -> None:
    attacker = await app_client(consent=None)
    for batch_no in range(5):
        batch = [
            {
                "type": "consent",
                "event_id": f"flood-{batch_no:03d}-{i:04d}",
                "visitor_id": f"random-victim-{batch_no:03d}-{i:08d}",
                "personalization": flag,
                "policy_version": "1",
            }
            for i in range(50)
            for flag in (True, False)
        ][:100]
        await events(attacker, batch)
        await events(attacker, [{k: v for k, v in e.items() if k != "visitor_id"} for e in batch])
    assert sync_redis.dbsize() == 0


async def test_refusing_consent_on_events_withdraws_the_callers_own_profile(
    app_client: Any, sync_redis: Any
) -> None:
    browser = await app_client(consent="personalization")
    me = await browser_id(browser)
    views = [
        {"type": "view", "event_id": f"own-view-{i:04d}", "category": "yoga"} for i in range(3)
    ]
    await events(browser, views)
    assert victim_profile(sync_redis, me) is not None
    withdraw = {
        "type": "consent",
        "event_id": "own-consent-01",
        "personalization": False,
        "policy_version": "2026-12",
        "source": "settings",
    }
    status, body = await events(browser, [withdraw], headers={"X-Persona-Consent": "none"})
    assert status == 202 and body["accepted"] == 1
    assert victim_profile(sync_redis, me) is None
    assert sync_redis.zscore(ERASURE_QUEUE, me) is not None
    record = sync_redis.hgetall(consent_key(me))
    assert record[b"personalization"] == b"0" and record[b"source"] == b"settings"
    assert sync_redis.ttl(consent_key(me)) > 0
    # the cookie is gone: the next call is a stranger's
    jar = browser.session.cookie_jar.filter_cookies(browser.make_url("/"))
    assert "persona_vid" not in jar or not jar["persona_vid"].value


async def test_a_withdrawal_on_a_linked_device_deletes_the_customer_profile(
    app_client: Any, sync_redis: Any
) -> None:
    server = await app_client(server=True)
    device = "linked-device-000000000001"
    login = {
        "type": "identify",
        "event_id": "srv-login-0001",
        "customer_id": VICTIM_CUSTOMER,
        "visitor_id": device,
    }
    views = [
        {"type": "view", "event_id": f"srv-view-{i:04d}", "category": "yoga", "visitor_id": device}
        for i in range(3)
    ]
    await events(server, [login, *views])
    pid = KEYS.profile_id(VICTIM_CUSTOMER)
    assert victim_profile(sync_redis, pid) is not None
    withdraw = {
        "type": "consent",
        "event_id": "srv-consent-01",
        "personalization": False,
        "policy_version": "1",
        "visitor_id": device,
    }
    status, body = await events(server, [withdraw])
    assert status == 202 and body["accepted"] == 1
    assert sync_redis.get(profile_key(device)) is None
    assert sync_redis.get(profile_key(pid)) is None
    assert {m.decode() for m in sync_redis.zrange(ERASURE_QUEUE, 0, -1)} == {device, pid}
