"""Train the bundled model on simulated traffic and write it as a model bundle.

Usage::

    python -m models.train [--out models/default] [--seed 7] [--rows 500000]

The simulator (:mod:`models.simulator`) logs ``--rows`` uniformly random
decisions; a fifth of the visitors are held out for validation. LightGBM is
trained with deterministic settings for exactly :data:`NUM_TREES` trees, and
the bundle's ``created_at`` comes from the simulation's fixed date, so the
same arguments give byte-identical ``model.txt`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.simulator import (
    DEFAULT_PARAMS,
    HALF_LIFE_S,
    REFERENCE_NOW,
    Dataset,
    SimParams,
    Visitor,
    World,
    click_probability,
    generate_dataset,
    iter_decisions,
    make_world,
)
from service.features.schema import FEATURE_NAMES, schema_hash
from service.scoring.bundle import MODEL_FILE, Manifest, file_sha256, write_manifest

DEFAULT_OUT = Path(__file__).resolve().parent / "default"
DEFAULT_ROWS = 500_000
DEFAULT_SEED = 7
NUM_TREES = 250
VALID_EVERY = 5
"""Visitors whose population index is a multiple of this are held out for validation."""
POLICY_DECISIONS = 20_000
"""Decisions (of held-out visitors) used to compare ranking policies."""

LGB_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.02,
    "num_leaves": 31,
    "min_data_in_leaf": 500,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "max_bin": 255,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}


def write_bundle(
    out: Path,
    booster: Any,
    *,
    prefix: str,
    day: datetime,
    objective: str,
    num_trees: int,
    metrics: dict[str, Any],
    training: dict[str, Any],
    created_at: str,
    num_iteration: int | None = None,
) -> Manifest:
    """Save ``booster`` (its first ``num_iteration`` trees) and its manifest under ``out``.

    The version is ``<prefix>-<day>-<first 8 hex of the model's SHA-256>``.
    """
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    booster.save_model(str(model_path), num_iteration=num_iteration)
    sha = file_sha256(model_path)
    manifest = Manifest(
        version=f"{prefix}-{day:%Y%m%d}-{sha[:8]}",
        feature_names=FEATURE_NAMES,
        schema_hash=schema_hash(),
        model_sha256=sha,
        objective=objective,
        num_trees=num_trees,
        metrics=metrics,
        training=training,
        created_at=created_at,
    )
    write_manifest(out, manifest)
    return manifest


def auc(y: npt.NDArray[np.float64], score: npt.NDArray[np.float64]) -> float:
    """Area under the ROC curve of ``score`` for binary labels ``y`` (ties count half)."""
    positives = float(y.sum())
    negatives = float(len(y)) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inverse]
    rank_sum = float(ranks[y > 0.5].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def logloss(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> float:
    """Mean binary cross-entropy of probabilities ``p`` (clipped to [1e-15, 1 - 1e-15])."""
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """Expected CTR of choosing by each rule over the same simulated decisions."""

    model: float
    random: float
    default: float
    oracle: float
    model_picks_best: float
    """Share of decisions where the model's pick is the truly best variant."""


def evaluate_policies(
    booster: Any,
    visitors: Sequence[Visitor],
    world: World,
    n: int,
    rng: np.random.Generator,
    params: SimParams = DEFAULT_PARAMS,
) -> PolicyReport:
    """Compare the model's top pick with random, default and best-possible choices."""
    totals = np.zeros(4)
    best_hits = 0
    for d in iter_decisions(visitors, n, rng, REFERENCE_NOW, world=world, params=params):
        visitor = visitors[d.visitor_index]
        truth = np.array(
            [
                click_probability(visitor, v, d.ctx, visitor.profile, REFERENCE_NOW, params)
                for v in d.placement.variants
            ]
        )
        scores = np.asarray(booster.predict(d.rows, num_threads=1), dtype=np.float64)
        pick = int(np.argmax(scores))
        best = int(np.argmax(truth))
        best_hits += pick == best
        totals += (truth[pick], truth.mean(), truth[d.placement.default_index], truth[best])
    model, random, default, oracle = (float(t / n) for t in totals)
    return PolicyReport(model, random, default, oracle, best_hits / n)


def _r(value: float) -> float:
    return round(float(value), 6)


def _progress(done: int) -> None:
    print(f"  simulated {done:,} decisions", flush=True)


