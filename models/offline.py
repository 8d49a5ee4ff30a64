"""Off-policy evaluation: what a policy's click rate would have been, from logged decisions.

Each logged decision records the variant shown, the probability the logging
policy had of showing it (its propensity) and the outcome (a click: 0 or 1).
For a target policy giving that variant probability ``target``, the importance
weight is ``target / propensity``. IPS averages weighted outcomes (unbiased,
high variance); self-normalized IPS divides by the mean weight (slightly
biased, much steadier). Confidence intervals are normal approximations: the
standard error of the mean for IPS, the delta method for SNIPS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated policy value with its 95 % confidence interval."""

    value: float
    low: float
    high: float
    n: int

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies inside the interval."""
        return self.low <= x <= self.high


def _arrays(
    rewards: npt.ArrayLike, target: npt.ArrayLike, propensities: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    r = np.asarray(rewards, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    p = np.asarray(propensities, dtype=np.float64)
    if not (len(r) == len(t) == len(p)) or len(r) == 0:
        raise ValueError("rewards, target probabilities and propensities: same non-zero length")
    if np.any(p <= 0) or np.any(p > 1):
        raise ValueError("logged propensities must be in (0, 1]")
    return r, t / p


def ips(rewards: npt.ArrayLike, target: npt.ArrayLike, propensities: npt.ArrayLike) -> Estimate:
    """Inverse propensity scoring."""
    r, w = _arrays(rewards, target, propensities)
    x = w * r
    value = float(x.mean())
    se = float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.inf
    return Estimate(value, value - Z95 * se, value + Z95 * se, len(x))


def snips(rewards: npt.ArrayLike, target: npt.ArrayLike, propensities: npt.ArrayLike) -> Estimate:
    """Self-normalized inverse propensity scoring."""
    r, w = _arrays(rewards, target, propensities)
    mean_w = float(w.mean())
    if mean_w == 0.0:
        raise ValueError("the target policy never picks a logged variant: nothing to estimate")
    value = float((w * r).sum() / w.sum())
    var = float(np.mean(w**2 * (r - value) ** 2)) / mean_w**2
    se = math.sqrt(var / len(r))
    return Estimate(value, value - Z95 * se, value + Z95 * se, len(r))
