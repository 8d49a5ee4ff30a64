"""Whatever breaks, decide answers 200 with the slot's default and a reason.

Redis is really killed (SIGKILL) and really hung (SIGSTOP); the model is really
missing, corrupt or mismatched; the catalog is really absent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pytest

from service.decide.snapshot import LoadedModel
from service.keys import LIVE
from service.local_redis import LocalRedis
from service.settings import DEFAULT_MODEL_DIR
from tests.helpers import catalog_without_randomness, fan_profile, store_profile

VID = "fallback-visitor-000001"
BODY = orjson.dumps({"placements": ["home-hero", "sidebar-offer"], "visitor_id": VID})


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A redis-server this test may kill or freeze."""
    server = LocalRedis(tmp_path / "redis", appendonly=False)
    server.start()
    yield server
    server.stop()


async def post(client: Any) -> dict[str, Any]:
    resp = await client.post("/v1/decide", data=BODY)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


def assert_defaults(body: dict[str, Any], reason: str) -> None:
    hero = body["decisions"]["home-hero"]
    offer = body["decisions"]["sidebar-offer"]
    assert (hero["variant_id"], hero["policy"], hero["fallback"]) == (
        "hero-welcome",
        "fallback",
        reason,
    )
    assert (offer["variant_id"], offer["fallback"]) == ("offer-free-shipping", reason)
    assert hero["content"]["title"] == "Welcome to Summit Sports"


