"""The decision core: one Redis read → features → score → choose, within the deadline.

Transport-neutral: the HTTP handlers parse and serialize, this module decides.
It reads the live snapshot once per request, the person's profile once (the
only I/O), then decides each placement with :func:`decide_placement`. Every
failure on the way becomes the slot's default with a ``fallback`` reason, and
a request that runs past ``PERSONA_DECIDE_DEADLINE_MS`` gets the default for
what is left (``fallback: "deadline"``); nothing here raises to the caller.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any

import numpy as np

from service.audiences.facts import facts_for
from service.catalog.model import Catalog
from service.decide.decider import Inputs, decide_placement, default_decision, unknown_decision
from service.decide.eligibility import Facts
from service.decide.record import DecisionRecorder, entry
from service.decide.snapshot import Live, Snapshot
from service.decide.types import DecideRequest, Decision, StageTimes
from service.features.builder import VisitorView, visitor_view
from service.features.context import Context
from service.features.profile import decode_profile
from service.metrics import Metrics
from service.store.errors import StoreError
from service.store.profiles import ProfileStore

log = logging.getLogger(__name__)

SCORING_RESERVE_S = 0.0005
"""Time kept back from the Redis read for features and scoring."""
COST_WEIGHT = 0.1
"""What deciding one placement costs is a moving average (this weight for the newest),
so one pause of the host does not make the next requests give up."""


def _entries(
    decisions: list[Decision], ctx: Context, stored: bytes | None, now: float, catalog: Catalog
) -> list[dict[str, Any]]:
    """The log entries of one request's decisions (built after the answer has gone)."""
    return [
        entry(d, ctx, stored, now, catalog.version, catalog.placements[d.placement].explore_share)
        for d in decisions
        if d.placement in catalog.placements
    ]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's knobs, taken from the settings."""

    deadline_s: float
    redis_timeout_s: float
    half_life_s: float
    holdout_seed: str


