"""The simulator drives the real service over HTTP: visits, logins, second devices, outcomes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis

from models.live import Simulation
from service.features.context import Context
from service.store.keyspace import profile_key
from tests.conftest import API_KEY, SITE_SECRET
from tests.helpers import run_persona, wait_for_log


def _alias(r: redis.Redis, visitor_id: str) -> str | None:
    raw = r.get(profile_key(visitor_id))
    doc = orjson.loads(raw) if raw is not None and raw.startswith(b"{") else None
    return doc.get("alias") if isinstance(doc, dict) else None


async def test_simulated_visits_reach_the_service_as_a_site_would_send_them(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    client = await app_client(make_settings())
    url = str(client.make_url("")).rstrip("/")
    sim = Simulation(url, visitors=80, seed=3, api_key=API_KEY, site_secret=SITE_SECRET)
    summary = await sim.run(600, rate=5000.0, concurrency=2)
    report = summary.report()
    assert report["decisions"] == 600 and report["errors"] == 0
    assert report["rejected_events"] == 0
    assert 0 < report["returning_sessions"] < report["sessions"] <= report["page_views"]
    assert report["logins"] > 0 and report["second_device_sessions"] > 0
    assert report["feedback"] > 0 and report["clicks"] > 0
    assert report["ctr_oracle"] > report["ctr_live"] > 0
    assert report["ctr_oracle"] > report["ctr_random"]
    assert set(report["by_policy"]) <= {"model", "explore", "holdout", "fallback"}
    r = redis.Redis.from_url(redis_url)
    kinds = await wait_for_log(redis_url, "decision", 600)
    # every page view, decision and outcome arrived, as many as the simulator reports
    assert kinds["decision"] == 600 and kinds["impression"] == 600
    assert kinds["view"] == report["page_views"]
    assert kinds.get("click", 0) == report["clicks"]
    assert kinds.get("conversion", 0) == report["conversions"]
    assert kinds.get("feedback", 0) == report["feedback"]
    assert kinds["identify"] == report["logins"]
    # a customer who logged in on two devices has one profile behind both cookies
    both = [p for p in sim.people if len(p.logged_in) == 2]
    assert both, "no simulated customer logged in on two devices"
    for person in both:
        first, second = (_alias(r, vid) for vid, _ in person.devices)
        assert first is not None and first == second
    r.close()


def test_fatigue_grows_with_unclicked_impressions_and_fades_over_days() -> None:
    sim = Simulation("http://unused", visitors=5, seed=9)
    person = sim.people[0]
    variant = sim.world.placements[0].variants[1]
    ctx = Context("desktop", "home", None, "direct", 12, 2)
    now = person.clock
    fresh = sim._truth(person, variant, ctx, now)
    for _ in range(6):
        sim._fatigue(person, variant.id, now, +1.0)
    tired = sim._truth(person, variant, ctx, now)
    rested = sim._truth(person, variant, ctx, now + 14 * 86400)
    assert tired < fresh and tired < rested < fresh
    assert abs(rested - fresh) < abs(tired - fresh) / 2


def test_the_seed_alone_fixes_the_people_and_the_site(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Simulation("http://unused", visitors=2000, seed=4)
    later = time.time() + 5400.0
    monkeypatch.setattr(time, "time", lambda: later)  # another hour must not change anything
    again = Simulation("http://unused", visitors=2000, seed=4)
    other = Simulation("http://unused", visitors=40, seed=5)
    assert first.appeal == again.appeal and first.appeal != other.appeal
    assert [p.tastes.prefs for p in first.people] == [p.tastes.prefs for p in again.people]
    assert [p.devices for p in first.people] == [p.devices for p in again.people]
    assert np.std(list(first.appeal.values())) > 0.3  # each variant has its own appeal


def test_ratings_follow_relevance() -> None:
    sim = Simulation("http://unused", visitors=3, seed=6)
    person = sim.people[0]
    placement = sim.world.placements[0]
    best, worst = placement.variants[0], placement.variants[1]
    truth = {best.id: 0.2, worst.id: 0.01}
    decision = {"decision_id": "0" * 27}
    ratings: dict[str, list[int]] = {best.id: [], worst.id: []}
    for _ in range(3000):
        for v in (best, worst):
            events, _ = sim._outcome(person, "vid", decision, v, placement.name, 0.0, truth)
            ratings[v.id] += [e["rating"] for e in events if e["type"] == "feedback"]
    assert len(ratings[best.id]) > 100 and len(ratings[worst.id]) > 100
    assert np.mean(ratings[best.id]) > 5.5 and np.mean(ratings[worst.id]) < 2.5


async def _simulate_command(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``persona simulate`` in this process and return its summary."""
    quiet = {"PERSONA_API_KEYS": "", "PERSONA_SITE_SECRETS": "", "PERSONA_DATA_DIR": ".persona"}
    done = await asyncio.to_thread(run_persona, ["simulate", *args], {**quiet, **env})
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


async def test_the_simulate_command(app_client: Any, make_settings: Any, tmp_path: Path) -> None:
    client = await app_client(make_settings())
    url = str(client.make_url("")).rstrip("/")
    out_file = tmp_path / "summary.json"
    args = ["--url", url, "--visitors", "5", "--decisions", "20", "--rate", "500"]
    report = await _simulate_command(
        [*args, "--out", str(out_file)],
        {"PERSONA_SITE_SECRETS": SITE_SECRET, "PERSONA_API_KEYS": API_KEY},
    )
    assert report["decisions"] == 20 and report["errors"] == 0 and report["ctr_oracle"] > 0
    assert orjson.loads(out_file.read_bytes()) == report


async def test_the_simulate_command_signs_logins_with_a_local_services_secret(
    app_client: Any, make_settings: Any, tmp_path: Path
) -> None:
    client = await app_client(make_settings())
    url = str(client.make_url("")).rstrip("/")
    # what `scripts/run` leaves behind when no secrets are configured
    generated = {"site_secrets": [SITE_SECRET], "api_keys": [API_KEY]}
    (tmp_path / "secrets.json").write_bytes(orjson.dumps(generated))
    args = ["--url", url, "--visitors", "30", "--decisions", "120", "--rate", "2000"]
    report = await _simulate_command(args, {"PERSONA_DATA_DIR": str(tmp_path)})
    assert report["logins"] > 0 and report["errors"] == 0
    assert report["rejected_events"] == 0  # every login's token was accepted
