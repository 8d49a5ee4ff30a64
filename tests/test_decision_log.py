"""Decisions are logged with what they were built from: training rebuilds the same rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from service.catalog.loader import parse_catalog
from service.decide.choice import choose, draws
from service.decide.record import context_of
from service.features.builder import rows_for_view, visitor_view
from service.features.profile import decode_profile
from service.keys import LIVE
from service.store.keyspace import log_key, partition, profile_key
from tests.helpers import (
    catalog_without_randomness,
    exploring_catalog,
    fan_profile,
    logged_decisions,
    store_profile,
)

VID = "logged-visitor-0000000001"


async def wait_logged(url: str, n: int) -> list[dict[str, Any]]:
    for _ in range(500):  # a hang guard: the write is not awaited by the request
        found = logged_decisions(url)
        if len(found) >= n:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {n} logged decisions, found {len(logged_decisions(url))}")


async def test_rows_rebuilt_from_the_log_score_exactly_as_served(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    catalog_path = catalog_without_randomness(tmp_path)
    client = await app_client(make_settings(catalog_path=catalog_path), server=True)
    store_profile(redis_url, VID, fan_profile("hiking"))
    body = {
        "placements": ["home-hero", "sidebar-offer"],
        "visitor_id": VID,
        "include_scores": True,
        "context": {"device": "mobile", "page_type": "category", "category": "hiking"},
    }
    served = (await (await client.post("/v1/decide", json=body)).json())["decisions"]
    # later events change the stored profile: they must not leak into the rebuilt rows
    events = [
        {"type": "view", "event_id": f"later-{i:04d}", "visitor_id": VID, "category": "yoga"}
        for i in range(30)
    ]
    assert (await client.post("/v1/events", json={"events": events})).status == 202
    logged = await wait_logged(redis_url, 2)
    by_slot = {e["placement"]: e for e in logged}
    model = client.app[LIVE].current.model
    catalog = parse_catalog(catalog_path.read_bytes())
    half_life = make_settings().affinity_half_life_days * 86400
    for slot, e in by_slot.items():
        d = served[slot]
        assert e["_visitor"] == VID and e["_partition"] == partition(VID)
        assert e["decision_id"] == d["decision_id"] and e["variant_id"] == d["variant_id"]
        assert e["policy"] == "model" and e["propensity"] == d["propensity"] == 1.0
        assert e["catalog_version"] == catalog.version
        assert sorted(e["candidates"]) == sorted(s["variant_id"] for s in d["scores"])
        placement = catalog.placements[slot]
        view = visitor_view(e["profile"], e["timestamp"], half_life)
        rows = rows_for_view(view, context_of(e), placement, e["timestamp"])
        rebuilt = np.asarray(model.predictor.predict(rows), dtype=np.float64)
        order = [v.id for v in placement.variants]
        logged_scores = dict(zip(e["candidates"], e["scores"], strict=True))
        assert [logged_scores[v] for v in order] == list(rebuilt)  # bit for bit
        # the profile as it is now would give other rows: the snapshot is what matters
        now_profile = decode_profile(redis.Redis.from_url(redis_url).get(profile_key(VID)))
        assert now_profile is not None and now_profile["views"] > e["profile"]["views"]


async def test_nothing_is_logged_without_consent_or_when_disabled(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    body = {"placements": ["home-hero"], "visitor_id": VID}
    refused = await app_client(make_settings(), consent="none", server=True)
    assert (await refused.post("/v1/decide", json=body)).status == 200
    off = await app_client(make_settings(log_decisions=False), server=True)
    assert (await off.post("/v1/decide", json=body)).status == 200
    on = await app_client(make_settings(), server=True)
    assert (await on.post("/v1/decide", json=body)).status == 200
    await wait_logged(redis_url, 1)
    await asyncio.sleep(0.05)
    assert len(logged_decisions(redis_url)) == 1  # only the consenting, enabled call


async def test_a_decision_logged_while_redis_is_unreachable_is_retried(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from service.decide.record import DecisionRecorder
    from service.local_redis import LocalRedis, free_port
    from service.metrics import Metrics
    from service.store.resp import PipelinedConnection

    port = free_port()
    conn = PipelinedConnection(f"redis://127.0.0.1:{port}/0", 0.25)
    recorder = DecisionRecorder(conn, Metrics(CollectorRegistry()), 1000, 1.0)
    recorder.record(VID, lambda: [{"type": "decision", "decision_id": "d1", "timestamp": 1.0}])
    await asyncio.sleep(0.02)  # the first attempt finds nothing listening
    server = LocalRedis(tmp_path / "redis", port=port, appendonly=False)
    await asyncio.to_thread(server.start)
    try:
        await recorder.drain()
        r = redis.Redis.from_url(server.url)
        assert r.xlen(log_key(partition(VID))) == 1
        r.close()
    finally:
        await conn.aclose()
        server.stop()


async def test_every_logged_choice_replays_from_its_decision_id(
    app_client: Any, make_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    catalog_path = exploring_catalog(tmp_path)
    client = await app_client(make_settings(catalog_path=catalog_path), server=True)
    for i in range(120):
        vid = f"replay-visitor-{i % 12:08d}"
        body = {"placements": ["home-hero", "sidebar-offer"], "visitor_id": vid}
        assert (await client.post("/v1/decide", json=body)).status == 200
    logged = await wait_logged(redis_url, 240)
    policies = set()
    for e in logged:
        choice = choose(np.array(e["scores"]), e["explore_share"], *draws(e["decision_id"]))
        assert e["candidates"][choice.index] == e["variant_id"]
        assert (choice.policy, choice.propensity) == (e["policy"], e["propensity"])
        policies.add(e["policy"])
    assert policies == {"model", "explore"}  # both kinds of choice were replayed


async def test_entries_queued_within_the_window_go_out_together_and_drain_flushes_them(
    redis_url: str,
) -> None:
    from prometheus_client import CollectorRegistry

    from service.decide.record import FLUSH_S, DecisionRecorder
    from service.metrics import Metrics
    from service.store.resp import PipelinedConnection

    conn = PipelinedConnection(redis_url, 1.0)
    recorder = DecisionRecorder(conn, Metrics(CollectorRegistry()), 1000, 1.0)
    r = redis.Redis.from_url(redis_url)
    try:
        for i in range(5):
            recorder.record(
                VID, lambda i=i: [{"type": "decision", "decision_id": f"g{i}", "timestamp": 1.0}]
            )
        assert r.xlen(log_key(partition(VID))) == 0  # queued, not yet written
        await asyncio.sleep(FLUSH_S * 10)
        assert r.xlen(log_key(partition(VID))) == 5  # one write after the window
        assert not recorder._pending
        recorder.record(
            VID, lambda: [{"type": "decision", "decision_id": "late", "timestamp": 1.0}]
        )
        await recorder.drain()  # at shutdown: nothing queued is left behind
        assert r.xlen(log_key(partition(VID))) == 6
    finally:
        r.close()
        await conn.aclose()


async def test_entries_are_built_when_written_not_while_the_request_waits(
    redis_url: str,
) -> None:
    from prometheus_client import CollectorRegistry

    from service.decide.record import DecisionRecorder
    from service.metrics import Metrics
    from service.store.resp import PipelinedConnection

    conn = PipelinedConnection(redis_url, 1.0)
    metrics = Metrics(CollectorRegistry())
    recorder = DecisionRecorder(conn, metrics, 1000, 1.0)
    built: list[str] = []

    def build(decision_id: str) -> list[dict[str, Any]]:
        built.append(decision_id)
        return [{"type": "decision", "decision_id": decision_id, "timestamp": 1.0}]

    def broken() -> list[dict[str, Any]]:
        raise ValueError("cannot build")

    r = redis.Redis.from_url(redis_url)
    try:
        recorder.record(VID, lambda: build("b1"))
        recorder.record(VID, broken)
        recorder.record(VID, lambda: build("b2"))
        assert built == []  # nothing built or encoded on the request's time
        await recorder.drain()
        assert built == ["b1", "b2"]
        entries = r.xrange(log_key(partition(VID)))
        assert [orjson.loads(fields[b"e"])["decision_id"] for _, fields in entries] == ["b1", "b2"]
        failed = metrics.registry.get_sample_value(
            "persona_decisions_logged_total", {"outcome": "failed"}
        )
        assert failed == 1.0  # the broken one is counted, the others still written
    finally:
        r.close()
        await conn.aclose()
