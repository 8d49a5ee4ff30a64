"""The decision core's inputs and outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.features.context import Context
from service.identity.visitor import Identity


@dataclass(frozen=True, slots=True)
class DecideRequest:
    """A validated request for one or more placements."""

    placements: tuple[str, ...]
    context: Context
    identity: Identity
    include_scores: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    """One variant of an explained decision."""

    variant_id: str
    default: bool
    excluded_because: str | None
    """``paused``, ``schedule``, ``rule`` or ``frequency_cap``; ``None`` when eligible."""
    score: float | None
    probability: float
    """How likely the policy that decided was to show it (0 when excluded)."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a decision came out as it did: the policy's inputs and every candidate."""

    in_holdout: bool | None
    """Whether the person is in the slot's holdout (``None``: nobody in particular)."""
    explore_share: float
    holdout_share: float
    candidates: tuple[Candidate, ...]
    facts: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one placement."""

    placement: str
    decision_id: str
    variant_id: str | None
    content: dict[str, Any] | None
    policy: str
    fallback: str | None
    propensity: float
    model_version: str | None
    scores: tuple[tuple[str, float], ...] | None = None
    error: str | None = None
    excluded: tuple[tuple[str, str], ...] = ()
    more: tuple[tuple[str, dict[str, Any]], ...] = ()
    # every eligible candidate and its score, in catalog order (logged, not returned)
    candidates: tuple[tuple[str, float], ...] = ()
    # a shadow model's version and scores of the same candidates (logged, not returned)
    shadow: tuple[str, tuple[float, ...]] | None = None
    # every variant and why it was or was not shown (when asked to explain)
    explanation: Explanation | None = None

    def to_json(self) -> dict[str, Any]:
        """The decision as the API returns it."""
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "variant_id": self.variant_id,
            "content": self.content,
            "policy": self.policy,
            "fallback": self.fallback,
            "model_version": self.model_version,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.more:
            out["more"] = [{"variant_id": v, "content": c} for v, c in self.more]
        if self.scores is not None:
            out["propensity"] = self.propensity
            out["scores"] = [{"variant_id": v, "score": s} for v, s in self.scores]
            out["excluded"] = [{"variant_id": v, "reason": why} for v, why in self.excluded]
        return out


@dataclass(frozen=True, slots=True)
class StageTimes:
    """Seconds spent per stage of one decide call (for the metrics)."""

    redis: float = 0.0
    features: float = 0.0
    score: float = 0.0
