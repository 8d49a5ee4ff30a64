"""Building the model's input rows: visitor x variant x context.

Pure functions of their inputs (the clock included), used identically by the
service and by training. Visitor and context columns are computed once per
request and broadcast; variant-only columns come precomputed with the
placement; only the cross columns are computed per variant.
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from service.catalog.model import Placement, Variant
from service.features.context import Context
from service.features.schema import A0, C0, CROSS_FEATURES, N_FEATURES, X0
from service.features.schema import VISITOR_FEATURES as _VF

NAN = math.nan
_LN2 = math.log(2.0)
Rows = npt.NDArray[np.float64]


class RowCache(Protocol):
    """Where an unknown visitor's rows are kept, by context (the live snapshot's cache)."""

    def get(self, ctx: Context, make: Callable[[], Rows]) -> Rows:
        """The rows for ``ctx``, made by ``make`` the first time."""
        ...


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


EMPTY_VIEW = VisitorView(
    (0.0, 0.0, 0.0, NAN, NAN, 0.0, 0.0, NAN, 0.0, 0.0, NAN, 0.0, 0.0, 0.0, 0.0, 0.0, NAN),
    {},
    {},
    0.0,
    {},
    (),
    {},
    {},
    NAN,
)
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


def cross_vector(view: VisitorView, ctx: Context, variant: Variant, now: float) -> list[float]:
    """The visitor-x-variant-x-context columns for one variant."""
    c = variant.category
    aff = view.cat.get(c, 0.0)
    tag_aff = [view.tag.get(t, 0.0) for t in variant.tags]
    v_imps, v_clicks, since = _seen(view.var.get(variant.id), now)
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
    view: VisitorView,
    ctx: Context,
    placement: Placement,
    now: float,
    cache: RowCache | None = None,
) -> npt.NDArray[np.float64]:
    """As :func:`build_rows`, from an already summarized visitor.

    Equal to stacking :func:`row_for_view` for every variant (a test checks it
    on simulated visitors), computed faster: the rows of an unknown visitor
    depend only on the placement and the context and are kept in the
    placement's ``cache`` (the live snapshot's); a known visitor's rows start
    from them, and the cross columns of categories and tags without history
    are zeros without being looked up.
    """
    if cache is None:
        rows = _unknown_rows(ctx, placement)
    else:
        rows = cache.get(ctx, lambda: _unknown_rows(ctx, placement)).copy()
    if view is EMPTY_VIEW:
        return rows
    rows[:, 0:C0] = view.vector
    rows[:, X0:] = np.frombuffer(_cross_columns(view, ctx, placement, now)).reshape(
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


_NO_HISTORY = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _cross_columns(
    view: VisitorView, ctx: Context, placement: Placement, now: float
) -> array.array[float]:
    """:func:`cross_vector` of every variant, flattened, with the same values."""
    out: list[float] = []
    cat, tag, var, recent, total = view.cat, view.tag, view.var, view.recent, view.cat_total
    # a category the visitor has no history with, or a tag without affinity, gives
    # zeros (as cross_vector computes them): only the others are looked up
    known_cats = {*cat, *recent, *view.cat_clicks, ctx.category}
    first = recent[0] if recent else None
    avg_price = view.avg_price
    has_price = avg_price == avg_price
    for variant in placement.variants:
        c, tags = variant.category, variant.tags
        if c in known_cats:
            aff = cat.get(c, 0.0)
            clicks = view.cat_clicks.get(c, 0)
            per_cat = (
                aff,
                aff / total if total > 0 else 0.0,
                float(view.cat_rank.get(c, 0)),
                float(recent.count(c)),
                1.0 if first == c else 0.0,
                1.0 if ctx.category == c else 0.0,
                float(clicks) if isinstance(clicks, int | float) else 0.0,
            )
        else:
            per_cat = _NO_HISTORY
        if tags and not tag.keys().isdisjoint(tags):
            tag_aff = [tag.get(t, 0.0) for t in tags]
            tag_max, tag_sum = max(tag_aff), sum(tag_aff)
        else:
            tag_max = tag_sum = 0.0
        v_imps, v_clicks, since = _seen(var.get(variant.id), now) if var else _NOT_SEEN
        out += (
            per_cat[0],
            per_cat[1],
            per_cat[2],
            tag_max,
            tag_sum,
            per_cat[3],
            per_cat[4],
            per_cat[5],
            v_imps,
            v_clicks,
            since,
            per_cat[6],
            (variant.price_band - avg_price) if has_price else NAN,
        )
    return array.array("d", out)


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
