"""Frequency caps: a variant shown N times without a click is hidden from that person."""

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
    assert out == capped
    assert len(keep) + len(out) == len(placement.variants)


async def test_capped_variant_is_not_shown_through_the_api(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    _, doc = hero(3)
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    client = await app_client(make_settings(catalog_path=path))
    profile = fan_profile("running")
    vid = "capped-visitor-000001"
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
