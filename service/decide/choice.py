"""Choosing a variant from scores: model ranking, exploration, holdout.

Pure functions: the random draw and the hash seed are inputs, so every choice
is reproducible and testable from a table of cases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Choice:
    """The chosen variant's index, the policy that chose it and its probability."""

    index: int
    policy: str
    propensity: float


def in_holdout(seed: str, visitor_id: str, placement: str, share: float) -> bool:
    """Sticky holdout: the same person is in or out of a slot's holdout on every visit."""
    if share <= 0.0:
        return False
    digest = hashlib.blake2b(f"{seed}:{placement}:{visitor_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < share


def draws(seed: str) -> tuple[float, float]:
    """The two uniform draws of an exploration choice (``draw``, ``pick``), from its seed.

    The seed is the decision id, which is logged, so any logged choice can be
    replayed: ``choose(scores, explore_share, *draws(decision_id))``.
    """
    digest = hashlib.blake2b(seed.encode(), digest_size=16, person=b"persona-explore").digest()
    return (
        int.from_bytes(digest[:8], "big") / 2.0**64,
        int.from_bytes(digest[8:], "big") / 2.0**64,
    )


def choose(
    scores: npt.NDArray[np.float64],
    explore_share: float,
    draw: float,
    pick: float,
) -> Choice:
    """Epsilon-greedy over model scores.

    ``draw`` decides explore vs exploit (explore when ``draw < explore_share``);
    ``pick`` (in [0, 1)) chooses uniformly among all variants when exploring.
    The propensity is the policy's exact probability of the returned variant.
    """
    n = len(scores)
    best = int(np.argmax(scores))
    uniform = explore_share / n
    if draw < explore_share:
        index = min(int(pick * n), n - 1)
        return Choice(index, "explore", uniform + (1.0 - explore_share if index == best else 0.0))
    return Choice(best, "model", 1.0 - explore_share + uniform)


def probabilities(scores: npt.NDArray[np.float64], explore_share: float) -> npt.NDArray[np.float64]:
    """The epsilon-greedy policy's probability of each variant (they sum to 1).

    ``choose`` returns, as the propensity, exactly this probability of the
    variant it picked; offline evaluation uses it for a candidate model's policy.
    """
    n = len(scores)
    out = np.full(n, explore_share / n)
    out[int(np.argmax(scores))] += 1.0 - explore_share
    return out