def train(out: Path, seed: int, rows: int, *, quiet: bool = False) -> Manifest:
    """Simulate, train, evaluate and write the bundle to ``out``; return its manifest."""
    import lightgbm

    say = (lambda *a: None) if quiet else print
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    world = make_world()
    params = DEFAULT_PARAMS
    data, people = generate_dataset(
        rows,
        rng,
        REFERENCE_NOW,
        world=world,
        params=params,
        progress=None if quiet else _progress,
    )
    simulated = time.perf_counter()
    valid = data.visitor % VALID_EVERY == 0
    train_set, valid_set = _subset(data, ~valid), _subset(data, valid)

    lgb_params = {**LGB_PARAMS, "seed": seed}
    dtrain = lightgbm.Dataset(
        train_set.x, label=train_set.y, feature_name=list(FEATURE_NAMES), free_raw_data=True
    )
    dvalid = lightgbm.Dataset(valid_set.x, label=valid_set.y, reference=dtrain)
    history: dict[str, Any] = {}
    booster = lightgbm.train(
        {**lgb_params, "metric": ["binary_logloss", "auc"]},
        dtrain,
        num_boost_round=NUM_TREES,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lightgbm.record_evaluation(history)],
    )
    trained = time.perf_counter()

    p_valid = np.asarray(booster.predict(valid_set.x, num_threads=2), dtype=np.float64)
    known = valid_set.x[:, FEATURE_NAMES.index("v_known")] > 0.5
    curve = history["valid"]["binary_logloss"]
    policy = evaluate_policies(
        booster,
        [v for i, v in enumerate(people) if i % VALID_EVERY == 0],
        world,
        POLICY_DECISIONS,
        np.random.default_rng([seed, 1]),
        params,
    )
    metrics = {
        "valid_auc": _r(auc(valid_set.y, p_valid)),
        "valid_logloss": _r(logloss(valid_set.y, p_valid)),
        "true_auc": _r(auc(valid_set.y, valid_set.p_true)),
        "true_logloss": _r(logloss(valid_set.y, valid_set.p_true)),
        "valid_auc_returning": _r(auc(valid_set.y[known], p_valid[known])),
        "true_auc_returning": _r(auc(valid_set.y[known], valid_set.p_true[known])),
        "valid_auc_new": _r(auc(valid_set.y[~known], p_valid[~known])),
        "true_auc_new": _r(auc(valid_set.y[~known], valid_set.p_true[~known])),
        "base_ctr": _r(float(data.y.mean())),
        "valid_ctr": _r(float(valid_set.y.mean())),
        "valid_mean_prediction": _r(float(p_valid.mean())),
        "best_iteration_by_logloss": int(np.argmin(curve)) + 1,
        "policy_ctr": {
            "model": _r(policy.model),
            "random": _r(policy.random),
            "default": _r(policy.default),
            "oracle": _r(policy.oracle),
            "model_picks_best": _r(policy.model_picks_best),
            "decisions": POLICY_DECISIONS,
        },
    }

    day = datetime.fromtimestamp(REFERENCE_NOW, UTC)
    manifest = write_bundle(
        out,
        booster,
        prefix="default",
        day=day,
        objective=str(lgb_params["objective"]),
        num_trees=booster.num_trees(),
        metrics=metrics,
        training={
            "rows": rows,
            "train_rows": len(train_set.y),
            "valid_rows": len(valid_set.y),
            "split": f"held-out visitors (population index % {VALID_EVERY} == 0)",
            "seed": seed,
            "visitors": len(people),
            "reference_now": day.isoformat().replace("+00:00", "Z"),
            "half_life_s": HALF_LIFE_S,
            "policy": "uniformly random variant per decision",
            "simulator": params.to_json(),
            "lightgbm": {"version": lightgbm.__version__, "params": lgb_params},
        },
        created_at=day.isoformat().replace("+00:00", "Z"),
    )
    model_path = out / MODEL_FILE
    done = time.perf_counter()

    say(
        f"model {manifest.version}: {manifest.num_trees} trees, {len(FEATURE_NAMES)} features, "
        f"{model_path.stat().st_size / 1e6:.2f} MB -> {out}"
    )
    say(
        f"rows {rows:,} (train {len(train_set.y):,}, valid {len(valid_set.y):,}), "
        f"CTR {metrics['base_ctr']:.4f}"
    )
    say(
        f"valid AUC {metrics['valid_auc']:.4f} (true probabilities {metrics['true_auc']:.4f}), "
        f"logloss {metrics['valid_logloss']:.4f} (true {metrics['true_logloss']:.4f})"
    )
    say(
        f"  returning visitors {metrics['valid_auc_returning']:.4f} "
        f"(true {metrics['true_auc_returning']:.4f}), new visitors "
        f"{metrics['valid_auc_new']:.4f} (true {metrics['true_auc_new']:.4f})"
    )
    say(
        f"policy CTR: model {policy.model:.4f}, default {policy.default:.4f}, "
        f"random {policy.random:.4f}, oracle {policy.oracle:.4f}; "
        f"model picks the best variant {policy.model_picks_best:.1%} of the time"
    )
    say(
        f"time: simulate {simulated - started:.1f}s, train {trained - simulated:.1f}s, "
        f"evaluate+write {done - trained:.1f}s, total {done - started:.1f}s"
    )
    return manifest


def _subset(data: Dataset, mask: npt.NDArray[np.bool_]) -> Dataset:
    return Dataset(
        x=data.x[mask],
        y=data.y[mask],
        p_true=data.p_true[mask],
        visitor=data.visitor[mask],
        placement=data.placement[mask],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m models.train",
        description="Train the bundled model on simulated traffic and write its bundle.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle folder to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulation/LightGBM seed")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="decisions to simulate")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    train(args.out, args.seed, args.rows, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
