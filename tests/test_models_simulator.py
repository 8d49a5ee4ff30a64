"""The simulator is sane and reproducible, and the bundled model personalizes.

The ranking tests build profiles with the reference event updates
(models.profiles) and score them with LightGBM's own predictor: no Redis, no
compilation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.profiles import apply_impression, apply_view
from models.simulator import (
    HALF_LIFE_S,
    REFERENCE_NOW,
    Visitor,
    World,
    click_probability,
    generate_dataset,
    make_population,
    make_world,
)
from service.catalog.model import Placement
from service.features.builder import build_rows
from service.features.context import Context
from service.features.profile import Profile, empty_profile
from service.features.schema import FEATURE_NAMES, N_FEATURES
from service.scoring.bundle import load_bundle
from service.scoring.predictor import BoosterPredictor

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"
NOW = REFERENCE_NOW + 40 * 86400.0 + 12_345.0
HOME = Context(device="desktop", page_type="home", referrer="direct", hour=12, dow=2)
LISTING = Context(device="mobile", page_type="category", referrer="search", hour=20, dow=5)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def model() -> BoosterPredictor:
    bundle = load_bundle(MODEL_DIR)
    return BoosterPredictor(bundle.model_file)


def fan_of(category: str, world: World, views: int = 25) -> Profile:
    """Someone who viewed ``category`` pages (with their tags) all day yesterday."""
    start = NOW - 86400.0
    profile = empty_profile(start)
    tags = world.category_tags[category]
    for i in range(views):
        apply_view(
            profile,
            category=category,
            tags=[tags[i % len(tags)]],
            price_band=2 if i % 2 else None,
            ts=start + 180.0 * i,
            half_life_s=HALF_LIFE_S,
        )
    return profile


def ranking(
    model: BoosterPredictor, profile: Profile | None, ctx: Context, p: Placement
) -> list[str]:
    scores = model.predict(build_rows(profile, ctx, p, NOW, HALF_LIFE_S))
    return [p.variants[i].id for i in np.argsort(-scores, kind="stable")]


def score_of(
    model: BoosterPredictor, profile: Profile | None, ctx: Context, p: Placement, variant_id: str
) -> float:
    scores = model.predict(build_rows(profile, ctx, p, NOW, HALF_LIFE_S))
    return float(scores[[v.id for v in p.variants].index(variant_id)])


def test_bundle_is_the_full_model() -> None:
    bundle = load_bundle(MODEL_DIR)
    m = bundle.manifest
    assert m.num_trees >= 200
    assert m.feature_names == FEATURE_NAMES
    assert m.objective == "binary"
    # It learned something real, and did not beat the truth (which would mean a leak).
    assert 0.65 < m.metrics["valid_auc"] <= m.metrics["true_auc"]
    assert m.metrics["policy_ctr"]["model"] > 2 * m.metrics["policy_ctr"]["random"]
    assert bundle.model_file.stat().st_size < 3_000_000


@pytest.mark.parametrize(
    ("category", "placement", "ctx", "expected"),
    [
        ("running", "home-hero", HOME, "hero-running"),
        ("hiking", "home-hero", HOME, "hero-hiking"),
        ("climbing", "home-hero", HOME, "hero-climbing"),
        ("yoga", "sidebar-offer", LISTING, "offer-yoga"),
        ("cycling", "article-footer", HOME, "guide-cycling"),
    ],
)
def test_a_fan_of_a_category_gets_its_variant_first(
    model: BoosterPredictor,
    world: World,
    category: str,
    placement: str,
    ctx: Context,
    expected: str,
) -> None:
    p = world.catalog.placements[placement]
    fan = fan_of(category, world)
    assert ranking(model, fan, ctx, p)[0] == expected
    # And clearly so: far above what the same variant scores for a stranger.
    assert score_of(model, fan, ctx, p, expected) > 2.5 * score_of(model, None, ctx, p, expected)


def test_fans_of_different_categories_get_different_heroes(
    model: BoosterPredictor, world: World
) -> None:
    hero = world.catalog.placements["home-hero"]
    firsts = {c: ranking(model, fan_of(c, world), HOME, hero)[0] for c in world.categories}
    by_category = {v.category: v.id for v in hero.variants}
    assert firsts == {c: by_category[c] for c in world.categories}


def test_a_variant_shown_often_without_clicks_loses_its_place(
    model: BoosterPredictor, world: World
) -> None:
    hero = world.catalog.placements["home-hero"]
    fresh = fan_of("running", world)
    tired = fan_of("running", world)
    for i in range(8):
        apply_impression(tired, variant_id="hero-running", ts=NOW - 3600.0 + 60 * i)
    assert score_of(model, tired, HOME, hero, "hero-running") < score_of(
        model, fresh, HOME, hero, "hero-running"
    )


def visitor(prefs: dict[str, float], world: World) -> Visitor:
    tag_prefs = dict.fromkeys((t for c in world.categories for t in world.category_tags[c]), 0.0)
    return Visitor(
        id="v",
        prefs={c: prefs.get(c, 0.0) for c in world.categories},
        tag_prefs=tag_prefs,
        tag_weights=dict.fromkeys(tag_prefs, 1.0),
        device="desktop",
        price_band=2,
        price_sensitivity=0.3,
    )


def test_true_click_model_prefers_the_latent_taste_and_tires(world: World) -> None:
    hero = {v.id: v for v in world.catalog.placements["home-hero"].variants}
    runner = visitor({"running": 1.0}, world)
    p_run = click_probability(runner, hero["hero-running"], HOME, None, NOW)
    p_hike = click_probability(runner, hero["hero-hiking"], HOME, None, NOW)
    assert p_run > 5 * p_hike
    on_page = Context(device="desktop", page_type="category", category="running", hour=12)
    assert click_probability(runner, hero["hero-running"], on_page, None, NOW) > p_run
    seen = empty_profile(NOW - 600)
    for i in range(5):
        apply_impression(seen, variant_id="hero-running", ts=NOW - 600 + i)
    assert click_probability(runner, hero["hero-running"], HOME, seen, NOW) < p_run


def test_population_has_new_and_returning_visitors_with_consistent_profiles(
    world: World,
) -> None:
    people = make_population(400, np.random.default_rng(3), REFERENCE_NOW, world=world)
    new = [v for v in people if v.profile is None]
    returning = [v.profile for v in people if v.profile is not None]
    assert 0.15 < len(new) / len(people) < 0.35
    for v in people:
        assert sum(v.prefs.values()) == pytest.approx(1.0)
    tops = sorted(max(v.prefs.values()) for v in people)
    assert tops[len(tops) // 2] > 0.5  # most people have one clear favourite
    for prof in returning:
        assert 1 <= prof["sessions"] <= prof["views"]
        assert prof["first"] <= prof["last"] <= REFERENCE_NOW
        assert prof["imps"] == sum(e[0] for e in prof["var"].values())
        assert prof["clicks"] == sum(e[1] for e in prof["var"].values())
    sessions = sorted(p["sessions"] for p in returning)
    assert sessions[len(sessions) // 2] <= 3 < sessions[-1] // 4  # heavy-tailed


def test_dataset_is_reproducible_and_plausible(world: World) -> None:
    a, _ = generate_dataset(6000, np.random.default_rng(11), world=world)
    b, _ = generate_dataset(6000, np.random.default_rng(11), world=world)
    c, _ = generate_dataset(6000, np.random.default_rng(12), world=world)
    assert a.x.shape == (6000, N_FEATURES)
    assert np.array_equal(a.x, b.x, equal_nan=True)
    assert np.array_equal(a.y, b.y) and np.array_equal(a.p_true, b.p_true)
    assert not np.array_equal(a.y, c.y)
    assert 0.02 < a.y.mean() < 0.055
    assert abs(a.y.mean() - a.p_true.mean()) < 0.01
    # Every slot is logged, and the shown variant is uniform over the slot's variants.
    hero = world.placements.index(world.catalog.placements["home-hero"])
    rows = a.x[a.placement == hero]
    is_default = rows[:, FEATURE_NAMES.index("a_is_default")]
    assert len(rows) > 1500
    assert 0.05 < is_default.mean() < 0.15  # 1 default among 10 variants
