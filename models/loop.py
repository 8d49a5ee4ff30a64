"""One turn of the learning loop on a running service: simulate, train, evaluate, activate.

Everything goes through the product's own doors: the exploration share is set
and published with the admin API, training and evaluation are the ``persona
train`` and ``persona evaluate --json`` commands, the bundle is registered
with ``persona model register`` and activated with the admin API, and the
same simulated population (tastes, devices, what they saw) visits before and
after. The report compares, on the simulator's ground truth, the click rate of
the bundled model and of the newly trained one with the oracle's and
random's, and the offline estimate of the new model's click rate (IPS, SNIPS
from the first run's log) with what it then measured online.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

from models.fromlog import read_log
from models.live import LIVE_PARAMS, LiveParams, Simulation, Summary
from service.settings import REPO_DIR
from service.store.address import redis_client_for


@dataclass(frozen=True)
class LoopConfig:
    """The size of one turn."""

    visitors: int
    decisions: int
    """Decisions in each of the two measured runs."""
    rate: float
    warmup: int | None = None
    """Decisions before the first measured run (default: as many): the population settles
    (returning visitors, fatigue) and the log grows; training reads both."""
    seed: int = 1
    explore_share: float | None = 0.2
    """Set on every slot before the first run (``None``: leave the configuration as is)."""
    concurrency: int = 4
    attribution_s: float = 1800.0
    margin: float = 0.0
    live: LiveParams = LIVE_PARAMS
    baseline_dir: Path = REPO_DIR / "models" / "default"
    """Where the model serving before the turn comes from (registered to run in shadow)."""


@dataclass
class LoopReport:
    """What one turn measured."""

    before: Summary
    after: Summary
    evaluation: dict[str, Any]
    baseline_version: str
    model_version: str
    counterfactual: dict[str, Any]
    train_output: str
    seconds: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """Both runs, the offline evaluation, the paired comparison and the online check."""
        return {
            "baseline_version": self.baseline_version,
            "model_version": self.model_version,
            "before": self.before.report(),
            "after": self.after.report(),
            "evaluation": self.evaluation,
            "new_vs_old_on_same_requests": self.counterfactual,
            "online_vs_offline": online_vs_offline(self.after, self.evaluation),
            "train_output": self.train_output,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }


def online_vs_offline(after: Summary, evaluation: dict[str, Any]) -> dict[str, Any]:
    """The new model's decisions' click rate online (95 % interval) next to IPS and SNIPS."""
    model = [x for x in after.shown if x.policy == "model"]
    n, clicks = len(model), sum(x.clicked for x in model)
    rate = clicks / n if n else 0.0
    half = 1.96 * math.sqrt(rate * (1 - rate) / n) if n else 0.0
    ips = evaluation["estimates"]["candidate"]["ips"]
    snips = evaluation["estimates"]["candidate"]["snips"]
    return {
        "online_clicks": clicks,
        "online_decisions": n,
        "online_ctr": round(rate, 5),
        "online_ci": [round(rate - half, 5), round(rate + half, 5)],
        "offline_ips": ips,
        "offline_snips": snips,
        "online_within_ips_ci": ips["low"] <= rate <= ips["high"],
        "online_within_snips_ci": snips["low"] <= rate <= snips["high"],
    }


def counterfactual(
    after: Summary, entries: list[dict[str, Any]], before: Summary | None = None
) -> dict[str, Any]:
    """On the same requests: the true click rate of the new model's choices and the old one's.

    While the new model is live the old one runs in shadow, so each logged
    decision carries the old model's scores of the same candidates; its
    choice is their best, and the simulator knows the true click probability
    of both choices. The difference is paired (same person, same moment), so
    its interval is narrow and nothing else changed between the two. With
    ``before``, the popularity policy (the variant with the best click rate
    in that run) is scored the same way, next to random and the oracle.
    """
    popularity: dict[str, float] = {}
    if before is not None:
        shows: dict[str, int] = {}
        hits: dict[str, int] = {}
        for x in before.shown:
            shows[x.variant_id] = shows.get(x.variant_id, 0) + 1
            hits[x.variant_id] = hits.get(x.variant_id, 0) + x.clicked
        popularity = {v: hits[v] / n for v, n in shows.items()}
    truth = {x.decision_id: x for x in after.shown if x.policy == "model"}
    rows: dict[str, list[float]] = {k: [] for k in ("new", "old", "popularity", "random", "oracle")}
    for e in entries:
        shown = truth.get(str(e.get("decision_id")))
        shadow = e.get("shadow")
        if e.get("type") != "decision" or shown is None or not shadow:
            continue
        candidates = [c for c in e["candidates"] if c in shown.truth]
        old_choice = e["candidates"][int(np.argmax(shadow["scores"]))]
        if old_choice not in shown.truth or not candidates:
            continue
        p = shown.truth
        rows["new"].append(p[shown.variant_id])
        rows["old"].append(p[old_choice])
        rows["popularity"].append(p[max(candidates, key=lambda c: popularity.get(c, 0.0))])
        rows["random"].append(float(np.mean([p[c] for c in candidates])))
        rows["oracle"].append(max(p[c] for c in candidates))
    if not rows["new"]:
        return {"decisions": 0}
    diff = np.array(rows["new"]) - np.array(rows["old"])
    mean = float(diff.mean())
    half = 1.96 * float(diff.std(ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
    out: dict[str, Any] = {"decisions": len(diff)}
    out.update({f"ctr_{k}": round(float(np.mean(v)), 5) for k, v in rows.items()})
    if before is None:
        del out["ctr_popularity"]
    out.update(
        {
            "difference": round(mean, 5),
            "difference_ci": [round(mean - half, 5), round(mean + half, 5)],
            "same_choice_share": round(float(np.mean(diff == 0.0)), 4),
        }
    )
    return out


async def run_loop(
    url: str,
    redis_url: str,
    admin_token: str,
    config: LoopConfig,
    workdir: Path,
    *,
    api_key: str | None = None,
    site_secret: str | None = None,
    env: dict[str, str] | None = None,
    progress: bool = False,
) -> LoopReport:
    """Run one turn of the loop against the service at ``url`` (its Redis at ``redis_url``)."""
    seconds: dict[str, float] = {}
    auth = {"Authorization": f"Bearer {admin_token}"}
    child_env = {**os.environ, **(env or {}), "PERSONA_REDIS_URL": redis_url}
    if config.explore_share is not None:
        await set_explore_share(url, auth, config.explore_share)
    baseline = await serving_version(url)
    sim = Simulation(
        url,
        config.visitors,
        config.seed,
        api_key=api_key,
        site_secret=site_secret,
        live=config.live,
    )
    since = time.time()
    clock = time.monotonic()
    warmup = config.decisions if config.warmup is None else config.warmup
    if warmup:
        await sim.run(warmup, config.rate, config.concurrency, progress)
    seconds["warmup"] = time.monotonic() - clock
    clock = time.monotonic()
    before = await sim.run(config.decisions, config.rate, config.concurrency, progress)
    seconds["simulate_before"] = time.monotonic() - clock
    await asyncio.sleep(0.5)  # the decision log's writes are not awaited by the requests
    bundle = workdir / "candidate"
    window = ["--since", f"{since:.3f}", "--attribution-s", str(config.attribution_s)]
    clock = time.monotonic()
    trained = _persona(["train", "--out", str(bundle), *window], child_env)
    seconds["train"] = time.monotonic() - clock
    clock = time.monotonic()
    evaluated = _persona(
        ["evaluate", "--model", str(bundle), "--json", "--margin", str(config.margin), *window],
        child_env,
        ok=(0, 3),
    )
    seconds["evaluate"] = time.monotonic() - clock
    evaluation = orjson.loads(evaluated)
    version = str(evaluation["candidate"])
    _persona(["model", "register", "--dir", str(bundle), "--by", "loop"], child_env)
    if not await registered(url, auth, baseline):
        _persona(
            ["model", "register", "--dir", str(config.baseline_dir), "--by", "loop"], child_env
        )
    await activate(url, auth, version)
    await shadow(url, auth, baseline)
    after_since = time.time()
    clock = time.monotonic()
    after = await sim.run(config.decisions, config.rate, config.concurrency, progress)
    seconds["simulate_after"] = time.monotonic() - clock
    await asyncio.sleep(0.5)
    client = redis_client_for(redis_url, timeout_s=60)
    try:
        entries = await read_log(client, after_since)
    finally:
        await client.aclose()
    return LoopReport(
        before=before,
        after=after,
        evaluation=evaluation,
        baseline_version=baseline,
        model_version=version,
        counterfactual=counterfactual(after, entries, before),
        train_output=trained.strip(),
        seconds=seconds,
    )


def _persona(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode not in ok:
        raise RuntimeError(f"persona {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


async def set_explore_share(url: str, auth: dict[str, str], share: float) -> None:
    """Set every slot's exploration share in the draft, publish it, and let it propagate."""
    async with aiohttp.ClientSession(url, headers=auth) as http:
        async with http.get("/v1/admin/config") as resp:
            resp.raise_for_status()
            doc = await resp.json()
            headers = {"If-Match": resp.headers["ETag"]}
        for placement in doc["placements"]:
            placement["explore_share"] = share
        async with http.put(
            "/v1/admin/config?message=loop+exploration", json=doc, headers=headers
        ) as resp:
            resp.raise_for_status()
        async with http.post("/v1/admin/publish") as resp:
            resp.raise_for_status()
    await asyncio.sleep(1.5)  # every process polls the live pointer (250 ms by default)


