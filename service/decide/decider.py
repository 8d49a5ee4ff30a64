"""Deciding one placement for one visitor: the one decision rule, optionally explained.

Pure: the snapshot (catalog, model, caches), the visitor's view and facts, the
context, the time and the decision id (which seeds the exploration draws) come
in; a :class:`Decision` comes out. The decision path, ``include_scores``, the
marketer's preview and the visitor's "why am I seeing this" all call
:func:`decide_placement`, so they cannot disagree. With ``explain`` the
decision also carries every variant's score, whether it is eligible and why
not, and the probability the policy shows it now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any

import numpy as np
import numpy.typing as npt

from service.catalog.model import Placement
from service.decide.choice import choose, draws, in_holdout, probabilities
from service.decide.eligibility import Facts, eligible
from service.decide.snapshot import LoadedModel, Snapshot
from service.decide.types import Candidate, Decision, Explanation
from service.features.builder import EMPTY_VIEW, VisitorView, rows_for_view
from service.features.context import Context

log = logging.getLogger(__name__)
Scores = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Inputs:
    """What one request brings to each of its placements."""

    view: VisitorView
    facts: Callable[[], Facts]
    context: Context
    visitor_id: str | None
    """The person (for the sticky holdout); ``None`` when not known to be anyone."""
    now: float
    holdout_seed: str
    failure: str | None = None
    """A reason every placement falls back for (Redis failed, no model)."""
    include_scores: bool = False
    explain: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """A placement's decision, the rows it was scored on (for a shadow model), and the
    seconds spent building them and scoring."""

    decision: Decision
    rows: Any = None
    keep: list[int] | None = None
    features_s: float = 0.0
    score_s: float = 0.0


def default_decision(
    placement: Placement,
    policy: str,
    reason: str | None,
    decision_id: str,
    model: LoadedModel | None,
) -> Decision:
    """The placement's default variant, as ``policy`` (and fallback ``reason``)."""
    variant = placement.default_variant
    return Decision(
        placement=placement.name,
        decision_id=decision_id,
        variant_id=variant.id,
        content=variant.content,
        policy=policy,
        fallback=reason,
        propensity=1.0,
        model_version=model.manifest.version if model is not None else None,
    )


def unknown_decision(name: str, reason: str, decision_id: str) -> Decision:
    """The answer for a placement that is not in the catalog (or without one)."""
    message = f"unknown placement {name!r}" if reason == "unknown_placement" else "no catalog"
    return Decision(
        placement=name,
        decision_id=decision_id,
        variant_id=None,
        content=None,
        policy="fallback",
        fallback=reason,
        propensity=1.0,
        model_version=None,
        error=message if reason == "unknown_placement" else "no catalog is loaded",
    )


def held_out(placement: Placement, inputs: Inputs, anonymous_draw: float) -> bool:
    """Sticky for a known person; for nobody in particular, a draw."""
    if inputs.visitor_id is not None:
        return in_holdout(
            inputs.holdout_seed, inputs.visitor_id, placement.name, placement.holdout_share
        )
    return anonymous_draw < placement.holdout_share


def predict(snapshot: Snapshot, placement: Placement, inputs: Inputs, rows: Any) -> Scores:
    """The model's scores of ``rows``; an unknown visitor's depend only on the placement,
    the context and the model, so they are kept in the snapshot's cache."""
    model = snapshot.model
    assert model is not None
    if inputs.view is not EMPTY_VIEW:
        return np.asarray(model.predictor.predict(rows), dtype=np.float64)
    return snapshot.cache(placement.name).scores.get(
        inputs.context,
        lambda: np.asarray(model.predictor.predict(rows), dtype=np.float64),
    )


