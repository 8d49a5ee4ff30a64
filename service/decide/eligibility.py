"""Which variants a visitor may see now: frequency caps.

A variant shown ``frequency_cap`` times to a person who never clicked it is
hidden from that person (the slot's default never is), so nobody sees the
same thing forever. Pure: the visitor's per-variant counts come in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.catalog.model import Placement


def eligible(placement: Placement, seen: Mapping[str, Any]) -> tuple[list[int], list[str]]:
    """Indices of the variants still eligible, and ids of those capped."""
    cap = placement.frequency_cap
    if cap is None or not seen:
        return list(range(len(placement.variants))), []
    keep: list[int] = []
    capped: list[str] = []
    default_id = placement.default_variant.id
    for i, variant in enumerate(placement.variants):
        entry = seen.get(variant.id)
        if (
            variant.id != default_id
            and isinstance(entry, list)
            and len(entry) >= 2
            and isinstance(entry[0], int | float)
            and entry[0] >= cap
            and not entry[1]
        ):
            capped.append(variant.id)
        else:
            keep.append(i)
    return keep, capped
