"""Training from the log: decisions joined with clicks, rows rebuilt, a bundle the service takes."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import orjson
import redis.asyncio as aioredis

from models.evaluate import evaluate, logged_decisions, unseen_by
from models.fromlog import (
    catalog_resolver,
    read_log,
    rows_from_log,
    rows_from_redis,
    train_from_rows,
)
from service.catalog.loader import parse_catalog
from service.decide.record import context_of
from service.features.builder import row_for_view, rows_for_view, visitor_view
from service.scoring.bundle import load_bundle
from service.scoring.predictor import COMPILED_DIR, compiled_cache_path, load_predictor
from service.settings import DEFAULT_CATALOG
from tests.helpers import (
    PATIENT,
    CliResult,
    exploring_catalog,
    fan_profile,
    run_persona,
    store_profile,
    wait_for_log,
)

CATEGORIES = ["running", "hiking", "cycling", "yoga", "camping"]
DEMO = orjson.loads(DEFAULT_CATALOG.read_bytes())


async def persona(args: list[str], env: dict[str, str]) -> CliResult:
    """Run the ``persona`` command in this process, off the event loop."""
    return await asyncio.to_thread(run_persona, args, env)


async def drive_traffic(
    client: Any, redis_url: str, catalog_path: Path, n: int, seed: int = 5
) -> tuple[int, int]:
    """``n`` decisions for fans of five categories; clicks by a known preference."""
    rng = random.Random(seed)
    fans = {}
    for i in range(150):
        vid = f"trainer-visitor-{i:07d}"
        fans[vid] = CATEGORIES[i % len(CATEGORIES)]
        store_profile(redis_url, vid, fan_profile(fans[vid]))
    category = {v["id"]: v["category"] for v in DEMO["variants"]}
    events: list[dict[str, Any]] = []
    clicks = 0
    for n_ in range(n):
        vid = rng.choice(list(fans))
        body = {"placements": ["home-hero"], "visitor_id": vid}
        d = (await (await client.post("/v1/decide", json=body)).json())["decisions"]["home-hero"]
        liked = category[d["variant_id"]] == fans[vid]
        if rng.random() < (0.6 if liked else 0.03):
            clicks += 1
            events.append(
                {
                    "type": "click",
                    "event_id": f"train-click-{seed}-{n_:06d}",
                    "visitor_id": vid,
                    "decision_id": d["decision_id"],
                    "placement": "home-hero",
                    "variant_id": d["variant_id"],
                }
            )
    for start in range(0, len(events), 100):
        resp = await client.post("/v1/events", json={"events": events[start : start + 100]})
        assert resp.status == 202
    await wait_for_log(redis_url, "decision", n)
    return n, clicks


async def test_train_from_logged_decisions_and_clicks(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    catalog_path = exploring_catalog(tmp_path)
    client = await app_client(make_settings(catalog_path=catalog_path, **PATIENT), server=True)
    decisions, clicks = await drive_traffic(client, redis_url, catalog_path, 1500)
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
    cli = await persona(["train", "--out", str(tmp_path / "cli"), "--days", "1"], env)
    assert cli.returncode == 0, cli.stderr
    assert f"{decisions:,} decisions with {clicks:,} clicks" in cli.stdout
    bundle = load_bundle(tmp_path / "cli")
    assert bundle.manifest.training["source"] == "log"
    # the bundle carries its compiled predictor: the service loads it without compiling
    shipped = compiled_cache_path(bundle, bundle.path / COMPILED_DIR)
    assert shipped.exists()
    empty_cache = tmp_path / "empty-cache"
    predictor = load_predictor(bundle, empty_cache, compile_if_missing=False)
    assert predictor.kind == "lleaves" and not empty_cache.exists()
    # the same training from the Parquet export, without Redis
    export = await persona(["export-log", "--out", str(tmp_path / "parquet")], env)
    assert export.returncode == 0, export.stderr
    offline = {k: v for k, v in env.items() if k != "PERSONA_REDIS_URL"}
    from_files = await persona(
        [
            "train",
            "--out",
            str(tmp_path / "pq"),
            "--days",
            "1",
            "--from-parquet",
            str(tmp_path / "parquet"),
        ],
        offline,
    )
    assert from_files.returncode == 0, from_files.stderr
    assert f"{decisions:,} decisions with {clicks:,} clicks" in from_files.stdout
    assert load_bundle(tmp_path / "pq").manifest.model_sha256 == bundle.manifest.model_sha256


async def test_evaluate_ranks_the_candidate_above_random_and_flags_by_margin(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    catalog_path = exploring_catalog(tmp_path)
    client = await app_client(make_settings(catalog_path=catalog_path, **PATIENT), server=True)
    decisions, _ = await drive_traffic(client, redis_url, catalog_path, 1500, seed=9)
    r = aioredis.Redis.from_url(redis_url)
    entries = await read_log(r, since=0.0)
    resolve = await catalog_resolver(r, parse_catalog(catalog_path.read_bytes()))
    await r.aclose()
    train_from_rows(rows_from_log(entries, resolve, 14 * 86400), tmp_path / "candidate")
    booster = lightgbm.Booster(model_file=str(tmp_path / "candidate" / "model.txt"))
    logged = logged_decisions(entries, resolve, 14 * 86400)
    assert len(logged) == decisions
    report = evaluate(logged, booster.predict)
    est = {name: e["snips"] for name, e in report.estimates.items()}
    assert set(est) == {"live", "candidate", "popularity", "random"}
    assert est["candidate"].value > est["random"].high  # it learned the preference
    assert est["candidate"].value > est["live"].value  # the live model never saw it
    assert not report.flagged and report.candidate_auc > 0.7
    assert evaluate(logged, lambda x: -booster.predict(x)).flagged  # the worst choice each time
    env = {**os.environ, "PERSONA_REDIS_URL": redis_url, "PERSONA_CATALOG": str(catalog_path)}
    cli = await persona(["evaluate", "--model", str(tmp_path / "candidate")], env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "candidate" in cli.stdout and "SNIPS" in cli.stdout
    # judged only on the decisions it did not train on: its validation window
    manifest = load_bundle(tmp_path / "candidate").manifest
    unseen = unseen_by(logged, manifest.training)
    assert 0.1 * decisions < len(unseen) < 0.3 * decisions
    assert min(x.t for x in unseen) == manifest.training["valid_from_ts"]
    as_json = await persona(
        ["evaluate", "--model", str(tmp_path / "candidate"), "--json", "--days", "1"], env
    )
    assert as_json.returncode == 0, as_json.stderr
    doc = orjson.loads(as_json.stdout)
    assert doc["decisions"] == len(unseen) and doc["flagged"] is False
    assert doc["candidate"] == manifest.version
    cand = doc["estimates"]["candidate"]["snips"]
    assert cand["low"] <= cand["value"] <= cand["high"] and cand["n"] == len(unseen)


async def test_rows_do_not_depend_on_the_order_the_log_is_read_in(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    catalog_path = exploring_catalog(tmp_path)
    client = await app_client(make_settings(catalog_path=catalog_path, **PATIENT), server=True)
    await drive_traffic(client, redis_url, catalog_path, 300, seed=4)
    r = aioredis.Redis.from_url(redis_url)
    entries = await read_log(r, since=0.0)
    resolve = await catalog_resolver(r, parse_catalog(catalog_path.read_bytes()))
    streamed = await rows_from_redis(r, 0.0, parse_catalog(catalog_path.read_bytes()), 14 * 86400)
    await r.aclose()
    ordered = rows_from_log(entries, resolve, 14 * 86400)
    shuffled = rows_from_log(entries[::-1], resolve, 14 * 86400)
    for other in (shuffled, streamed):
        assert np.array_equal(ordered.x, other.x, equal_nan=True)
        assert np.array_equal(ordered.y, other.y)
        assert np.array_equal(ordered.t, other.t)
    # each row equals the served builder's row of that variant
    for d in [e for e in entries if e["type"] == "decision"][:50]:
        catalog = resolve(d["catalog_version"])
        assert catalog is not None
        placement = catalog.placements[d["placement"]]
        view = visitor_view(d["profile"], d["timestamp"], 14 * 86400)
        every = rows_for_view(view, context_of(d), placement, d["timestamp"])
        for i in range(len(placement.variants)):
            one = row_for_view(view, context_of(d), placement, i, d["timestamp"])
            assert np.array_equal(one, every[i], equal_nan=True)
