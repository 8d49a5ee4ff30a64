"""Building the model's input rows: visitor x variant x context.

Pure functions of their inputs (the clock included), used identically by the
service and by training. Visitor and context columns are computed once per
request and broadcast; variant-only columns come precomputed with the
placement; only the cross columns are computed per variant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.catalog.model import Placement, Variant
from service.features.context import Context
from service.features.schema import A0, C0, CROSS_FEATURES, N_FEATURES, X0
from service.features.schema import VISITOR_FEATURES as _VF

NAN = math.nan
_LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class VisitorView:
    """What the cross features need from a profile, decayed to ``now``."""

    vector: tuple[float, ...]
    cat: dict[str, float]
    cat_rank: dict[str, int]
    cat_total: float
    tag: dict[str, float]
    recent: tuple[str, ...]
    cat_clicks: Mapping[str, Any]
    var: Mapping[str, Any]
    avg_price: float


def _decayed(table: Any, now: float, half_life_s: float) -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(table, dict):
        return out
    k = _LN2 / half_life_s
    for name, entry in table.items():
        try:
            score, ts = float(entry[0]), float(entry[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        age = now - ts
        out[name] = score * math.exp(-k * age) if age > 0 else score
    return out


def _num(profile: Mapping[str, Any], key: str) -> float:
    value = profile.get(key, 0)
    return float(value) if isinstance(value, int | float) else 0.0


def visitor_view(profile: Mapping[str, Any] | None, now: float, half_life_s: float) -> VisitorView:
    """Summarize a profile (or its absence) as of ``now``."""
    if not profile:
        vec = (0.0, 0.0, 0.0, NAN, NAN, 0.0, 0.0, NAN, 0.0, 0.0, NAN, 0.0, 0.0, 0.0, 0.0, 0.0, NAN)
        return VisitorView(vec, {}, {}, 0.0, {}, (), {}, {}, NAN)
    cat = _decayed(profile.get("cat"), now, half_life_s)
    tag = _decayed(profile.get("tag"), now, half_life_s)
    total = sum(cat.values())
    ranked = sorted(cat, key=lambda c: -cat[c])
    rank = {c: i + 1 for i, c in enumerate(ranked)}
    top = cat[ranked[0]] if ranked else 0.0
    entropy = 0.0
    if total > 0:
        for value in cat.values():
            p = value / total
            if p > 0:
                entropy -= p * math.log(p)
    first = _num(profile, "first") or now
    last = _num(profile, "last") or now
    clicks = _num(profile, "clicks")
    imps = _num(profile, "imps")
    fb_n = _num(profile, "fb_n")
    price_n = _num(profile, "price_n")
    avg_price = _num(profile, "price_sum") / price_n if price_n > 0 else NAN
    vec = (
        1.0,
        _num(profile, "sessions"),
        _num(profile, "views"),
        max(0.0, (now - first) / 86400.0),
        max(0.0, (now - last) / 3600.0),
        clicks,
        imps,
        (clicks + 0.1) / (imps + 2.0),
        _num(profile, "convs"),
        _num(profile, "revenue"),
        _num(profile, "fb_sum") / fb_n if fb_n > 0 else NAN,
        fb_n,
        top,
        total,
        entropy,
        float(len(cat)),
        avg_price,
    )
    recent = profile.get("recent")
    cat_clicks = profile.get("cat_clicks")
    var = profile.get("var")
    return VisitorView(
        vector=vec,
        cat=cat,
        cat_rank=rank,
        cat_total=total,
        tag=tag,
        recent=tuple(x for x in recent if isinstance(x, str)) if isinstance(recent, list) else (),
        cat_clicks=cat_clicks if isinstance(cat_clicks, dict) else {},
        var=var if isinstance(var, dict) else {},
        avg_price=avg_price,
    )


def context_vector(ctx: Context) -> tuple[float, ...]:
    """The context columns."""
    return (
        float(ctx.hour),
        float(ctx.dow),
        1.0 if ctx.dow >= 5 else 0.0,
        1.0 if ctx.device == "mobile" else 0.0,
        1.0 if ctx.device == "tablet" else 0.0,
        1.0 if ctx.device == "desktop" else 0.0,
        1.0 if ctx.page_type == "home" else 0.0,
        1.0 if ctx.page_type == "category" else 0.0,
        1.0 if ctx.page_type == "product" else 0.0,
        1.0 if ctx.page_type == "cart" else 0.0,
        1.0 if ctx.page_type == "search" else 0.0,
        1.0 if ctx.referrer == "search" else 0.0,
        1.0 if ctx.referrer == "social" else 0.0,
        1.0 if ctx.referrer == "direct" else 0.0,
        1.0 if ctx.referrer == "email" else 0.0,
    )


def cross_vector(view: VisitorView, ctx: Context, variant: Variant, now: float) -> list[float]:
    """The visitor-x-variant-x-context columns for one variant."""
    c = variant.category
    aff = view.cat.get(c, 0.0)
    tag_aff = [view.tag.get(t, 0.0) for t in variant.tags]
    seen = view.var.get(variant.id)
    v_imps = v_clicks = 0.0
    since = NAN
    if isinstance(seen, list) and len(seen) >= 3:
        try:
            v_imps, v_clicks = float(seen[0]), float(seen[1])
            since = max(0.0, (now - float(seen[2])) / 3600.0) if seen[2] else NAN
        except (TypeError, ValueError):
            v_imps = v_clicks = 0.0
    cat_clicks = view.cat_clicks.get(c, 0)
    return [
        aff,
        aff / view.cat_total if view.cat_total > 0 else 0.0,
        float(view.cat_rank.get(c, 0)),
        max(tag_aff) if tag_aff else 0.0,
        sum(tag_aff),
        float(view.recent.count(c)),
        1.0 if view.recent and view.recent[0] == c else 0.0,
        1.0 if ctx.category == c else 0.0,
        v_imps,
        v_clicks,
        since,
        float(cat_clicks) if isinstance(cat_clicks, int | float) else 0.0,
        (variant.price_band - view.avg_price) if view.avg_price == view.avg_price else NAN,
    ]


def build_rows(
    profile: Mapping[str, Any] | None,
    ctx: Context,
    placement: Placement,
    now: float,
    half_life_s: float,
) -> npt.NDArray[np.float64]:
    """The feature matrix for every variant of ``placement``, one row each."""
    view = visitor_view(profile, now, half_life_s)
    return rows_for_view(view, ctx, placement, now)


def rows_for_view(
    view: VisitorView, ctx: Context, placement: Placement, now: float
) -> npt.NDArray[np.float64]:
    """As :func:`build_rows`, from an already summarized visitor."""
    variants = placement.variants
    n = len(variants)
    rows = np.empty((n, N_FEATURES), dtype=np.float64)
    rows[:, 0:C0] = view.vector
    rows[:, C0:A0] = context_vector(ctx)
    rows[:, A0:X0] = placement.static_features
    rows[:, X0:] = [cross_vector(view, ctx, v, now) for v in variants]
    return rows


def row_for_view(
    view: VisitorView, ctx: Context, placement: Placement, index: int, now: float
) -> npt.NDArray[np.float64]:
    """The row of the placement's ``index``-th variant alone (equal to that row of
    :func:`rows_for_view`; training needs only the variant that was shown)."""
    row = np.empty(N_FEATURES, dtype=np.float64)
    row[0:C0] = view.vector
    row[C0:A0] = context_vector(ctx)
    row[A0:X0] = placement.static_features[index]
    row[X0:] = cross_vector(view, ctx, placement.variants[index], now)
    return row


assert len(_VF) == C0 and len(CROSS_FEATURES) == N_FEATURES - X0
