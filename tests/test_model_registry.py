"""The model registry: CLI registration, activation and rollback under load, mismatches refused."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from service.admin.tokens import TokenStore
from service.settings import DEFAULT_MODEL_DIR
from tests.helpers import (
    CliResult,
    catalog_without_randomness,
    fan_profile,
    logged_decisions,
    run_persona,
    store_profile,
    tiny_bundle,
)
from tests.test_fallbacks import metric


def bundle_copy(tmp_path: Path, version: str, **manifest_changes: Any) -> Path:
    folder = tmp_path / version
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    manifest.update(version=version, **manifest_changes)
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    return folder


def register(redis_url: str, folder: Path) -> CliResult:
    return run_persona(
        ["model", "register", "--dir", str(folder)], {"PERSONA_REDIS_URL": redis_url}
    )


async def test_activate_and_roll_back_under_load_without_a_failed_request(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    for version in ("candidate-2", "candidate-3"):
        done = await asyncio.to_thread(register, redis_url, bundle_copy(tmp_path, version))
        assert done.returncode == 0 and f"registered model {version}" in done.stdout
    again = await asyncio.to_thread(register, redis_url, tmp_path / "candidate-2")
    assert again.returncode == 2 and "registered already" in again.stderr
    mismatched = bundle_copy(tmp_path, "other-schema", schema_hash="0" * 16)
    refused = await asyncio.to_thread(register, redis_url, mismatched)
    assert refused.returncode == 2 and "schema" in refused.stderr

    client = await app_client(make_settings(config_poll_ms=20), server=True)
    r = aioredis.Redis.from_url(redis_url)
    token = await TokenStore(r).create("ml", ["models"])
    await r.aclose()
    auth = {"Authorization": f"Bearer {token}"}
    body = {"placements": ["home-hero"], "visitor_id": "registry-visitor-0000001"}
    seen: list[tuple[int, Any, Any]] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            resp = await client.post("/v1/decide", json=body)
            d = (await resp.json())["decisions"]["home-hero"]
            seen.append((resp.status, d["fallback"], d["model_version"]))

    async def model_now() -> str:
        resp = await client.post("/v1/decide", json=body)
        return str((await resp.json())["decisions"]["home-hero"]["model_version"])

    async def wait_for(version: str) -> None:
        for _ in range(300):
            if await model_now() == version:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{version} never served")

    loops = [asyncio.create_task(traffic()) for _ in range(4)]
    try:
        before = await model_now()
        resp = await client.post("/v1/admin/models/candidate-2/activate", headers=auth)
        assert resp.status == 200
        await wait_for("candidate-2")
        resp = await client.post("/v1/admin/models/rollback", headers=auth)
        assert resp.status == 409  # nothing was active before candidate-2
        assert (
            await client.post("/v1/admin/models/candidate-3/activate", headers=auth)
        ).status == 200
        await wait_for("candidate-3")
        resp = await client.post("/v1/admin/models/rollback", headers=auth)
        assert resp.status == 200 and (await resp.json())["active"] == "candidate-2"
        await wait_for("candidate-2")
    finally:
        stop.set()
        await asyncio.gather(*loops)
    assert len(seen) > 100
    assert all(status == 200 and fallback is None for status, fallback, _ in seen)
    assert {v for _, _, v in seen} >= {before, "candidate-2", "candidate-3"}
    listed = await (await client.get("/v1/admin/models", headers=auth)).json()
    assert listed["active"] == "candidate-2"
    assert {m["version"]: m["active"] for m in listed["models"]} == {
        "candidate-2": True,
        "candidate-3": False,
    }
    unknown = await client.post("/v1/admin/models/nope/activate", headers=auth)
    assert unknown.status == 404


async def test_a_shadow_model_is_scored_and_logged_but_never_shown(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    import lightgbm

    folder = tiny_bundle(tmp_path, "tiny-shadow")
    assert (await asyncio.to_thread(register, redis_url, folder)).returncode == 0
    catalog_path = catalog_without_randomness(tmp_path)
    client = await app_client(
        make_settings(config_poll_ms=20, catalog_path=catalog_path), server=True
    )
    r = aioredis.Redis.from_url(redis_url)
    token = await TokenStore(r).create("ml", ["models"])
    await r.aclose()
    auth = {"Authorization": f"Bearer {token}"}
    vid = "shadowed-visitor-0000001"
    store_profile(redis_url, vid, fan_profile("yoga"))
    body = {"placements": ["home-hero"], "visitor_id": vid, "include_scores": True}
    assert (await client.post("/v1/admin/models/tiny-shadow/shadow", headers=auth)).status == 200
    for _ in range(300):
        served = (await (await client.post("/v1/decide", json=body)).json())["decisions"]
        await asyncio.sleep(0.01)
        shadowed = [e for e in logged_decisions(redis_url) if e.get("shadow")]
        if shadowed:
            break
    e = shadowed[-1]
    assert e["shadow"]["model_version"] == "tiny-shadow"
    assert e["model_version"] != "tiny-shadow" and e["policy"] == "model"
    live = dict(zip(e["candidates"], e["scores"], strict=True))
    assert max(live, key=live.__getitem__) == e["variant_id"]  # the live model chose
    # the shadow scores are the tiny model's scores of the very rows served
    from service.catalog.loader import parse_catalog
    from service.decide.record import context_of
    from service.features.builder import rows_for_view, visitor_view

    placement = parse_catalog(catalog_path.read_bytes()).placements["home-hero"]
    rows = rows_for_view(
        visitor_view(e["profile"], e["timestamp"], 14 * 86400),
        context_of(e),
        placement,
        e["timestamp"],
    )
    tiny = lightgbm.Booster(model_file=str(folder / "model.txt")).predict(rows)
    ids = [v.id for v in placement.variants]
    expected = [float(tiny[ids.index(c)]) for c in e["candidates"]]
    assert e["shadow"]["scores"] == pytest.approx(expected, abs=1e-9)
    assert e["shadow"]["scores"] != e["scores"]
    assert "shadow" not in served["home-hero"]  # never in the answer
    # every shadowed decision is counted by whether the shadow would have served the same
    await asyncio.sleep(0.2)
    agree = disagree = 0
    for logged in logged_decisions(redis_url):
        if logged.get("shadow"):
            shadow_scores = dict(zip(logged["candidates"], logged["shadow"]["scores"], strict=True))
            if max(shadow_scores, key=shadow_scores.__getitem__) == logged["variant_id"]:
                agree += 1
            else:
                disagree += 1
    assert await metric(client, 'persona_shadow_decisions_total{agreement="agree"}') == agree
    assert await metric(client, 'persona_shadow_decisions_total{agreement="disagree"}') == disagree
    listed = await (await client.get("/v1/admin/models", headers=auth)).json()
    assert listed["shadow"] == "tiny-shadow"
    assert (await client.delete("/v1/admin/models/shadow", headers=auth)).status == 200
    await asyncio.sleep(0.2)
    count = len(logged_decisions(redis_url))
    await client.post("/v1/decide", json=body)
    await asyncio.sleep(0.1)
    assert logged_decisions(redis_url)[-1:] and all(
        e.get("shadow") is None for e in logged_decisions(redis_url)[count:]
    )
