"""The preview and the decision path are one decision rule: they agree on every choice."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.simulator import REFERENCE_NOW, SimParams, make_population, make_world
from service.admin.tokens import TokenStore
from service.settings import DEFAULT_CATALOG
from service.store.address import redis_client_for
from tests.helpers import PATIENT, store_profile

PAIRS = 1000


def exploring_catalog(tmp_path: Path) -> Path:
    doc = orjson.loads(DEFAULT_CATALOG.read_bytes())
    for p in doc["placements"]:
        if p["name"] == "home-hero":
            p["explore_share"], p["holdout_share"] = 0.3, 0.2
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    return path


async def test_preview_and_decide_agree_on_holdout_exploration_and_choice(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    people = make_population(
        60, rng, REFERENCE_NOW, world=make_world(), params=SimParams(new_visitor_share=0.2)
    )
    visitors = []
    for i, person in enumerate(people):
        vid = f"one-decider-visitor-{i:08d}"
        if person.profile:
            store_profile(redis_url, vid, person.profile)
        visitors.append(vid)
    client = redis_client_for(redis_url, timeout_s=5)
    token = await TokenStore(client).create("dpo", ["config:read", "privacy"])
    await client.aclose()
    auth = {"Authorization": f"Bearer {token}"}
    server = await app_client(
        make_settings(catalog_path=exploring_catalog(tmp_path), **PATIENT), server=True
    )
    pick = random.Random(9)
    policies: dict[str, int] = {}
    for _ in range(PAIRS):
        context = {
            "device": pick.choice(["mobile", "tablet", "desktop"]),
            "page_type": pick.choice(["home", "category", "product"]),
            "category": pick.choice([None, "running", "yoga", "hiking"]),
            "local_hour": pick.randrange(24),
            "day_of_week": pick.randrange(7),
        }
        context = {k: v for k, v in context.items() if v is not None}
        vid = pick.choice(visitors)
        body = {"placements": ["home-hero"], "visitor_id": vid, "context": context}
        decided = (await (await server.post("/v1/decide", json=body)).json())["decisions"][
            "home-hero"
        ]
        asked = {
            "placement": "home-hero",
            "visitor_id": vid,
            "context": context,
            "decision_id": decided["decision_id"],
        }
        resp = await server.post("/v1/admin/preview", json=asked, headers=auth)
        assert resp.status == 200, await resp.text()
        preview = await resp.json()
        choice = preview["choice"]
        assert (choice["variant_id"], choice["policy"]) == (
            decided["variant_id"],
            decided["policy"],
        ), (vid, context)
        assert preview["in_holdout"] is (decided["policy"] == "holdout")
        shown = next(v for v in preview["variants"] if v["variant_id"] == decided["variant_id"])
        assert shown["eligible"]
        policies[decided["policy"]] = policies.get(decided["policy"], 0) + 1
    # every branch of the rule was exercised
    assert {"model", "explore", "holdout"} <= set(policies), policies
