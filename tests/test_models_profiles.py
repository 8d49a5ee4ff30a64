"""The reference profile updates (models.profiles): counts, sessions, decay, lists."""

from __future__ import annotations

import math
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.profiles import (
    CLICK_AFFINITY,
    SESSION_GAP_S,
    apply_click,
    apply_conversion,
    apply_feedback,
    apply_impression,
    apply_view,
    bump_score,
)
from service.features.builder import visitor_view
from service.features.profile import RECENT_MAX, decode_profile, empty_profile, encode_profile

HL = 14 * 86400.0
T0 = 1_750_000_000.0


def test_views_count_sessions_first_last_and_prices() -> None:
    p = empty_profile(T0)
    apply_view(p, category="running", tags=["shoes"], price_band=2, ts=T0, half_life_s=HL)
    apply_view(p, category="running", tags=["road"], price_band=3, ts=T0 + 600, half_life_s=HL)
    apply_view(p, category=None, ts=T0 + 1200, half_life_s=HL)  # home page, same session
    assert (p["views"], p["sessions"]) == (3, 1)
    apply_view(p, category="hiking", ts=T0 + 1200 + SESSION_GAP_S - 1, half_life_s=HL)
    assert p["sessions"] == 1  # 29:59 of inactivity: still the same session
    apply_view(p, category="hiking", ts=T0 + 1200 + 2 * SESSION_GAP_S - 1, half_life_s=HL)
    assert p["sessions"] == 2  # exactly 30 minutes of inactivity starts a new one
    apply_view(p, category="yoga", ts=T0 + 5 * 86400, half_life_s=HL)
    assert (p["views"], p["sessions"]) == (6, 3)
    assert p["first"] == T0
    assert p["last"] == T0 + 5 * 86400
    assert (p["price_sum"], p["price_n"]) == (5.0, 2)
    assert p["recent"] == ["yoga", "hiking", "hiking", "running", "running"]
    assert set(p["cat"]) == {"running", "hiking", "yoga"}
    assert set(p["tag"]) == {"shoes", "road"}
    # Nothing else moved.
    assert (p["clicks"], p["imps"], p["convs"], p["fb_n"], p["var"]) == (0, 0, 0, 0, {})


def test_first_view_of_a_new_profile_opens_a_session() -> None:
    p = apply_view(empty_profile(T0), category="running", ts=T0, half_life_s=HL)
    assert (p["sessions"], p["views"]) == (1, 1)
    assert p["cat"] == {"running": [1.0, T0]}


def test_affinity_halves_after_one_half_life_and_adds_up() -> None:
    p = apply_view(empty_profile(T0), category="running", tags=["trail"], ts=T0, half_life_s=HL)
    view = visitor_view(p, T0 + HL, HL)
    assert view.cat["running"] == pytest.approx(0.5, rel=1e-12)
    assert view.tag["trail"] == pytest.approx(0.5, rel=1e-12)
    assert visitor_view(p, T0 + 2 * HL, HL).cat["running"] == pytest.approx(0.25, rel=1e-12)
    # A second view one half-life later: the stored score is 0.5 + 1 as of then.
    apply_view(p, category="running", ts=T0 + HL, half_life_s=HL)
    score, as_of = p["cat"]["running"]
    assert score == pytest.approx(1.5, rel=1e-12)
    assert as_of == T0 + HL
    assert visitor_view(p, T0 + 2 * HL, HL).cat["running"] == pytest.approx(0.75, rel=1e-12)


def test_repeated_tags_count_once_per_view() -> None:
    p = apply_view(
        empty_profile(T0), category="running", tags=["shoes", "shoes"], ts=T0, half_life_s=HL
    )
    assert p["tag"] == {"shoes": [1.0, T0]}


def test_recent_is_most_recent_first_and_capped() -> None:
    p = empty_profile(T0)
    for i in range(RECENT_MAX + 5):
        apply_view(p, category=f"c{i}", ts=T0 + i, half_life_s=HL)
    assert len(p["recent"]) == RECENT_MAX
    assert p["recent"] == [f"c{i}" for i in range(RECENT_MAX + 4, 4, -1)]


