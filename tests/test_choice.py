"""Choosing a variant: model ranking, epsilon-greedy exploration, sticky holdout."""

from __future__ import annotations

import random

import numpy as np
import pytest

from service.decide.choice import choose, in_holdout

SCORES = np.array([0.1, 0.7, 0.3, 0.2])


@pytest.mark.parametrize(
    ("share", "draw", "pick", "index", "policy", "propensity"),
    [
        (0.0, 0.5, 0.0, 1, "model", 1.0),
        (0.1, 0.5, 0.0, 1, "model", 0.9 + 0.1 / 4),
        (0.1, 0.05, 0.0, 0, "explore", 0.1 / 4),
        (0.1, 0.05, 0.30, 1, "explore", 0.9 + 0.1 / 4),
        (0.1, 0.05, 0.99, 3, "explore", 0.1 / 4),
        (0.1, 0.1, 0.99, 1, "model", 0.9 + 0.1 / 4),
    ],
)
def test_choose_table(
    share: float, draw: float, pick: float, index: int, policy: str, propensity: float
) -> None:
    choice = choose(SCORES, share, draw, pick)
    assert (choice.index, choice.policy) == (index, policy)
    assert choice.propensity == pytest.approx(propensity)


def test_propensities_match_empirical_frequencies() -> None:
    rng = random.Random(42)
    share, n = 0.2, 40_000
    counts = np.zeros(len(SCORES))
    props = {}
    for _ in range(n):
        c = choose(SCORES, share, rng.random(), rng.random())
        counts[c.index] += 1
        props[c.index] = c.propensity
    assert sum(props.values()) == pytest.approx(1.0)
    for i, p in props.items():
        assert abs(counts[i] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-3


def test_holdout_is_sticky_and_near_its_share() -> None:
    ids = [f"visitor-{i:012d}" for i in range(20_000)]
    first = [in_holdout("seed", v, "home-hero", 0.1) for v in ids]
    again = [in_holdout("seed", v, "home-hero", 0.1) for v in ids]
    assert first == again
    assert 0.09 < sum(first) / len(ids) < 0.11
    other_slot = [in_holdout("seed", v, "sidebar", 0.1) for v in ids]
    assert other_slot != first  # independent per slot
    assert not any(in_holdout("seed", v, "home-hero", 0.0) for v in ids[:100])