class DecisionEngine:
    """Makes decisions against the live snapshot."""

    def __init__(
        self,
        config: EngineConfig,
        store: ProfileStore,
        metrics: Metrics,
        live: Live,
        recorder: DecisionRecorder | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._metrics = metrics
        self._live = live
        self._recorder = recorder
        self._clock = clock
        self._rng = rng or random.Random()
        self._cost_s: float | None = None  # what deciding one placement has been costing

    def new_decision_id(self, now: float) -> str:
        """A time-ordered, unique decision id (27 hex characters)."""
        return f"{int(now * 1000):011x}{self._rng.getrandbits(64):016x}"

    async def _read_profile(
        self, visitor_id: str, started: float
    ) -> tuple[Any, bytes | None, str | None, float]:
        """The profile, its stored bytes (when it decoded), a fallback reason, the time."""
        cfg = self._config
        t = perf_counter()
        deadline = min(t + cfg.redis_timeout_s, started + cfg.deadline_s - SCORING_RESERVE_S)
        try:
            raw = await self._store.read(visitor_id, max(deadline, t + 0.0001))
        except StoreError as exc:
            self._metrics.redis_errors.labels(exc.reason).inc()
            return None, None, exc.reason, perf_counter() - t
        profile = decode_profile(raw)
        if profile is None or "alias" in profile:
            if raw is not None and profile is None:
                self._metrics.profile_decode_errors.inc()
            return None, None, None, perf_counter() - t
        return profile, raw, None, perf_counter() - t

    async def decide(
        self, req: DecideRequest, started: float, explain: bool = False
    ) -> tuple[list[Decision], StageTimes]:
        """Decide every requested placement within the deadline; never raises.

        ``started`` is when the request's service time began (``perf_counter``).
        With ``explain`` each decision carries why it came out as it did.
        """
        now = self._clock()
        snap = self._live.current
        catalog = snap.catalog
        wanted = catalog is not None and any(p in catalog.placements for p in req.placements)
        profile = stored = reason = None
        redis_s = 0.0
        if wanted and req.identity.known and req.identity.visitor_id is not None:
            profile, stored, reason, redis_s = await self._read_profile(
                req.identity.visitor_id, started
            )
        vid = req.identity.visitor_id
        inputs: Inputs | None = None  # the same for every placement: built once, when needed
        features_s = score_s = 0.0
        decisions: list[Decision] = []
        deadline = started + self._config.deadline_s
        for name in req.placements:
            decision_id = self.new_decision_id(now)
            placement = catalog.placements.get(name) if catalog is not None else None
            if placement is None:
                why = "unknown_placement" if catalog is not None else "no_catalog"
                decisions.append(self._counted(unknown_decision(name, why, decision_id)))
                continue
            t0 = perf_counter()
            cost = self._cost_s or 0.0
            if t0 + cost >= deadline:  # it would end past it: do not start
                if t0 < deadline:
                    # only the estimate said no: let it decay, or one slow placement (a
                    # pause, a preempted core) would stop every later one from running
                    self._cost_s = cost * (1 - COST_WEIGHT)
                late = default_decision(placement, "fallback", "deadline", decision_id, snap.model)
                decisions.append(self._counted(late))
                continue
            if inputs is None:
                view = visitor_view(profile, now, self._config.half_life_s)
                inputs = Inputs(
                    view=view,
                    facts=_facts_once(view, req.context),
                    context=req.context,
                    visitor_id=vid,
                    now=now,
                    holdout_seed=self._config.holdout_seed,
                    failure=reason,
                    include_scores=req.include_scores,
                    explain=explain,
                )
            outcome = decide_placement(snap, placement, inputs, decision_id, self._rng.random())
            spent = min(perf_counter() - t0, self._config.deadline_s)
            known = self._cost_s
            self._cost_s = spent if known is None else known + COST_WEIGHT * (spent - known)
            features_s += outcome.features_s
            score_s += outcome.score_s
            decision = outcome.decision
            if snap.shadow is not None and self._recorder is not None and vid and outcome.keep:
                decision = self._with_shadow(decision, snap, outcome.rows, outcome.keep)
            decisions.append(self._counted(decision))
        if self._recorder is not None and vid is not None and catalog is not None:
            self._recorder.record(
                vid, partial(_entries, decisions, req.context, stored, now, catalog)
            )
        return decisions, StageTimes(redis=redis_s, features=features_s, score=score_s)

    def _counted(self, decision: Decision) -> Decision:
        name = decision.placement if decision.variant_id is not None else "unknown"
        self._metrics.decision(name, decision.policy).inc()
        if decision.fallback is not None:
            self._metrics.fallback[decision.fallback].inc()
        return decision

    def _with_shadow(
        self, decision: Decision, snap: Snapshot, rows: Any, keep: list[int]
    ) -> Decision:
        """The decision with the shadow model's scores of its candidates (logged, not used),
        counted by whether the shadow model would have ranked the served variant first."""
        shadow = snap.shadow
        assert shadow is not None
        if decision.policy not in ("model", "explore"):
            return decision
        try:
            values = np.asarray(shadow.predictor.predict(rows), dtype=np.float64)
        except Exception:
            log.exception("shadow model %s failed", shadow.manifest.version)
            return decision
        scores = tuple(float(values[k]) for k in keep)
        if scores and len(scores) == len(decision.candidates):
            top = decision.candidates[max(range(len(scores)), key=scores.__getitem__)][0]
            agreement = "agree" if top == decision.variant_id else "disagree"
            self._metrics.shadow_agreement[agreement].inc()
        return dataclasses.replace(decision, shadow=(shadow.manifest.version, scores))

    def fallback_all(self, names: tuple[str, ...], reason: str) -> list[Decision]:
        """Defaults for every placement (used when something unforeseen broke)."""
        now = self._clock()
        snap = self._live.current
        out = []
        for name in names:
            placement = snap.catalog.placements.get(name) if snap.catalog is not None else None
            decision_id = self.new_decision_id(now)
            if placement is None:
                why = "unknown_placement" if snap.catalog is not None else "no_catalog"
                out.append(self._counted(unknown_decision(name, why, decision_id)))
            else:
                fallback = default_decision(placement, "fallback", reason, decision_id, snap.model)
                out.append(self._counted(fallback))
        return out


def _facts_once(view: VisitorView, ctx: Context) -> Callable[[], Facts]:
    """The request's audience facts, built on first use and then kept."""
    cache: list[Facts] = []

    def get() -> Facts:
        if not cache:
            cache.append(facts_for(view, ctx))
        return cache[0]

    return get
