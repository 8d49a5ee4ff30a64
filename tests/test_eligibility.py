"""Eligibility: frequency caps, rules over audience facts, schedules, paused variants and slots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.catalog.loader import parse_catalog
from service.decide.eligibility import eligible
from service.settings import DEFAULT_CATALOG
from tests.helpers import fan_profile, store_profile

CATALOG = orjson.loads(DEFAULT_CATALOG.read_bytes())


def hero(cap: int | None) -> Any:
    doc = orjson.loads(orjson.dumps(CATALOG))
    for p in doc["placements"]:
        p["frequency_cap"] = cap
        p["explore_share"] = p["holdout_share"] = 0.0
    return parse_catalog(orjson.dumps(doc)).placements["home-hero"], doc


@pytest.mark.parametrize(
    ("cap", "seen", "capped"),
    [
        (None, {"hero-running": [50, 0, 1.0]}, []),
        (3, {}, []),
        (3, {"hero-running": [2, 0, 1.0]}, []),
        (3, {"hero-running": [3, 0, 1.0]}, ["hero-running"]),
        (3, {"hero-running": [9, 1, 1.0]}, []),  # clicked once: still wanted
        (3, {"hero-welcome": [9, 0, 1.0]}, []),  # the default is never hidden
        (3, {"hero-running": [3, 0, 1.0], "hero-yoga": [4, 0, 1.0]}, ["hero-running", "hero-yoga"]),
        (3, {"hero-running": "garbage"}, []),
    ],
)
def test_eligibility_table(cap: int | None, seen: dict[str, Any], capped: list[str]) -> None:
    placement, _ = hero(cap)
    keep, out = eligible(placement, seen)
    assert out == [(vid, "frequency_cap") for vid in capped]
    assert len(keep) + len(out) == len(placement.variants)


async def test_capped_variant_is_not_shown_through_the_api(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    _, doc = hero(3)
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    client = await app_client(make_settings(catalog_path=path), server=True)
    profile = fan_profile("running")
    vid = "capped-visitor-0000000001"
    store_profile(redis_url, vid, profile)
    body = orjson.dumps({"placements": ["home-hero"], "visitor_id": vid, "include_scores": True})
    first = (await (await client.post("/v1/decide", data=body)).json())["decisions"]["home-hero"]
    assert first["variant_id"] == "hero-running"
    profile["var"] = {"hero-running": [3, 0, time.time() - 60]}
    store_profile(redis_url, vid, profile)
    again = (await (await client.post("/v1/decide", data=body)).json())["decisions"]["home-hero"]
    assert again["variant_id"] != "hero-running"
    assert again["excluded"] == [{"variant_id": "hero-running", "reason": "frequency_cap"}]
    assert "hero-running" not in {s["variant_id"] for s in again["scores"]}


def with_variant(**changes: Any) -> Any:
    doc = orjson.loads(orjson.dumps(CATALOG))
    for v in doc["variants"]:
        if v["id"] == "hero-running":
            v.update(changes)
    doc["audiences"] = {"mobile": {"device": "mobile"}}
    return parse_catalog(orjson.dumps(doc)).placements["home-hero"]


NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z


@pytest.mark.parametrize(
    ("changes", "facts", "reason"),
    [
        ({"status": "paused"}, {}, "paused"),
        ({"rule": {"visits": {"$gte": 3}}}, {"visits": 5}, None),
        ({"rule": {"visits": {"$gte": 3}}}, {"visits": 1}, "rule"),
        ({"rule": {"visits": {"$gte": 3}}}, {}, "rule"),
        ({"rule": {"$audience": "mobile"}}, {"device": "mobile"}, None),
        ({"rule": {"$audience": "mobile"}}, {"device": "desktop"}, "rule"),
        ({"schedule": {"start": "2026-09-01T00:00:00", "end": "2026-10-01T00:00:00"}}, {}, None),
        ({"schedule": {"start": "2026-10-01T00:00:00"}}, {}, "schedule"),
        ({"schedule": {"end": "2026-09-01T00:00:00", "timezone": "Europe/Paris"}}, {}, "schedule"),
        ({"frequency_cap": 2}, {}, None),
    ],
)
def test_rules_schedules_and_status(
    changes: dict[str, Any], facts: dict[str, Any], reason: str | None
) -> None:
    placement = with_variant(**changes)
    keep, out = eligible(placement, {}, lambda: facts, NOW)
    assert out == ([] if reason is None else [("hero-running", reason)])
    assert len(keep) + len(out) == len(placement.variants)


def test_a_variants_own_cap_wins_over_the_placements() -> None:
    placement = with_variant(frequency_cap=2)
    _, out = eligible(placement, {"hero-running": [2, 0, 1.0]}, dict, NOW)
    assert out == [("hero-running", "frequency_cap")]


def test_the_schedule_time_zone_counts() -> None:
    # the same wall-clock start, an hour after NOW in UTC, was 8 hours ago in Tokyo (UTC+9)
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(NOW + 3600))
    utc = with_variant(schedule={"start": start})
    tokyo = with_variant(schedule={"start": start, "timezone": "Asia/Tokyo"})
    assert eligible(utc, {}, dict, NOW)[1] == [("hero-running", "schedule")]
    assert eligible(tokyo, {}, dict, NOW)[1] == []  # 9 hours earlier: already started


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"rule": {"visit": 3}},
            "unknown fact 'visit' (see the condition reference) - at `$.variants[1].rule.visit`",
        ),
        ({"rule": {"$audience": "nobody"}}, "unknown audience 'nobody'"),
        (
            {"schedule": {"start": "2026-10-01T00:00:00", "end": "2026-09-01T00:00:00"}},
            "ends before it starts",
        ),
        ({"schedule": {"timezone": "Mars/Olympus"}}, "unknown time zone 'Mars/Olympus'"),
        ({"status": "archived"}, "Invalid enum value 'archived' - at `$.variants[1].status`"),
    ],
)
def test_invalid_rules_and_schedules_are_refused(changes: dict[str, Any], words: str) -> None:
    from service.catalog.loader import CatalogError

    with pytest.raises(CatalogError) as info:
        with_variant(**changes)
    assert words in str(info.value)


async def test_count_returns_the_next_best_and_draft_or_paused_slots_serve_the_default(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    doc = orjson.loads(orjson.dumps(CATALOG))
    for p in doc["placements"]:
        p["explore_share"] = p["holdout_share"] = 0.0
        if p["name"] == "home-hero":
            p["count"] = 3
        elif p["name"] == "sidebar-offer":
            p["status"] = "draft"
        else:
            p["status"] = "paused"
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    client = await app_client(make_settings(catalog_path=path), server=True)
    names = [p["name"] for p in doc["placements"]]
    body = orjson.dumps({"placements": names, "include_scores": True})
    got = (await (await client.post("/v1/decide", data=body)).json())["decisions"]
    hero = got["home-hero"]
    ranked = [s["variant_id"] for s in hero["scores"]]
    more = [m["variant_id"] for m in hero["more"]]
    assert len(more) == 2 and hero["variant_id"] not in more
    assert more == [v for v in ranked if v != hero["variant_id"]][:2]  # best first
    assert all(m["content"]["title"] for m in hero["more"])
    assert got["sidebar-offer"]["fallback"] == "draft"
    assert got["article-footer"]["fallback"] == "paused"
    assert "more" not in got["sidebar-offer"]