async def metric(client: Any, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def wait_for_personalized(client: Any, timeout_s: float = 5.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        body = await post(client)
        if body["decisions"]["home-hero"]["fallback"] is None:
            return body
        assert loop.time() < deadline, body
        await asyncio.sleep(0.05)


async def test_redis_killed_then_restarted(
    app_client: Any, make_settings: Any, own_redis: LocalRedis, tmp_path: Path
) -> None:
    settings = make_settings(
        redis_url=own_redis.url,
        breaker_cooldown_ms=100.0,
        catalog_path=catalog_without_randomness(tmp_path),
    )
    store_profile(own_redis.url, VID, fan_profile("running"))
    client = await app_client(settings, server=True)
    assert (await post(client))["decisions"]["home-hero"]["variant_id"] == "hero-running"
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGKILL)
    own_redis.process.wait()
    for _ in range(20):
        assert_defaults(await post(client), "redis_unavailable")
    assert await metric(client, "persona_fallbacks_total") >= 40
    assert await metric(client, "persona_redis_errors_total") >= 1
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["checks"]["redis"] is False
    own_redis.start()
    store_profile(own_redis.url, VID, fan_profile("running"))
    body = await wait_for_personalized(client)
    assert body["decisions"]["home-hero"]["variant_id"] == "hero-running"


async def test_redis_hung_times_out_then_breaker_fails_fast(
    app_client: Any, make_settings: Any, own_redis: LocalRedis, tmp_path: Path
) -> None:
    settings = make_settings(
        redis_url=own_redis.url,
        decide_deadline_ms=20.0,
        redis_timeout_ms=10.0,
        breaker_failures=3,
        breaker_cooldown_ms=300.0,
        catalog_path=catalog_without_randomness(tmp_path),
    )
    store_profile(own_redis.url, VID, fan_profile("hiking"))
    client = await app_client(settings, server=True)
    assert (await post(client))["decisions"]["home-hero"]["variant_id"] == "hero-hiking"
    assert own_redis.process is not None
    pid = own_redis.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        reasons = [(await post(client))["decisions"]["home-hero"]["fallback"] for _ in range(8)]
        for r in reasons:
            assert r in {"redis_timeout", "redis_unavailable"}
        assert reasons[:3] == ["redis_timeout"] * 3
        assert reasons[3:] == ["redis_unavailable"] * 5  # breaker open: no more waiting
        assert await metric(client, "persona_redis_breaker_state") == 1.0
    finally:
        os.kill(pid, signal.SIGCONT)
    body = await wait_for_personalized(client)
    assert body["decisions"]["home-hero"]["variant_id"] == "hero-hiking"


async def test_unreachable_redis_at_start(app_client: Any, make_settings: Any) -> None:
    client = await app_client(make_settings(redis_url="redis://127.0.0.1:1/0"), server=True)
    for _ in range(3):
        assert_defaults(await post(client), "redis_unavailable")
    # a new visitor has nothing to read: still personalized on context alone
    resp = await client.post("/v1/decide", data=b'{"placements": ["home-hero"]}')
    assert (await resp.json())["decisions"]["home-hero"]["fallback"] is None


async def test_missing_model(app_client: Any, make_settings: Any, tmp_path: Path) -> None:
    client = await app_client(make_settings(model_dir=tmp_path / "nothing"), server=True)
    assert_defaults(await post(client), "no_model")
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["checks"]["model"] is False
    assert await metric(client, "persona_model_loaded") == 0.0


def copy_bundle(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL_DIR, target)
    return target


async def test_corrupt_model(app_client: Any, make_settings: Any, tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    text = (bundle / "model.txt").read_text()
    (bundle / "model.txt").write_text(text.replace("leaf_value=", "leaf_value=1", 1))
    client = await app_client(make_settings(model_dir=bundle), server=True)
    assert_defaults(await post(client), "no_model")


async def test_model_with_another_schema(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    bundle = copy_bundle(tmp_path)
    manifest = orjson.loads((bundle / "manifest.json").read_bytes())
    manifest["feature_names"] = manifest["feature_names"][:-1]
    (bundle / "manifest.json").write_bytes(orjson.dumps(manifest))
    client = await app_client(make_settings(model_dir=bundle), server=True)
    assert_defaults(await post(client), "no_model")


class FailingPredictor:
    """Fault injection at the scoring boundary: the model raises."""

    kind = "failing"

    def predict(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        raise RuntimeError("model exploded")


async def test_scoring_error(server_client: Any) -> None:
    live = server_client.app[LIVE]
    model = live.current.model
    assert model is not None
    live.publish(model=LoadedModel(FailingPredictor(), model.manifest))
    assert_defaults(await post(server_client), "score_error")


async def test_missing_catalog(app_client: Any, make_settings: Any, tmp_path: Path) -> None:
    client = await app_client(make_settings(catalog_path=tmp_path / "none.json"), server=True)
    body = await post(client)
    for name in ("home-hero", "sidebar-offer"):
        d = body["decisions"][name]
        assert d["fallback"] == "no_catalog" and d["content"] is None
    assert (await client.get("/readyz")).status == 503


class SlowPredictor:
    """Fault injection: a model that takes ``seconds`` per prediction (only for the first
    ``times`` predictions when given: a one-off pause or preempted core)."""

    kind = "slow"

    def __init__(self, inner: Any, seconds: float, times: int | None = None) -> None:
        self.inner = inner
        self.seconds = seconds
        self.times = times

    def predict(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.times is None or self.times > 0:
            self.times = None if self.times is None else self.times - 1
            time.sleep(self.seconds)
        return np.asarray(self.inner.predict(rows), dtype=np.float64)


async def slowed(
    app_client: Any, make_settings: Any, tmp_path: Path, seconds: float, times: int | None
) -> Any:
    """A server's client of an app with a 40 ms deadline whose model is slowed."""
    settings = make_settings(
        decide_deadline_ms=40.0, catalog_path=catalog_without_randomness(tmp_path)
    )
    client = await app_client(settings, server=True)
    live = client.app[LIVE]
    model = live.current.model
    assert model is not None
    live.publish(model=LoadedModel(SlowPredictor(model.predictor, seconds, times), model.manifest))
    return client


async def test_the_deadline_is_kept_by_serving_defaults_for_what_would_end_past_it(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    client = await slowed(app_client, make_settings, tmp_path, 0.015, None)
    names = ["home-hero", "sidebar-offer", "article-footer"]  # 15 ms each, 40 ms to spend
    body = orjson.dumps({"placements": names, "visitor_id": VID})
    resp = await client.post("/v1/decide", data=body)
    assert resp.status == 200
    got = (await resp.json())["decisions"]
    reasons = [got[n]["fallback"] for n in names]
    assert reasons[0] is None  # the first placement fits
    assert "deadline" in reasons  # the rest would have ended past it
    first_late = reasons.index("deadline")
    assert reasons[first_late:] == ["deadline"] * (len(names) - first_late)
    assert all(got[n]["content"] is not None for n in names)  # defaults, never blanks
    assert await metric(client, 'persona_fallbacks_total{reason="deadline"}') >= 1


async def test_one_slow_placement_does_not_stop_the_later_ones_for_good(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    client = await slowed(app_client, make_settings, tmp_path, 0.06, 1)  # one 60 ms stall
    body = orjson.dumps({"placements": ["home-hero"], "visitor_id": VID})
    reasons = []
    for _ in range(12):
        resp = await client.post("/v1/decide", data=body)
        reasons.append((await resp.json())["decisions"]["home-hero"]["fallback"])
    assert reasons[0] is None  # the stalled one itself was served
    assert "deadline" in reasons  # the estimate it left then held the next ones back
    assert reasons[-3:] == [None] * 3, reasons  # and decayed: deciding again
