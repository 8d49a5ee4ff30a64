"""The model registry: CLI registration, activation and rollback under load, mismatches refused."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from service.admin.tokens import TokenStore
from service.settings import DEFAULT_MODEL_DIR, REPO_DIR


def bundle_copy(tmp_path: Path, version: str, **manifest_changes: Any) -> Path:
    folder = tmp_path / version
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    manifest.update(version=version, **manifest_changes)
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    return folder


def register(redis_url: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "model", "register", "--dir", str(folder)],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
        env={**os.environ, "PERSONA_REDIS_URL": redis_url},
        timeout=120,
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

    client = await app_client(make_settings(config_poll_ms=20))
    r = aioredis.Redis.from_url(redis_url)
    token = await TokenStore(r).create("ml", ["models"])
    await r.aclose()
    auth = {"Authorization": f"Bearer {token}"}
    body = {"placements": ["home-hero"], "visitor_id": "registry-visitor-01"}
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
