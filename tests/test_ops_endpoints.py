"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from typing import Any

import orjson

from service.metrics import STAGES


async def test_health_and_ready(client: Any) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"] == {"redis": True, "model": True, "catalog": True}
    assert body["model_version"].startswith("default-")


async def test_metrics_expose_latency_stages_decisions_and_model(client: Any) -> None:
    for _ in range(3):
        await client.post("/v1/decide", data=orjson.dumps({"placements": ["home-hero", "nope"]}))
    await client.post("/v1/decide", data=b"{bad")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'persona_http_request_duration_seconds_bucket{endpoint="/v1/decide",le="0.0001"}' in text
    assert 'persona_http_request_duration_seconds_count{endpoint="/v1/decide"} 4.0' in text
    assert 'persona_http_responses_total{endpoint="/v1/decide",status="400"} 1.0' in text
    for stage in STAGES:
        assert f'persona_decide_stage_duration_seconds_bucket{{le="5e-06",stage="{stage}"}}' in text
    assert 'persona_fallbacks_total{reason="unknown_placement"} 3.0' in text
    assert 'persona_decisions_total{placement="unknown",policy="fallback"} 3.0' in text
    hero = [
        ln
        for ln in text.splitlines()
        if ln.startswith('persona_decisions_total{placement="home-hero"')
    ]
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in hero) == 3.0
    assert "persona_model_info{" in text and 'predictor="lleaves"' in text
    assert "persona_model_loaded 1.0" in text
    assert "persona_redis_errors_total" in text
    assert "persona_catalog_info{" in text
    assert "_created" not in text