async def serving_version(url: str) -> str:
    """The model version the service reports in ``/readyz``."""
    async with aiohttp.ClientSession(url) as http, http.get("/readyz") as resp:
        return str((await resp.json())["model_version"])


async def registered(url: str, auth: dict[str, str], version: str) -> bool:
    """Whether the registry holds ``version``."""
    async with (
        aiohttp.ClientSession(url, headers=auth) as http,
        http.get("/v1/admin/models") as resp,
    ):
        resp.raise_for_status()
        listing = await resp.json()
    return any(m.get("version") == version for m in listing["models"])


async def shadow(url: str, auth: dict[str, str], version: str) -> None:
    """Score ``version`` in shadow from now on; wait until the service does."""
    await _admin_post(url, auth, f"/v1/admin/models/{version}/shadow")
    await wait_ready(url, {"shadow_version": version})


async def wait_ready(url: str, wanted: dict[str, str], timeout_s: float = 120) -> None:
    """Wait until ``/readyz`` reports every field of ``wanted``."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(url) as http:
        while time.monotonic() < deadline:
            async with http.get("/readyz") as resp:
                body = await resp.json()
            if all(body.get(k) == v for k, v in wanted.items()):
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the service did not report {wanted} within {timeout_s} s")


async def activate(url: str, auth: dict[str, str], version: str) -> None:
    """Activate ``version`` in the registry; wait until it serves from its compiled form."""
    await _admin_post(url, auth, f"/v1/admin/models/{version}/activate")
    await wait_ready(url, {"model_version": version, "model_predictor": "lleaves"})


async def _admin_post(url: str, auth: dict[str, str], path: str) -> None:
    async with (
        aiohttp.ClientSession(url, headers=auth) as http,
        http.post(path) as resp,
    ):
        if resp.status != 200:
            raise RuntimeError(f"POST {path} failed: {resp.status} {await resp.text()}")
