"""The decision core: identify → one Redis read → features → score → choose.

Transport-neutral: the HTTP handlers parse and serialize, this module decides.
Every failure on the way becomes the slot's default with a ``fallback``
reason; nothing here raises to the caller.
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
from service.catalog.model import Catalog, Placement
from service.decide.choice import choose, draws, in_holdout
from service.decide.eligibility import Facts, eligible
from service.decide.record import DecisionRecorder, entry
from service.decide.types import DecideRequest, Decision, StageTimes
from service.features.builder import EMPTY_VIEW, VisitorView, rows_for_view, visitor_view
from service.features.context import Context
from service.features.profile import Profile, decode_profile
from service.metrics import Metrics
from service.scoring.bundle import Manifest
from service.scoring.predictor import Predictor
from service.store.errors import StoreError
from service.store.profiles import ProfileStore

log = logging.getLogger(__name__)

SCORING_RESERVE_S = 0.0005


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
class LoadedModel:
    """A model ready to score, with its manifest."""

    predictor: Predictor
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's knobs, taken from the settings."""

    deadline_s: float
    redis_timeout_s: float
    half_life_s: float
    holdout_seed: str


class DecisionEngine:
    """Makes decisions against the current catalog and model (both swappable)."""

    def __init__(
        self,
        config: EngineConfig,
        store: ProfileStore,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.catalog: Catalog | None = None
        self.recorder: DecisionRecorder | None = None
        self.shadow: LoadedModel | None = None
        self.model: LoadedModel | None = None

    def new_decision_id(self, now: float) -> str:
        """A time-ordered, unique decision id (27 hex characters)."""
        return f"{int(now * 1000):011x}{self.rng.getrandbits(64):016x}"

    async def _read_profile(
        self, visitor_id: str, started: float
    ) -> tuple[Profile | None, bytes | None, str | None, float]:
        """The profile, its stored bytes (when it decoded), a fallback reason, the time."""
        remaining = self.config.deadline_s - (perf_counter() - started) - SCORING_RESERVE_S
        timeout = max(min(self.config.redis_timeout_s, remaining), 0.0001)
        t = perf_counter()
        try:
            raw = await self.store.read(visitor_id, timeout)
        except StoreError as exc:
            self.metrics.redis_errors.labels(exc.reason).inc()
            return None, None, exc.reason, perf_counter() - t
        profile = decode_profile(raw)
        if profile is None:
            if raw is not None:
                self.metrics.profile_decode_errors.inc()
            return None, None, None, perf_counter() - t
        alias = profile.get("alias")
        if isinstance(alias, str):
            # an id linked to a customer (a device whose cookie predates the login)
            return await self._read_profile(alias, started)
        return profile, raw, None, perf_counter() - t

    async def decide(self, req: DecideRequest, started: float) -> tuple[list[Decision], StageTimes]:
        """Decide every requested placement; never raises."""
        now = self.clock()
        catalog, model = self.catalog, self.model
        wanted = [
            catalog.placements[p]
            for p in req.placements
            if catalog is not None and p in catalog.placements
        ]
        profile: Profile | None = None
        stored: bytes | None = None
        reason: str | None = None
        redis_s = 0.0
        if wanted and req.identity.known and req.identity.visitor_id is not None:
            profile, stored, reason, redis_s = await self._read_profile(
                req.identity.visitor_id, started
            )
        if reason is None and model is None:
            reason = "no_model"
        view: VisitorView | None = None
        facts: Callable[[], Facts] = dict
        features_s = score_s = 0.0
        decisions: list[Decision] = []
        for name in req.placements:
            placement = catalog.placements.get(name) if catalog is not None else None
            if placement is None:
                why = "unknown_placement" if catalog is not None else "no_catalog"
                decisions.append(self.unknown_decision(name, why, now))
                continue
            if placement.paused or reason is not None:
                paused_or = placement.status if placement.paused else reason
                decisions.append(
                    self.default_decision(placement, "fallback", paused_or, now, model)
                )
                continue
            assert model is not None
            vid = req.identity.visitor_id
            held_out = (
                in_holdout(self.config.holdout_seed, vid, name, placement.holdout_share)
                if vid is not None
                else self.rng.random() < placement.holdout_share
            )
            if held_out:
                decisions.append(self.default_decision(placement, "holdout", None, now, model))
                continue
            t0 = perf_counter()
            if view is None:
                view = visitor_view(profile, now, self.config.half_life_s)
                facts = self._facts(view, req)  # shared by the request's slots
            rows = rows_for_view(view, req.context, placement, now)
            t1 = perf_counter()
            try:
                scores = self._predict(model, placement, view, req.context, rows)
            except Exception:
                log.exception("scoring failed for placement %s", name)
                decisions.append(
                    self.default_decision(placement, "fallback", "score_error", now, model)
                )
                continue
            t2 = perf_counter()
            features_s += t1 - t0
            score_s += t2 - t1
            keep, capped = eligible(placement, view.var, facts, now)
            decision = self._scored(placement, scores, keep, capped, req.include_scores, now, model)
            shadow = self.shadow
            if shadow is not None and self.recorder is not None and req.identity.visitor_id:
                decision = self._with_shadow(decision, shadow, rows, keep)
            decisions.append(decision)
        vid = req.identity.visitor_id
        if self.recorder is not None and vid is not None and catalog is not None:
            self.recorder.record(
                vid, partial(_entries, decisions, req.context, stored, now, catalog)
            )
        return decisions, StageTimes(redis=redis_s, features=features_s, score=score_s)

    @staticmethod
    def _predict(
        model: LoadedModel, placement: Placement, view: VisitorView, ctx: Context, rows: Any
    ) -> Any:
        """The model's scores of ``rows``; for an unknown visitor they depend only on
        the placement, the context and the model, so they are kept on the placement."""
        if view is not EMPTY_VIEW:
            return model.predictor.predict(rows)
        key = ("scores", ctx, model.predictor)
        scores = placement.memo.get(key)
        if scores is None:
            scores = model.predictor.predict(rows)
            scores.setflags(write=False)
            placement.remember(key, scores)
        return scores

    def _scored(
        self,
        placement: Placement,
        scores: object,
        keep: list[int],
        capped: list[tuple[str, str]],
        include_scores: bool,
        now: float,
        model: LoadedModel,
    ) -> Decision:
        values = np.asarray(scores, dtype=np.float64)
        if capped:
            values = values[keep]
        decision_id = self.new_decision_id(now)
        choice = choose(values, placement.explore_share, *draws(decision_id))
        variant = placement.variants[keep[choice.index]]
        self.metrics.decision(placement.name, choice.policy).inc()
        ranked = None
        order = None
        if include_scores or placement.count > 1:
            order = np.argsort(-values, kind="stable")
        if include_scores and order is not None:
            ranked = tuple((placement.variants[keep[i]].id, float(values[i])) for i in order)
        more: tuple[tuple[str, dict[str, Any]], ...] = ()
        if placement.count > 1 and order is not None:
            others = [placement.variants[keep[i]] for i in order if keep[i] != keep[choice.index]]
            more = tuple((v.id, v.content) for v in others[: placement.count - 1])
        return Decision(
            placement=placement.name,
            decision_id=decision_id,
            variant_id=variant.id,
            content=variant.content,
            policy=choice.policy,
            fallback=None,
            propensity=choice.propensity,
            model_version=model.manifest.version,
            scores=ranked,
            excluded=tuple(capped),
            more=more,
            candidates=tuple(
                (placement.variants[k].id, float(values[j])) for j, k in enumerate(keep)
            ),
        )

    @staticmethod
    def _with_shadow(
        decision: Decision, shadow: LoadedModel, rows: Any, keep: list[int]
    ) -> Decision:
        """The decision with the shadow model's scores of its candidates (logged, not used)."""
        try:
            values = np.asarray(shadow.predictor.predict(rows), dtype=np.float64)
        except Exception:
            log.exception("shadow model %s failed", shadow.manifest.version)
            return decision
        scores = tuple(float(values[k]) for k in keep)
        return dataclasses.replace(decision, shadow=(shadow.manifest.version, scores))

    @staticmethod
    def _facts(view: VisitorView, req: DecideRequest) -> Callable[[], Facts]:
        """The request's audience facts, built on first use and then kept."""
        cache: list[Facts] = []

        def get() -> Facts:
            if not cache:
                cache.append(facts_for(view, req.context))
            return cache[0]

        return get

    def fallback_all(self, names: tuple[str, ...], reason: str) -> list[Decision]:
        """Defaults for every placement (used when something unforeseen broke)."""
        now = self.clock()
        catalog = self.catalog
        out = []
        for name in names:
            placement = catalog.placements.get(name) if catalog is not None else None
            if placement is None:
                why = "unknown_placement" if catalog is not None else "no_catalog"
                out.append(self.unknown_decision(name, why, now))
            else:
                out.append(self.default_decision(placement, "fallback", reason, now, self.model))
        return out

    def default_decision(
        self,
        placement: Placement,
        policy: str,
        reason: str | None,
        now: float,
        model: LoadedModel | None,
    ) -> Decision:
        """The placement's default variant, counted as ``policy`` (and ``reason``)."""
        self.metrics.decision(placement.name, policy).inc()
        if reason is not None:
            self.metrics.fallback[reason].inc()
        variant = placement.default_variant
        return Decision(
            placement=placement.name,
            decision_id=self.new_decision_id(now),
            variant_id=variant.id,
            content=variant.content,
            policy=policy,
            fallback=reason,
            propensity=1.0,
            model_version=model.manifest.version if model is not None else None,
        )

    def unknown_decision(self, name: str, reason: str, now: float) -> Decision:
        """The answer for a placement that is not in the catalog."""
        self.metrics.decision("unknown", "fallback").inc()
        self.metrics.fallback[reason].inc()
        message = (
            f"unknown placement {name!r}"
            if reason == "unknown_placement"
            else "no catalog is loaded"
        )
        return Decision(
            placement=name,
            decision_id=self.new_decision_id(now),
            variant_id=None,
            content=None,
            policy="fallback",
            fallback=reason,
            propensity=1.0,
            model_version=None,
            error=message,
        )
