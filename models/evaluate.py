"""Offline evaluation of a candidate model against the live one, from logged decisions.

For every learnable logged decision, all its eligible candidates' rows are
rebuilt from the logged snapshot; each policy gives the shown variant a
probability, and IPS / self-normalized IPS turn logged clicks into an estimated
click rate with a 95 % interval:

- ``live``: the policy that was deployed (its logged scores and exploration);
- ``candidate``: greedy on the candidate model's scores;
- ``popularity``: greedy on each variant's click rate in the window;
- ``random``: uniform over the eligible candidates.

The candidate is flagged when its SNIPS estimate is below the live one's by
more than ``margin``. AUC and log loss of the candidate on the shown variants
complete the picture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.fromlog import LEARNABLE_POLICIES
from models.offline import Estimate, ips, snips
from models.outcomes import Label, Outcomes
from models.train import auc, logloss
from service.catalog.model import Catalog
from service.decide.choice import probabilities
from service.decide.record import context_of
from service.features.builder import rows_for_view, visitor_view

Predict = Callable[[npt.NDArray[np.float64]], npt.ArrayLike]


@dataclass(frozen=True)
class Logged:
    """One learnable decision, ready for evaluation."""

    rows: npt.NDArray[np.float64]  # eligible candidates, in logged order
    candidates: list[str]
    live_scores: npt.NDArray[np.float64]
    explore_share: float
    shown: int
    propensity: float
    reward: float
    t: float


def logged_decisions(
    entries: Iterable[dict[str, Any]],
    catalog_for: Callable[[str], Catalog | None],
    half_life_s: float,
    attribution_s: float = 1800.0,
    label: Label = "click",
) -> list[Logged]:
    """Learnable decisions with every eligible candidate's row and the outcome (click)."""
    decisions, seen = [], set()
    outcomes = Outcomes(label, attribution_s)
    for e in entries:
        if outcomes.add(e) or e.get("type") != "decision":
            continue
        # a retried write may land twice
        if e.get("policy") in LEARNABLE_POLICIES and str(e.get("decision_id")) not in seen:
            seen.add(str(e.get("decision_id")))
            decisions.append(e)
    out = []
    for d in decisions:
        catalog = catalog_for(str(d.get("catalog_version")))
        placement = catalog.placements.get(d["placement"]) if catalog is not None else None
        if placement is None:
            continue
        ids = [v.id for v in placement.variants]
        if d["variant_id"] not in d["candidates"] or not set(d["candidates"]) <= set(ids):
            continue
        now = float(d["timestamp"])
        rows = rows_for_view(
            visitor_view(d.get("profile"), now, half_life_s), context_of(d), placement, now
        )
        out.append(
            Logged(
                rows=rows[[ids.index(c) for c in d["candidates"]]],
                candidates=list(d["candidates"]),
                live_scores=np.asarray(d["scores"], dtype=np.float64),
                explore_share=float(d.get("explore_share") or 0.0),
                shown=d["candidates"].index(d["variant_id"]),
                propensity=float(d["propensity"]),
                reward=outcomes.reward(str(d["decision_id"]), str(d["variant_id"]), now),
                t=now,
            )
        )
    return out


def unseen_by(logged: list[Logged], manifest_training: dict[str, Any]) -> list[Logged]:
    """The decisions a candidate did not train on (from its validation window on).

    A model scores its own training rows too well; judged on them it would
    look better than it is. The bundle records where its validation window
    starts; earlier decisions are left out.
    """
    start = manifest_training.get("valid_from_ts")
    if not isinstance(start, int | float):
        return logged
    return [x for x in logged if x.t >= float(start)]


@dataclass(frozen=True)
class Report:
    """Estimated click rates per policy, the candidate's fit, and the verdict."""

    estimates: dict[str, dict[str, Estimate]]
    candidate_auc: float
    candidate_logloss: float
    decisions: int
    flagged: bool

    def to_json(self, candidate: str) -> dict[str, Any]:
        """The report as a JSON-able dict (``persona evaluate --json``)."""
        return {
            "candidate": candidate,
            "decisions": self.decisions,
            "candidate_auc": round(self.candidate_auc, 6),
            "candidate_logloss": round(self.candidate_logloss, 6),
            "flagged": self.flagged,
            "estimates": {
                policy: {kind: dataclasses.asdict(e) for kind, e in est.items()}
                for policy, est in self.estimates.items()
            },
        }


def evaluate(logged: list[Logged], predict: Predict, margin: float = 0.0) -> Report:
    """Estimate every policy's click rate and flag a candidate worse than live by ``margin``."""
    if not logged:
        raise ValueError("no learnable logged decisions in the window")
    rewards = np.array([x.reward for x in logged])
    props = np.array([x.propensity for x in logged])
    shows: dict[str, int] = {}
    hits: dict[str, float] = {}
    for x in logged:
        v = x.candidates[x.shown]
        shows[v] = shows.get(v, 0) + 1
        hits[v] = hits.get(v, 0.0) + x.reward
    popularity = {v: hits[v] / shows[v] for v in shows}
    targets: dict[str, list[float]] = {"live": [], "candidate": [], "popularity": [], "random": []}
    shown_scores = []
    for x in logged:
        scores = np.asarray(predict(x.rows), dtype=np.float64)
        shown_scores.append(float(scores[x.shown]))
        targets["live"].append(float(probabilities(x.live_scores, x.explore_share)[x.shown]))
        targets["candidate"].append(1.0 if int(np.argmax(scores)) == x.shown else 0.0)
        pop = np.array([popularity.get(c, 0.0) for c in x.candidates])
        targets["popularity"].append(1.0 if int(np.argmax(pop)) == x.shown else 0.0)
        targets["random"].append(1.0 / len(x.candidates))
    estimates = {
        name: {"ips": ips(rewards, t, props), "snips": snips(rewards, t, props)}
        for name, t in targets.items()
        if any(t)
    }
    p = np.clip(np.array(shown_scores), 1e-6, 1 - 1e-6)
    flagged = (
        "candidate" not in estimates
        or estimates["candidate"]["snips"].value < estimates["live"]["snips"].value - margin
    )
    return Report(estimates, auc(rewards, p), logloss(rewards, p), len(logged), flagged)