def test_impressions_and_clicks_update_variant_counts_and_category() -> None:
    p = empty_profile(T0)
    apply_impression(p, variant_id="hero-running", ts=T0)
    apply_impression(p, variant_id="hero-running", ts=T0 + 60)
    apply_impression(p, variant_id="hero-hiking", ts=T0 + 90)
    apply_click(p, variant_id="hero-running", category="running", ts=T0 + 65, half_life_s=HL)
    assert (p["imps"], p["clicks"]) == (3, 1)
    assert p["var"] == {"hero-running": [2, 1, T0 + 60], "hero-hiking": [1, 0, T0 + 90]}
    assert p["cat_clicks"] == {"running": 1}
    assert p["cat"]["running"] == [CLICK_AFFINITY, T0 + 65]
    assert p["last"] == T0 + 90
    assert p["sessions"] == 0 and p["views"] == 0  # only page views count sessions
    # A click whose impression was never recorded still counts, with no impression time.
    apply_click(p, variant_id="offer-yoga", category="yoga", ts=T0 + 100, half_life_s=HL)
    assert p["var"]["offer-yoga"] == [0, 1, 0]
    assert visitor_view(p, T0 + 100 + HL, HL).cat["yoga"] == pytest.approx(CLICK_AFFINITY / 2)


def test_conversions_and_feedback() -> None:
    p = empty_profile(T0)
    apply_conversion(p, value=19.5, ts=T0)
    apply_conversion(p, value=0.5, ts=T0 + 1)
    apply_feedback(p, rating=7, ts=T0 + 2)
    apply_feedback(p, rating=2, ts=T0 + 3)
    assert (p["convs"], p["revenue"]) == (2, 20.0)
    assert (p["fb_sum"], p["fb_n"]) == (9.0, 2)
    assert visitor_view(p, T0 + 4, HL).vector[10] == 4.5  # v_feedback_avg
    for bad in (0, 8, -1):
        with pytest.raises(ValueError, match="rating"):
            apply_feedback(p, rating=bad, ts=T0)
    for value in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="conversion value"):
            apply_conversion(p, value=value, ts=T0)
    with pytest.raises(ValueError, match="half_life_s"):
        apply_view(p, category="x", ts=T0, half_life_s=0.0)
    assert (p["convs"], p["fb_n"]) == (2, 2)  # rejected events changed nothing


def test_partial_profile_is_completed_and_survives_json() -> None:
    p = apply_impression({"views": 3, "first": T0 - 10, "last": T0 - 5}, variant_id="a", ts=T0)
    assert set(empty_profile(T0)) <= set(p)
    assert (p["views"], p["imps"], p["first"], p["last"]) == (3, 1, T0 - 10, T0)
    assert decode_profile(encode_profile(p)) == orjson.loads(orjson.dumps(p)) == p


def test_out_of_order_event_does_not_move_the_entry_back() -> None:
    table: dict[str, list[float]] = {}
    bump_score(table, "k", 1.0, T0 + HL, HL)
    bump_score(table, "k", 1.0, T0, HL)  # arrives late; worth 0.5 as of T0 + HL
    assert table["k"] == [pytest.approx(1.5), T0 + HL]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 60 * 86400), st.floats(0.1, 5.0)), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
)
def test_decayed_score_is_the_sum_of_decayed_events_in_any_order(
    events: list[tuple[float, float]], order: random.Random
) -> None:
    table: dict[str, list[float]] = {}
    shuffled = list(events)
    order.shuffle(shuffled)
    for offset, amount in shuffled:
        bump_score(table, "k", amount, T0 + offset, HL)
    score, as_of = table["k"]
    assert as_of == T0 + max(o for o, _ in events)
    expected = sum(a * 2.0 ** (-(as_of - (T0 + o)) / HL) for o, a in events)
    assert score == pytest.approx(expected, rel=1e-9)
