"""Off-policy estimates on synthetic logs with known answers; propensities of the live policy."""

from __future__ import annotations

import numpy as np
import pytest

from models.offline import ips, snips
from service.decide.choice import choose, probabilities

TRUE_CTR = np.array([0.05, 0.10, 0.30, 0.15])


def logged(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A log from a skewed random policy: actions, their propensities, clicks."""
    rng = np.random.default_rng(seed)
    logging_policy = np.array([0.4, 0.3, 0.1, 0.2])
    actions = rng.choice(4, size=n, p=logging_policy)
    clicks = (rng.random(n) < TRUE_CTR[actions]).astype(float)
    return actions, logging_policy[actions], clicks, logging_policy


@pytest.mark.parametrize(
    ("target_policy", "truth"),
    [
        (np.array([0.0, 0.0, 1.0, 0.0]), 0.30),  # always the best
        (np.array([0.25, 0.25, 0.25, 0.25]), float(TRUE_CTR.mean())),  # uniform random
        (np.array([0.0, 0.5, 0.0, 0.5]), 0.125),
    ],
)
def test_ips_and_snips_recover_a_known_policy_value(
    target_policy: np.ndarray, truth: float
) -> None:
    actions, propensities, clicks, _ = logged(40_000, seed=7)
    target = target_policy[actions]
    for estimate in (ips(clicks, target, propensities), snips(clicks, target, propensities)):
        assert estimate.contains(truth), (estimate, truth)
        assert estimate.high - estimate.low < 0.05  # and it is informative


def test_the_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    target = np.array([0.0, 0.0, 1.0, 0.0])
    covered = 0
    for seed in range(200):
        actions, propensities, clicks, _ = logged(3_000, seed=seed)
        covered += ips(clicks, target[actions], propensities).contains(0.30)
    assert 0.90 <= covered / 200 <= 0.99


def test_bad_logs_are_refused() -> None:
    with pytest.raises(ValueError, match="propensities must be in"):
        ips([1.0], [1.0], [0.0])
    with pytest.raises(ValueError, match="same non-zero length"):
        snips([1.0, 0.0], [1.0], [0.5])


def test_propensities_sum_to_one_and_match_the_choices_made() -> None:
    rng = np.random.default_rng(11)
    scores = np.array([0.2, 0.9, 0.4, 0.1, 0.3])
    explore = 0.2
    probs = probabilities(scores, explore)
    assert probs.sum() == pytest.approx(1.0)
    n = 50_000
    counts = np.zeros(len(scores))
    for _ in range(n):
        c = choose(scores, explore, float(rng.random()), float(rng.random()))
        counts[c.index] += 1
        assert c.propensity == pytest.approx(probs[c.index])  # the logged propensity is exact
    # each frequency within 4 standard errors of its probability (fixed seed)
    se = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(counts / n - probs) < 4 * se)
