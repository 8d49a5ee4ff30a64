"""The learning loop closes: simulate, train, evaluate, activate, simulate raises the live CTR."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import redis

from models.live import LIVE_PARAMS
from models.loop import LoopConfig, run_loop
from tests.conftest import API_KEY, SITE_SECRET
from tests.served import served


def test_one_turn_of_the_loop_beats_the_bundled_model_on_the_same_requests(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "PERSONA_SITE_SECRETS": SITE_SECRET, "PERSONA_API_KEYS": API_KEY}
    with served(env, tmp_path, ["config:read", "config:write", "publish", "models"]) as s:
        # a small turn: a site whose creatives differ clearly (appeal spread 1.0 log-odds)
        # makes the direction certain at this size; the full-size benchmark uses 0.6
        config = LoopConfig(
            visitors=800,
            decisions=8000,
            rate=2000.0,
            seed=14,
            live=dataclasses.replace(LIVE_PARAMS, appeal_sigma=1.0),
            # the validation window is ~1,600 decisions here: its SNIPS estimates are a
            # couple of points wide, so the flag tolerates what that noise can do
            margin=0.02,
        )
        report = asyncio.run(
            run_loop(
                f"http://127.0.0.1:{s.port}",
                s.redis_url,
                s.token,
                config,
                tmp_path,
                api_key=API_KEY,
                site_secret=SITE_SECRET,
                env=env,
            )
        ).to_json()
        models = redis.Redis.from_url(s.redis_url).get("persona:models:active")
    before, after = report["before"], report["after"]
    assert before["errors"] == 0 and after["errors"] == 0
    # the trained model is live, and the bundled one ran in shadow on the same requests
    assert models is not None and models.decode() == report["model_version"]
    assert report["baseline_version"].startswith("default-")
    paired = report["new_vs_old_on_same_requests"]
    assert paired["decisions"] > 0.6 * after["by_policy"]["model"]["decisions"]
    assert paired["difference_ci"][0] > 0, paired  # better, beyond noise
    # the model's choices come closer to the oracle's than the bundled model's did
    assert (
        after["by_policy"]["model"]["share_of_oracle"]
        > before["by_policy"]["model"]["share_of_oracle"]
    )
    assert after["by_policy"]["model"]["lift_over_random"] > 1.5
    # offline evaluation judged it on decisions it did not train on, and did not flag it
    evaluation = report["evaluation"]
    assert not evaluation["flagged"]
    assert evaluation["decisions"] < 0.3 * (2 * config.decisions)
    estimates = evaluation["estimates"]
    assert estimates["candidate"]["snips"]["value"] > estimates["random"]["snips"]["value"]