def decide_placement(
    snapshot: Snapshot,
    placement: Placement,
    inputs: Inputs,
    decision_id: str,
    anonymous_draw: float = 1.0,
) -> Outcome:
    """Decide one placement: holdout, eligibility, scores, choice (and why, on request)."""
    model = snapshot.model
    reason = placement.status if placement.paused else inputs.failure
    if model is None:
        reason = reason or "no_model"
    explain = inputs.explain
    if reason is not None and not explain:
        return Outcome(default_decision(placement, "fallback", reason, decision_id, model))
    held = held_out(placement, inputs, anonymous_draw)
    if model is None:  # explained: eligibility without scores
        assert reason is not None
        keep, capped = eligible(placement, inputs.view.var, inputs.facts, inputs.now)
        fallback = default_decision(placement, "fallback", reason, decision_id, model)
        return Outcome(_explained(fallback, inputs, placement, None, keep, capped, None, held))
    if held and not explain:
        return Outcome(default_decision(placement, "holdout", None, decision_id, model))
    t0 = perf_counter()
    rows = rows_for_view(
        inputs.view, inputs.context, placement, inputs.now, snapshot.cache(placement.name).rows
    )
    t1 = perf_counter()
    try:
        scores = predict(snapshot, placement, inputs, rows)
    except Exception:
        log.exception("scoring failed for placement %s", placement.name)
        fallback = default_decision(placement, "fallback", "score_error", decision_id, model)
        if explain:
            fallback = _explained(fallback, inputs, placement, None, None, None, None, held)
        return Outcome(fallback)
    t2 = perf_counter()
    keep, capped = eligible(placement, inputs.view.var, inputs.facts, inputs.now)
    values = scores[keep] if capped else scores
    if reason is not None or held:
        policy = "fallback" if reason is not None else "holdout"
        decision = default_decision(placement, policy, reason, decision_id, model)
    else:
        decision = _scored(placement, values, keep, capped, inputs, decision_id, model)
    if explain:
        decision = _explained(decision, inputs, placement, scores, keep, capped, values, held)
    return Outcome(decision, rows, keep, t1 - t0, t2 - t1)


def _scored(
    placement: Placement,
    values: Scores,
    keep: list[int],
    capped: list[tuple[str, str]],
    inputs: Inputs,
    decision_id: str,
    model: LoadedModel,
) -> Decision:
    choice = choose(values, placement.explore_share, *draws(decision_id))
    variant = placement.variants[keep[choice.index]]
    order = None
    if inputs.include_scores or inputs.explain or placement.count > 1:
        order = np.argsort(-values, kind="stable")
    ranked = None
    if (inputs.include_scores or inputs.explain) and order is not None:
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
        candidates=tuple((placement.variants[k].id, float(values[j])) for j, k in enumerate(keep)),
    )


def _explained(
    decision: Decision,
    inputs: Inputs,
    placement: Placement | None = None,
    scores: Scores | None = None,
    keep: list[int] | None = None,
    capped: list[tuple[str, str]] | None = None,
    values: Scores | None = None,
    held: bool | None = None,
) -> Decision:
    """The decision with its explanation: every variant, its score, eligibility and the
    probability the policy that decided shows it."""
    candidates: tuple[Candidate, ...] = ()
    explore = hold = 0.0
    if placement is not None:
        explore, hold = placement.explore_share, placement.holdout_share
        excluded = dict(capped or ())
        if keep is None:  # eligibility unknown (scoring failed): nothing was excluded
            keep = list(range(len(placement.variants)))
        chance: dict[str, float]
        if decision.policy in ("model", "explore") and values is not None:
            probs = probabilities(values, placement.explore_share)
            chance = {placement.variants[k].id: float(p) for k, p in zip(keep, probs, strict=True)}
        else:
            chance = {placement.default_variant.id: 1.0}
        candidates = tuple(
            Candidate(
                variant_id=v.id,
                default=v.id == placement.default_variant.id,
                excluded_because=excluded.get(v.id),
                score=None if scores is None else float(scores[i]),
                probability=chance.get(v.id, 0.0),
            )
            for i, v in enumerate(placement.variants)
        )
    explanation = Explanation(
        in_holdout=held if inputs.visitor_id is not None else None,
        explore_share=explore,
        holdout_share=hold,
        candidates=candidates,
        facts=dict(inputs.facts()),
    )
    return replace(decision, explanation=explanation)
