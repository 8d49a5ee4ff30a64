"""Binary click model or lambdarank per decision: which serves better (docs/model-quality.md).

Both learn from the same logged decisions of the offline simulator (a
uniformly exploring policy, so every variant is seen in every situation):

- **binary**: one row per decision, the variant shown, labelled by its click
  (what ``persona train`` does);
- **lambdarank**: one group per decision with every eligible variant's row;
  the shown variant is labelled 1 when clicked, every other 0 (the log says
  nothing about variants not shown, which is the objective's handicap), and
  groups without a click are dropped since they carry no ranking signal.

Each model then serves held-out decisions greedily (its best-scored variant),
and the simulator's true click probabilities give the click rate it would get,
next to random and the oracle. Training time is measured too.

    python -m loadtests.bench_objectives            # 300,000 decisions (~3 minutes)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import numpy.typing as npt

from loadtests.bench_decide import machine
from loadtests.report import save_result, write_section
from models.simulator import (
    REFERENCE_NOW,
    click_probability,
    iter_decisions,
    make_population,
    make_world,
)
from models.train import LGB_PARAMS
from service.features.schema import FEATURE_NAMES
from service.settings import REPO_DIR

SECTION = "objective"


def decisions(n: int, seed: int) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """``n`` simulated decisions: every variant's row and true click probability."""
    rng = np.random.default_rng(seed)
    world = make_world()
    people = make_population(max(1, n // 8), rng, REFERENCE_NOW, world=world)
    out = []
    for d in iter_decisions(people, n, rng, REFERENCE_NOW, world=world):
        visitor = people[d.visitor_index]
        truth = np.array(
            [
                click_probability(visitor, v, d.ctx, visitor.profile, REFERENCE_NOW)
                for v in d.placement.variants
            ]
        )
        out.append((d.rows, truth))
    return out


def train_binary(
    log: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]], rng: np.random.Generator
) -> tuple[lightgbm.Booster, float]:
    """Shown rows labelled by their clicks."""
    x, y = [], []
    for rows, truth in log:
        j = int(rng.integers(len(rows)))
        x.append(rows[j])
        y.append(1.0 if rng.random() < truth[j] else 0.0)
    return _fit({**LGB_PARAMS}, np.vstack(x), np.array(y), None)


def train_lambdarank(
    log: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]], rng: np.random.Generator
) -> tuple[lightgbm.Booster, float]:
    """Groups of every candidate per clicked decision; the clicked one is relevant."""
    x, y, groups = [], [], []
    for rows, truth in log:
        j = int(rng.integers(len(rows)))
        if rng.random() >= truth[j]:
            continue  # no click: nothing to rank
        label = np.zeros(len(rows))
        label[j] = 1.0
        x.append(rows)
        y.append(label)
        groups.append(len(rows))
    params = {
        **{k: v for k, v in LGB_PARAMS.items() if k not in ("objective", "metric")},
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [1],
    }
    return _fit(params, np.vstack(x), np.concatenate(y), groups)


def _fit(
    params: dict[str, Any], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], group: Any
) -> tuple[lightgbm.Booster, float]:
    clock = time.monotonic()
    data = lightgbm.Dataset(x, label=y, group=group, feature_name=list(FEATURE_NAMES))
    booster = lightgbm.train(params, data, num_boost_round=250)
    return booster, time.monotonic() - clock


def policy_value(
    booster: lightgbm.Booster,
    test: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
) -> float:
    """Mean true click probability of the booster's greedy choice."""
    rows = np.vstack([r for r, _ in test])
    scores = booster.predict(rows)
    out, at = [], 0
    for r, truth in test:
        out.append(truth[int(np.argmax(scores[at : at + len(r)]))])
        at += len(r)
    return float(np.mean(out))


def run(n_train: int, n_test: int, seed: int) -> dict[str, Any]:
    """Train both on the same log and score them on the same held-out decisions."""
    log = decisions(n_train, seed)
    test = decisions(n_test, seed + 1000)
    binary, binary_s = train_binary(log, np.random.default_rng(seed + 1))
    rank, rank_s = train_lambdarank(log, np.random.default_rng(seed + 1))
    return {
        "train_decisions": n_train,
        "test_decisions": n_test,
        "binary": {"ctr": policy_value(binary, test), "train_s": binary_s},
        "lambdarank": {"ctr": policy_value(rank, test), "train_s": rank_s},
        "random": float(np.mean([t.mean() for _, t in test])),
        "oracle": float(np.mean([t.max() for _, t in test])),
    }


def render(r: dict[str, Any], command: str) -> str:
    """The docs/model-quality.md section."""
    m = r["machine"]
    lines = [
        f"Measured {r['date']} with `{command}` on {m['cpus']} x {m['cpu']}, "
        f"LightGBM {m['libraries'].split('lightgbm ')[1].split(',')[0]}.",
        "",
        f"{r['train_decisions']:,} uniformly logged decisions of the offline simulator to learn "
        f"from, {r['test_decisions']:,} held-out decisions served greedily by each model; click "
        "rates are mean true click probabilities of the chosen variants. 250 trees each.",
        "",
        "| policy | CTR | share of oracle | training |",
        "|---|---:|---:|---:|",
    ]
    for name, key in (("binary click model", "binary"), ("lambdarank per decision", "lambdarank")):
        v = r[key]
        lines.append(
            f"| {name} | {100 * v['ctr']:.2f} % | {v['ctr'] / r['oracle']:.1%} | "
            f"{v['train_s']:.1f} s |"
        )
    for name, key in (("random", "random"), ("oracle", "oracle")):
        lines.append(f"| {name} | {100 * r[key]:.2f} % | {r[key] / r['oracle']:.1%} | |")
    winner = "binary" if r["binary"]["ctr"] >= r["lambdarank"]["ctr"] else "lambdarank"
    lines += ["", f"Better here: **{winner}**."]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Measure both objectives and update docs/model-quality.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--train", type=int, default=300_000)
    parser.add_argument("--test", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default=str(REPO_DIR / "docs" / "model-quality.md"))
    args = parser.parse_args()
    result = {**run(args.train, args.test, args.seed), "machine": machine()}
    result["date"] = time.strftime("%Y-%m-%d")
    save_result("objectives", result)
    command = "python -m loadtests.bench_objectives"
    heading = "## Binary click model or lambdarank"
    write_section(Path(args.out), SECTION, heading, render(result, command))
    print(render(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
