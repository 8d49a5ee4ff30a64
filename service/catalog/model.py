"""The catalog's domain objects and their hot-path index.

A :class:`Catalog` is immutable: a new configuration is a new object, swapped
in as one reference, so a decision sees the old or the new catalog, never a mix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from service.features.schema import VARIANT_FEATURES


@dataclass(frozen=True, slots=True)
class Variant:
    """A piece of content that may appear in a placement."""

    id: str
    content: dict[str, Any]
    category: str
    tags: tuple[str, ...] = ()
    price_band: int = 0
    discount: float = 0.0
    priority: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    rule: Callable[[Mapping[str, Any]], bool] | None = None
    start: float | None = None
    end: float | None = None
    paused: bool = False
    frequency_cap: int | None = None

    @property
    def conditional(self) -> bool:
        """Whether eligibility depends on more than the frequency cap."""
        return self.rule is not None or self.start is not None or self.end is not None


@dataclass(frozen=True, slots=True)
class Placement:
    """A slot on a page: its candidate variants, default, and policy shares."""

    name: str
    description: str
    variants: tuple[Variant, ...]
    default_variant: Variant
    explore_share: float = 0.0
    holdout_share: float = 0.0
    frequency_cap: int | None = None
    status: str = "live"
    count: int = 1
    static_features: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros((0, len(VARIANT_FEATURES)))
    )
    filtered: bool = field(init=False)
    """Whether any variant can be excluded; computed once, so that a request for a
    slot without caps, rules, schedules or paused variants skips eligibility."""

    def __post_init__(self) -> None:
        filtered = self.frequency_cap is not None or any(
            v.paused or v.conditional or v.frequency_cap is not None for v in self.variants
        )
        object.__setattr__(self, "filtered", filtered)

    @property
    def paused(self) -> bool:
        """Whether the slot serves only its default (status ``draft`` or ``paused``)."""
        return self.status != "live"

    @property
    def default_index(self) -> int:
        """Position of the default variant among ``variants``."""
        return self.variants.index(self.default_variant)


@dataclass(frozen=True, slots=True)
class Catalog:
    """All placements by name, plus a version label for metrics and logs."""

    version: str
    placements: dict[str, Placement]


def static_feature_matrix(
    variants: tuple[Variant, ...], default_id: str
) -> npt.NDArray[np.float64]:
    """Variant-only feature columns, computed once per catalog load (not per request)."""
    rows = []
    for v in variants:
        values = {
            "a_price_band": float(v.price_band),
            "a_is_default": 1.0 if v.id == default_id else 0.0,
            "a_priority": float(v.priority),
            "a_n_tags": float(len(v.tags)),
            "a_discount": float(v.discount),
        }
        rows.append(tuple(map(values.__getitem__, VARIANT_FEATURES)))
    matrix = np.array(rows, dtype=np.float64).reshape(len(variants), len(VARIANT_FEATURES))
    matrix.setflags(write=False)
    return matrix
