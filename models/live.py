"""The simulator driving the real service over HTTP: visitors view, get decisions, click.

Visitors come from :func:`models.simulator.make_population` (latent tastes,
devices) but start unknown to the service: what it learns about them comes
only from the events this simulator posts, as on a real site. Each step picks
a visitor, a slot and a context, posts the page view, asks ``/v1/decide`` for
the slot, posts the impression, and draws the click (and sometimes a
conversion) from the ground-truth :func:`click_probability`. Because it knows
every variant's true click probability, it reports the oracle's and random's
expected CTR next to the live one, by policy.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from models.simulator import (
    DEFAULT_PARAMS,
    click_probability,
    draw_context,
    make_population,
    make_world,
)

CONSENT = {"X-Persona-Consent": "personalization,analytics"}


@dataclass
class Summary:
    """What a run measured: decisions, clicks and expected CTRs by policy."""

    decisions: int = 0
    clicks: int = 0
    shown_p: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    oracle_p: list[float] = field(default_factory=list)
    random_p: list[float] = field(default_factory=list)
    errors: int = 0

    def report(self) -> dict[str, Any]:
        """Expected CTR (mean true click probability of what was shown) per policy."""
        every = [p for ps in self.shown_p.values() for p in ps]
        return {
            "decisions": self.decisions,
            "clicks": self.clicks,
            "errors": self.errors,
            "ctr_live": round(float(np.mean(every)), 5) if every else None,
            "ctr_by_policy": {k: round(float(np.mean(v)), 5) for k, v in self.shown_p.items()},
            "ctr_oracle": round(float(np.mean(self.oracle_p)), 5) if self.oracle_p else None,
            "ctr_random": round(float(np.mean(self.random_p)), 5) if self.random_p else None,
        }


async def simulate(
    url: str,
    visitors: int,
    decisions: int,
    rate: float,
    seed: int = 1,
    placements: tuple[str, ...] = ("home-hero",),
    progress: bool = False,
) -> Summary:
    """Drive ``decisions`` decisions from ``visitors`` people at ``rate`` per second."""
    rng = np.random.default_rng(seed)
    world = make_world()
    population = make_population(visitors, rng, time.time(), world=world)
    for v in population:
        v.profile = None  # the service learns them from our events only
    slots = [world.catalog.placements[p] for p in placements]
    summary = Summary()
    counter = 0
    started = time.monotonic()
    async with aiohttp.ClientSession(url, headers=CONSENT) as http:
        for step in range(decisions):
            await asyncio.sleep(max(0.0, started + step / rate - time.monotonic()))
            i = int(rng.integers(len(population)))
            visitor = population[i]
            vid = f"sim{seed:04d}-{i:08d}-visitor"
            placement = slots[int(rng.integers(len(slots)))]
            ctx = draw_context(visitor, placement, world, rng)
            counter += 1
            events: list[dict[str, Any]] = [
                {
                    "type": "view",
                    "event_id": f"sim-view-{seed}-{counter:09d}",
                    "visitor_id": vid,
                    "page_type": ctx.page_type,
                    "category": ctx.category,
                }
            ]
            body = {
                "placements": [placement.name],
                "visitor_id": vid,
                "context": {
                    "device": ctx.device,
                    "page_type": ctx.page_type,
                    "category": ctx.category,
                    "local_hour": ctx.hour,
                    "day_of_week": ctx.dow,
                },
            }
            try:
                await _post(http, "/v1/events", {"events": events})
                async with http.post("/v1/decide", json=body) as resp:
                    d = (await resp.json())["decisions"][placement.name]
            except (aiohttp.ClientError, KeyError, ValueError):
                summary.errors += 1
                continue
            now = time.time()
            truth = {
                v.id: click_probability(visitor, v, ctx, None, now, DEFAULT_PARAMS)
                for v in placement.variants
            }
            p = truth[d["variant_id"]]
            summary.decisions += 1
            summary.shown_p[d["policy"]].append(p)
            summary.oracle_p.append(max(truth.values()))
            summary.random_p.append(float(np.mean(list(truth.values()))))
            shown = {
                "decision_id": d["decision_id"],
                "placement": placement.name,
                "variant_id": d["variant_id"],
                "visitor_id": vid,
            }
            follow = [{"type": "impression", "event_id": f"sim-imp-{seed}-{counter:09d}", **shown}]
            if rng.random() < p:
                summary.clicks += 1
                follow.append(
                    {"type": "click", "event_id": f"sim-click-{seed}-{counter:09d}", **shown}
                )
            try:
                await _post(http, "/v1/events", {"events": follow})
            except aiohttp.ClientError:
                summary.errors += 1
            if progress and (step + 1) % max(1, decisions // 20) == 0:
                done = (step + 1) / decisions
                print(f"\r[{'#' * int(done * 30):<30}] {done:4.0%}", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    return summary


async def _post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> None:
    async with http.post(path, json=body) as resp:
        if resp.status >= 400:
            raise aiohttp.ClientResponseError(
                resp.request_info, (), status=resp.status, message=await resp.text()
            )
