"""Which variants a visitor may see now, and why the others may not.

In order: a paused variant, one outside its schedule, one whose rule the
visitor's facts fail, and one shown ``frequency_cap`` times to a person who
never clicked it (the variant's own cap, else the placement's) are excluded.
The slot's default is never excluded: it is what a visitor sees when nothing
else fits. Pure: the visitor's per-variant counts and facts come in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.catalog.model import Placement, Variant

Facts = Mapping[str, Any]


def _capped(variant: Variant, cap: int | None, seen: Mapping[str, Any]) -> bool:
    if cap is None:
        return False
    entry = seen.get(variant.id)
    return (
        isinstance(entry, list)
        and len(entry) >= 2
        and isinstance(entry[0], int | float)
        and entry[0] >= cap
        and not entry[1]
    )


def exclusion(
    variant: Variant,
    placement: Placement,
    seen: Mapping[str, Any],
    facts: Callable[[], Facts],
    now: float,
) -> str | None:
    """Why ``variant`` is excluded for this visitor now, or ``None``."""
    if variant.paused:
        return "paused"
    if (variant.start is not None and now < variant.start) or (
        variant.end is not None and now >= variant.end
    ):
        return "schedule"
    if variant.rule is not None and not variant.rule(facts()):
        return "rule"
    if _capped(variant, variant.frequency_cap or placement.frequency_cap, seen):
        return "frequency_cap"
    return None


def eligible(
    placement: Placement,
    seen: Mapping[str, Any],
    facts: Callable[[], Facts] = dict,
    now: float = 0.0,
) -> tuple[list[int], list[tuple[str, str]]]:
    """Indices of the variants still eligible, and (id, reason) of those excluded."""
    if not placement.filtered:
        return list(range(len(placement.variants))), []
    keep: list[int] = []
    out: list[tuple[str, str]] = []
    default_id = placement.default_variant.id
    for i, variant in enumerate(placement.variants):
        why = None if variant.id == default_id else exclusion(variant, placement, seen, facts, now)
        if why is None:
            keep.append(i)
        else:
            out.append((variant.id, why))
    return keep, out
