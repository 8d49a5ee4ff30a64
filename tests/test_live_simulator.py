"""The simulator drives the real service over HTTP and reports CTRs against the oracle."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson
import redis

from models.live import simulate
from service.events.store import log_key
from service.features.profile import PARTITIONS
from service.settings import REPO_DIR


async def test_simulated_visitors_are_learned_from_their_events_and_measured(
    app_client: Any, make_settings: Any, redis_url: str
) -> None:
    client = await app_client(make_settings())
    url = str(client.make_url("")).rstrip("/")
    summary = await simulate(url, visitors=40, decisions=300, rate=2000.0, seed=3)
    report = summary.report()
    assert report["decisions"] == 300 and report["errors"] == 0
    assert report["ctr_oracle"] > report["ctr_live"] > 0
    assert report["ctr_oracle"] > report["ctr_random"]
    assert set(report["ctr_by_policy"]) <= {"model", "explore", "holdout"}
    r = redis.Redis.from_url(redis_url)
    kinds: dict[str, int] = {}
    for p in range(PARTITIONS):
        for _, fields in r.xrange(log_key(p)):
            kind = fields[b"e"].split(b'"type":"', 1)[1].split(b'"', 1)[0].decode()
            kinds[kind] = kinds.get(kind, 0) + 1
    # every decision was logged, and the page views and impressions came in as events
    assert kinds["decision"] == 300 and kinds["view"] == 300 and kinds["impression"] == 300
    assert kinds.get("click", 0) == summary.clicks
    profiles = [k for k in r.scan_iter("persona:*:profile:sim0003-*")]
    assert 0 < len(profiles) <= 40  # the service built profiles from the posted views
    r.close()


async def test_the_simulate_command(app_client: Any, make_settings: Any) -> None:
    client = await app_client(make_settings())
    url = str(client.make_url("")).rstrip("/")
    args = ["--url", url, "--visitors", "5", "--decisions", "20", "--rate", "500"]
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "simulate",
        *args,
        cwd=REPO_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(done.communicate(), 120)
    assert done.returncode == 0, err.decode()
    report = orjson.loads(out)
    assert report["decisions"] == 20 and report["errors"] == 0 and report["ctr_oracle"] > 0
