"""Building the model's input rows: visitor x variant x context, by feature name.

Pure functions of their inputs (the clock included), used identically by the
service and by training. Every group is computed under the names the schema
declares (``service/features/schema.py``) and laid out in its order. Visitor
and context columns are computed once per request and broadcast; variant-only
columns come precomputed with the placement; only the cross columns are
computed per variant, by one function for serving and training alike.
"""

from __future__ import annotations

import array
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from service.catalog.model import Placement, Variant
from service.features.context import Context
from service.features.schema import (
    A0,
    C0,
    COLUMN,
    CONTEXT_FEATURES,
    CROSS_FEATURES,
    N_FEATURES,
    VISITOR,
    VISITOR_FEATURES,
    X0,
)

NAN = math.nan
_LN2 = math.log(2.0)
Rows = npt.NDArray[np.float64]
# each group's values by name, laid out in the schema's order (C speed: a row per variant)
_VISITOR_ROW = operator.itemgetter(*VISITOR_FEATURES)
_CONTEXT_ROW = operator.itemgetter(*CONTEXT_FEATURES)
_CROSS_ROW = operator.itemgetter(*CROSS_FEATURES)


class RowCache(Protocol):
    """Where an unknown visitor's rows are kept, by context (the live snapshot's cache)."""

    def get(self, ctx: Context, make: Callable[[], Rows]) -> Rows:
        """The rows for ``ctx``, made by ``make`` the first time."""
        ...


@dataclass(frozen=True, slots=True)
class VisitorView:
    """A profile summarized as of ``now``: the visitor columns and what the cross
    columns and the audience facts need."""

    vector: tuple[float, ...]
    """The visitor features, in schema order (read them by name with :meth:`value`)."""
    cat: dict[str, float]
    cat_rank: dict[str, int]
    cat_total: float
    tag: dict[str, float]
    recent: tuple[str, ...]
    cat_clicks: Mapping[str, Any]
    var: Mapping[str, Any]
    avg_price: float

    def value(self, name: str) -> float:
        """One visitor feature, by its schema name."""
        return self.vector[COLUMN[name]]


