"""The decision path's row builder equals the one-row reference that training uses.

``rows_for_view`` takes shortcuts (cached rows for unknown visitors, zeros for
categories and tags a visitor has no history with); every value must still be
bit for bit what ``row_for_view`` (built on ``cross_vector``) gives, or the
served scores would drift from the model's training rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.simulator import REFERENCE_NOW, SimParams, make_population, make_world
from service.catalog.loader import parse_catalog
from service.catalog.model import Catalog, Placement
from service.decide import snapshot
from service.decide.decider import Inputs, predict
from service.decide.snapshot import Live, LoadedModel, PlacementCache, Snapshot
from service.features import builder
from service.features.builder import row_for_view, rows_for_view, visitor_view
from service.features.context import Context
from service.features.profile import Profile
from service.settings import DEFAULT_CATALOG

HALF_LIFE_S = 14 * 86400.0
NOW = REFERENCE_NOW + 3 * 3600.0


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return parse_catalog(DEFAULT_CATALOG.read_bytes())


def _reference(profile: Profile | None, ctx: Context, placement: Placement) -> bytes:
    view = visitor_view(profile, NOW, HALF_LIFE_S)
    return np.stack(
        [row_for_view(view, ctx, placement, i, NOW) for i in range(len(placement.variants))]
    ).tobytes()


def _contexts(placement: Placement) -> list[Context]:
    cats = [None, "nothing-like-this", *sorted({v.category for v in placement.variants})]
    return [
        Context(device=d, page_type=p, category=c, referrer=r, hour=h, dow=w)
        for i, (d, p, r, h, w) in enumerate(
            [
                ("mobile", "home", "direct", 9, 0),
                ("desktop", "category", "search", 20, 5),
                ("tablet", "product", "social", 0, 6),
            ]
        )
        for c in cats[i::3]
    ]


def test_rows_equal_the_reference_for_simulated_visitors(catalog: Catalog) -> None:
    rng = np.random.default_rng(11)
    people = make_population(
        300, rng, REFERENCE_NOW, world=make_world(), params=SimParams(new_visitor_share=0.0)
    )
    profiles = [p.profile for p in people if p.profile]
    assert len(profiles) > 200
    assert any(p.get("var") for p in profiles) and any(p.get("tag") for p in profiles)
    checked = 0
    for placement in catalog.placements.values():
        for ctx in _contexts(placement):
            for profile in profiles[:: 7 if ctx.category is None else 23]:
                view = visitor_view(profile, NOW, HALF_LIFE_S)
                got = rows_for_view(view, ctx, placement, NOW)
                assert got.tobytes() == _reference(profile, ctx, placement)
                checked += 1
    assert checked > 300


def test_odd_profiles_give_the_reference_rows(catalog: Catalog) -> None:
    placement = catalog.placements["home-hero"]
    variant = placement.variants[1]
    odd: list[Profile] = [
        {"cat_clicks": {variant.category: "many"}, "recent": [variant.category, 3, None]},
        {"recent": ["elsewhere", variant.category], "views": 2},  # viewed, no affinity left
        {"cat_clicks": {variant.category: 2}, "clicks": 2},
        {"var": {variant.id: ["x", 1, 2]}, "tag": {variant.tags[0]: [2.0, NOW - 60]}},
        {"var": {variant.id: [3, 1, 0]}, "cat": {variant.category: [1.0, NOW + 10]}},
        {"var": {variant.id: [3, 1]}, "price_sum": 7, "price_n": 2, "views": 1},
        {"cat": "not a table", "tag": {"x": "bad"}, "sessions": 2},
    ]
    for ctx in (Context(), Context(category=variant.category)):
        for profile in odd:
            view = visitor_view(profile, NOW, HALF_LIFE_S)
            assert rows_for_view(view, ctx, placement, NOW).tobytes() == _reference(
                profile, ctx, placement
            )


def test_unknown_visitor_rows_come_from_a_bounded_per_placement_cache(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    placement = catalog.placements["home-hero"]
    cache = PlacementCache()
    ctx = Context(device="mobile", page_type="home", hour=8, dow=1)
    empty = visitor_view(None, NOW, HALF_LIFE_S)
    first = rows_for_view(empty, ctx, placement, NOW, cache.rows)
    assert first.tobytes() == _reference(None, ctx, placement)
    first[:] = math.pi  # the caller's copy: the cache is not touched
    again = rows_for_view(empty, ctx, placement, NOW, cache.rows)
    assert again.tobytes() == _reference(None, ctx, placement)
    monkeypatch.setattr(snapshot, "CACHE_LIMIT", 8)
    for hour in range(24):
        rows_for_view(empty, Context(hour=hour), placement, NOW, cache.rows)
        assert len(cache.rows) <= 8


def test_unknown_visitor_scores_are_kept_per_context_and_model(
    catalog: Catalog, tmp_path: Path
) -> None:
    from service.scoring.bundle import load_bundle
    from service.scoring.predictor import BoosterPredictor
    from service.settings import DEFAULT_MODEL_DIR
    from tests.helpers import tiny_bundle

    placement = catalog.placements["home-hero"]
    models = []
    for folder in (DEFAULT_MODEL_DIR, tiny_bundle(tmp_path, "tiny-anon")):
        bundle = load_bundle(folder)
        models.append(LoadedModel(BoosterPredictor(bundle.model_file), bundle.manifest))
    default, tiny = models
    live = Live()
    live.publish(catalog=catalog, model=default)
    first_snapshot = live.current
    home = Context(device="mobile", page_type="home", hour=9, dow=1)
    listing = Context(device="desktop", page_type="category", category="running", hour=21)
    empty = visitor_view(None, NOW, HALF_LIFE_S)

    def scores(snap: Snapshot, ctx: Context, view: builder.VisitorView = empty) -> Any:
        cache = snap.cache(placement.name)
        rows = rows_for_view(view, ctx, placement, NOW, cache.rows)
        inputs = Inputs(view, dict, ctx, None, NOW, "seed")
        return predict(snap, placement, inputs, rows), rows

    first, rows = scores(first_snapshot, home)
    assert first.tobytes() == default.predictor.predict(rows).tobytes()
    assert scores(first_snapshot, home)[0] is first  # kept, not scored again
    live.publish(model=tiny)  # another model: a new snapshot, its own scores, the same rows
    assert live.current.cache(placement.name).rows is first_snapshot.cache(placement.name).rows
    other, rows = scores(live.current, home)
    assert other.tobytes() == tiny.predictor.predict(rows).tobytes()
    assert other.tobytes() != first.tobytes()
    elsewhere, rows = scores(first_snapshot, listing)  # another context: its own scores
    assert elsewhere.tobytes() == default.predictor.predict(rows).tobytes()
    assert elsewhere.tobytes() != first.tobytes()
    kept = len(first_snapshot.cache(placement.name).scores)
    fan = visitor_view({"cat": {"running": [5.0, NOW]}, "views": 3}, NOW, HALF_LIFE_S)
    known, rows = scores(first_snapshot, home, fan)  # a known visitor is always scored
    assert known.tobytes() == default.predictor.predict(rows).tobytes()
    assert known.tobytes() != first.tobytes()
    assert len(first_snapshot.cache(placement.name).scores) == kept  # nothing of theirs kept
    live.publish(catalog=parse_catalog(DEFAULT_CATALOG.read_bytes()))  # a new catalog
    assert live.current.cache(placement.name).rows is not first_snapshot.cache(placement.name).rows


def test_each_named_column_holds_what_the_schema_says(catalog: Catalog) -> None:
    from service.features.schema import COLUMN, FEATURE_NAMES

    placement = catalog.placements["home-hero"]
    index = next(i for i, v in enumerate(placement.variants) if v.category == "running")
    variant = placement.variants[index]
    profile: Profile = {
        "first": NOW - 2 * 86400,
        "last": NOW - 3 * 3600,
        "sessions": 4,
        "views": 9,
        "clicks": 3,
        "imps": 18,
        "convs": 1,
        "revenue": 42.0,
        "fb_sum": 11.0,
        "fb_n": 2,
        "cat": {"running": [6.0, NOW], "yoga": [2.0, NOW]},
        "tag": {t: [1.5, NOW] for t in variant.tags[:1]},
        "recent": ["running", "yoga", "running"],
        "cat_clicks": {"running": 2},
        "var": {variant.id: [5, 1, NOW - 7200]},
        "price_sum": 3.0,
        "price_n": 2,
    }
    ctx = Context(device="mobile", page_type="category", category="running", referrer="email",
                  hour=21, dow=6)  # fmt: skip
    row = row_for_view(visitor_view(profile, NOW, HALF_LIFE_S), ctx, placement, index, NOW)
    expected = {
        "v_known": 1.0,
        "v_sessions": 4.0,
        "v_views": 9.0,
        "v_days_since_first": 2.0,
        "v_hours_since_last": 3.0,
        "v_clicks": 3.0,
        "v_impressions": 18.0,
        "v_ctr": 3.1 / 20.0,
        "v_conversions": 1.0,
        "v_revenue": 42.0,
        "v_feedback_avg": 5.5,
        "v_feedback_n": 2.0,
        "v_top_affinity": 6.0,
        "v_affinity_total": 8.0,
        "v_n_categories": 2.0,
        "v_avg_price_band": 1.5,
        "c_hour": 21.0,
        "c_dow": 6.0,
        "c_weekend": 1.0,
        "c_mobile": 1.0,
        "c_desktop": 0.0,
        "c_page_category": 1.0,
        "c_page_home": 0.0,
        "c_ref_email": 1.0,
        "c_ref_search": 0.0,
        "a_price_band": float(variant.price_band),
        "a_is_default": float(variant.id == placement.default_variant.id),
        "a_priority": float(variant.priority),
        "a_n_tags": float(len(variant.tags)),
        "a_discount": variant.discount,
        "x_cat_affinity": 6.0,
        "x_cat_affinity_share": 0.75,
        "x_cat_affinity_rank": 1.0,
        "x_tag_affinity_max": 1.5 if variant.tags else 0.0,
        "x_cat_recent_views": 2.0,
        "x_last_cat_match": 1.0,
        "x_page_cat_match": 1.0,
        "x_variant_impressions": 5.0,
        "x_variant_clicks": 1.0,
        "x_variant_hours_since_impression": 2.0,
        "x_cat_clicks": 2.0,
        "x_price_gap": variant.price_band - 1.5,
    }
    for name, value in expected.items():
        assert row[COLUMN[name]] == pytest.approx(value), name
    assert set(expected) | {"v_affinity_entropy"} >= set(FEATURE_NAMES) - {
        n for n in FEATURE_NAMES if n.startswith("c_") or n == "x_tag_affinity_sum"
    }
    # a visitor without a profile: the schema's empty values
    empty = row_for_view(visitor_view(None, NOW, HALF_LIFE_S), ctx, placement, index, NOW)
    assert math.isnan(empty[COLUMN["v_days_since_first"]]) and empty[COLUMN["v_known"]] == 0.0
