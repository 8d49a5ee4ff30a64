"""Training from the log: decisions joined with clicks, rows rebuilt, a bundle the service takes."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from models.fromlog import catalog_resolver, read_log, rows_from_log, train_from_rows
from service.catalog.loader import parse_catalog
from service.scoring.bundle import load_bundle
from service.settings import DEFAULT_CATALOG, REPO_DIR
from tests.helpers import fan_profile, store_profile

CATEGORIES = ["running", "hiking", "cycling", "yoga", "camping"]


def exploring_catalog(tmp_path: Path) -> Path:
    doc = orjson.loads(DEFAULT_CATALOG.read_bytes())
    for p in doc["placements"]:
        p["explore_share"], p["holdout_share"] = 0.5, 0.0
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    return path


async def test_train_from_logged_decisions_and_clicks(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    catalog_path = exploring_catalog(tmp_path)
    client = await app_client(make_settings(catalog_path=catalog_path))
    rng = random.Random(5)
    fans = {}
    for i in range(150):
        vid = f"trainer-visitor-{i:05d}"
        fans[vid] = CATEGORIES[i % len(CATEGORIES)]
        store_profile(redis_url, vid, fan_profile(fans[vid]))
    category = {v["id"]: v["category"] for v in orjson.loads(catalog_path.read_bytes())["variants"]}
    events: list[dict[str, Any]] = []
    decisions = clicks = 0
    for n in range(1500):
        vid = rng.choice(list(fans))
        body = {"placements": ["home-hero"], "visitor_id": vid}
        d = (await (await client.post("/v1/decide", json=body)).json())["decisions"]["home-hero"]
        decisions += 1
        liked = category[d["variant_id"]] == fans[vid]
        if rng.random() < (0.6 if liked else 0.03):
            clicks += 1
            events.append(
                {
                    "type": "click",
                    "event_id": f"train-click-{n:06d}",
                    "visitor_id": vid,
                    "decision_id": d["decision_id"],
                    "placement": "home-hero",
                    "variant_id": d["variant_id"],
                }
            )
    for start in range(0, len(events), 100):
        resp = await client.post("/v1/events", json={"events": events[start : start + 100]})
        assert resp.status == 202
    r = aioredis.Redis.from_url(redis_url)
    entries = await read_log(r, since=0.0)
    resolve = await catalog_resolver(r, parse_catalog(catalog_path.read_bytes()))
    await r.aclose()
    rows = rows_from_log(entries, resolve, 14 * 86400)
    assert len(rows.y) == decisions and rows.skipped == {}
    assert int(rows.y.sum()) == clicks  # every click joined to its decision, none invented
    assert set(rows.propensity) <= {0.5 + 0.5 / 10, 0.5 / 10}  # exact epsilon-greedy
    out = tmp_path / "bundle"
    manifest = train_from_rows(rows, out)
    assert manifest.metrics["valid_auc"] > 0.7  # it learned who likes what
    assert load_bundle(out).manifest.version == manifest.version  # the service accepts it
    env = {**os.environ, "PERSONA_REDIS_URL": redis_url, "PERSONA_CATALOG": str(catalog_path)}
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", "train", "--out", str(tmp_path / "cli"), "--days", "1"],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        env=env,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"{decisions:,} decisions with {clicks:,} clicks" in cli.stdout
    assert load_bundle(tmp_path / "cli").manifest.training["source"] == "log"