EMPTY_VIEW = VisitorView(tuple(f.empty for f in VISITOR), {}, {}, 0.0, {}, (), {}, {}, NAN)
"""The view of a visitor without a profile (unknown, or nothing stored yet)."""


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
        return EMPTY_VIEW
    cat = _decayed(profile.get("cat"), now, half_life_s)
    tag = _decayed(profile.get("tag"), now, half_life_s)
    total = sum(cat.values())
    ranked = sorted(cat, key=lambda c: -cat[c])
    rank = {c: i + 1 for i, c in enumerate(ranked)}
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
    values = {
        "v_known": 1.0,
        "v_sessions": _num(profile, "sessions"),
        "v_views": _num(profile, "views"),
        "v_days_since_first": max(0.0, (now - first) / 86400.0),
        "v_hours_since_last": max(0.0, (now - last) / 3600.0),
        "v_clicks": clicks,
        "v_impressions": imps,
        "v_ctr": (clicks + 0.1) / (imps + 2.0),
        "v_conversions": _num(profile, "convs"),
        "v_revenue": _num(profile, "revenue"),
        "v_feedback_avg": _num(profile, "fb_sum") / fb_n if fb_n > 0 else NAN,
        "v_feedback_n": fb_n,
        "v_top_affinity": cat[ranked[0]] if ranked else 0.0,
        "v_affinity_total": total,
        "v_affinity_entropy": entropy,
        "v_n_categories": float(len(cat)),
        "v_avg_price_band": avg_price,
    }
    recent = profile.get("recent")
    cat_clicks = profile.get("cat_clicks")
    var = profile.get("var")
    return VisitorView(
        vector=_VISITOR_ROW(values),
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
    values = {
        "c_hour": float(ctx.hour),
        "c_dow": float(ctx.dow),
        "c_weekend": 1.0 if ctx.dow >= 5 else 0.0,
        "c_mobile": 1.0 if ctx.device == "mobile" else 0.0,
        "c_tablet": 1.0 if ctx.device == "tablet" else 0.0,
        "c_desktop": 1.0 if ctx.device == "desktop" else 0.0,
        "c_page_home": 1.0 if ctx.page_type == "home" else 0.0,
        "c_page_category": 1.0 if ctx.page_type == "category" else 0.0,
        "c_page_product": 1.0 if ctx.page_type == "product" else 0.0,
        "c_page_cart": 1.0 if ctx.page_type == "cart" else 0.0,
        "c_page_search": 1.0 if ctx.page_type == "search" else 0.0,
        "c_ref_search": 1.0 if ctx.referrer == "search" else 0.0,
        "c_ref_social": 1.0 if ctx.referrer == "social" else 0.0,
        "c_ref_direct": 1.0 if ctx.referrer == "direct" else 0.0,
        "c_ref_email": 1.0 if ctx.referrer == "email" else 0.0,
    }
    row: tuple[float, ...] = _CONTEXT_ROW(values)
    return row


_NOT_SEEN = (0.0, 0.0, NAN)


def _seen(entry: Any, now: float) -> tuple[float, float, float]:
    """Impressions, clicks and hours since the last impression of a ``var`` entry."""
    if isinstance(entry, list) and len(entry) >= 3:
        try:
            since = max(0.0, (now - float(entry[2])) / 3600.0) if entry[2] else NAN
            return float(entry[0]), float(entry[1]), since
        except (TypeError, ValueError):
            return 0.0, 0.0, NAN
    return _NOT_SEEN


def _cross(
    view: VisitorView, ctx: Context, variant: Variant, now: float, known_cats: set[Any]
) -> dict[str, float]:
    """The cross columns of one variant, by name (``known_cats``: categories the visitor
    has any history with; the others give zeros without being looked up)."""
    c, tags, tag = variant.category, variant.tags, view.tag
    if c in known_cats:
        aff = view.cat.get(c, 0.0)
        share = aff / view.cat_total if view.cat_total > 0 else 0.0
        rank = float(view.cat_rank.get(c, 0))
        recent = view.recent
        views = float(recent.count(c))
        last = 1.0 if recent and recent[0] == c else 0.0
        page = 1.0 if ctx.category == c else 0.0
        clicks = view.cat_clicks.get(c, 0)
        cat_clicks = float(clicks) if isinstance(clicks, int | float) else 0.0
    else:
        aff = share = rank = views = last = page = cat_clicks = 0.0
    if tags and not tag.keys().isdisjoint(tags):
        tag_aff = [tag.get(t, 0.0) for t in tags]
        tag_max, tag_sum = max(tag_aff), sum(tag_aff)
    else:
        tag_max = tag_sum = 0.0
    imps, var_clicks, since = _seen(view.var.get(variant.id), now) if view.var else _NOT_SEEN
    avg_price = view.avg_price
    return {
        "x_cat_affinity": aff,
        "x_cat_affinity_share": share,
        "x_cat_affinity_rank": rank,
        "x_tag_affinity_max": tag_max,
        "x_tag_affinity_sum": tag_sum,
        "x_cat_recent_views": views,
        "x_last_cat_match": last,
        "x_page_cat_match": page,
        "x_variant_impressions": imps,
        "x_variant_clicks": var_clicks,
        "x_variant_hours_since_impression": since,
        "x_cat_clicks": cat_clicks,
        "x_price_gap": (variant.price_band - avg_price) if avg_price == avg_price else NAN,
    }


def _known_categories(view: VisitorView, ctx: Context) -> set[Any]:
    return {*view.cat, *view.recent, *view.cat_clicks, ctx.category}


def cross_vector(view: VisitorView, ctx: Context, variant: Variant, now: float) -> list[float]:
    """The visitor-x-variant-x-context columns for one variant, in schema order."""
    return list(_CROSS_ROW(_cross(view, ctx, variant, now, _known_categories(view, ctx))))


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
    view: VisitorView,
    ctx: Context,
    placement: Placement,
    now: float,
    cache: RowCache | None = None,
) -> npt.NDArray[np.float64]:
    """As :func:`build_rows`, from an already summarized visitor.

    Equal to stacking :func:`row_for_view` for every variant (a test checks it
    on simulated visitors): the rows of an unknown visitor depend only on the
    placement and the context and are kept in the placement's ``cache`` (the
    live snapshot's); a known visitor's rows start from them.
    """
    if cache is None:
        rows = _unknown_rows(ctx, placement)
    else:
        rows = cache.get(ctx, lambda: _unknown_rows(ctx, placement)).copy()
    if view is EMPTY_VIEW:
        return rows
    rows[:, 0:C0] = view.vector
    known = _known_categories(view, ctx)
    out: list[float] = []
    for variant in placement.variants:
        out += _CROSS_ROW(_cross(view, ctx, variant, now, known))
    rows[:, X0:] = np.frombuffer(array.array("d", out)).reshape(
        len(placement.variants), N_FEATURES - X0
    )
    return rows


def _unknown_rows(ctx: Context, placement: Placement) -> npt.NDArray[np.float64]:
    """The rows of an unknown visitor in ``ctx``."""
    n = len(placement.variants)
    rows = np.empty((n, N_FEATURES), dtype=np.float64)
    rows[:, 0:C0] = EMPTY_VIEW.vector
    rows[:, C0:A0] = context_vector(ctx)
    rows[:, A0:X0] = placement.static_features
    rows[:, X0:] = [cross_vector(EMPTY_VIEW, ctx, v, 0.0) for v in placement.variants]
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
