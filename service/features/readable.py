"""A stored profile in words a person can read: what Persona knows about them.

The interests are the decayed affinities the model sees (the same
:func:`~service.features.builder.visitor_view`), rounded; counts are as
stored; times are ISO 8601 in UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from service.features.builder import visitor_view

TOP = 10


def _when(value: Any) -> str | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _ranked(weights: Mapping[str, float]) -> list[dict[str, Any]]:
    top = sorted(weights.items(), key=lambda kv: -kv[1])[:TOP]
    return [{"name": name, "weight": round(w, 2)} for name, w in top if w >= 0.005]


def readable_profile(profile: Mapping[str, Any], now: float, half_life_s: float) -> dict[str, Any]:
    """The profile as a person reads it (interests decayed to ``now``)."""
    view = visitor_view(profile, now, half_life_s)

    def count(key: str) -> float:
        value = profile.get(key, 0)
        return value if isinstance(value, int | float) else 0

    fb_n = count("fb_n")
    return {
        "first_seen": _when(profile.get("first")),
        "last_seen": _when(profile.get("last")),
        "visits": count("sessions"),
        "page_views": count("views"),
        "interests": _ranked(view.cat),
        "topics": _ranked(view.tag),
        "recent_categories": list(view.recent),
        "content_seen": count("imps"),
        "content_clicked": count("clicks"),
        "orders": count("convs"),
        "order_value": round(float(count("revenue")), 2),
        "feedback_average": round(count("fb_sum") / fb_n, 2) if fb_n else None,
        "feedback_given": fb_n,
        "average_price_band": None if math.isnan(view.avg_price) else round(view.avg_price, 2),
    }
