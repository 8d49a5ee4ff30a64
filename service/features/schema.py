"""The feature schema: every column of the model's input, declared once, in order.

Serving (``service.features.builder``) and training (``models/``) build rows
from this list; the model manifest records it and its hash, and the service
refuses a model whose schema differs. The builder computes each group by
feature name, a visitor's empty value and the audience facts come from here
too, and a test checks each named column holds what its description says.
Adding a feature is one declaration here, its computation in the builder
under the same name, and a retrain.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

NAN = math.nan


@dataclass(frozen=True, slots=True)
class Feature:
    """One input column of the model (a float64)."""

    name: str
    doc: str
    empty: float = 0.0
    """The value for a visitor without a profile (visitor features only)."""


VISITOR: tuple[Feature, ...] = (
    Feature("v_known", "1 when the visitor has a stored profile"),
    Feature("v_sessions", "sessions (30 minutes of inactivity starts a new one)"),
    Feature("v_views", "page views"),
    Feature("v_days_since_first", "days since the first activity", NAN),
    Feature("v_hours_since_last", "hours since the last activity", NAN),
    Feature("v_clicks", "clicks on any variant"),
    Feature("v_impressions", "impressions of any variant"),
    Feature("v_ctr", "smoothed click rate, (clicks + 0.1) / (impressions + 2)", NAN),
    Feature("v_conversions", "conversions"),
    Feature("v_revenue", "summed conversion value"),
    Feature("v_feedback_avg", "average 1-7 feedback rating", NAN),
    Feature("v_feedback_n", "feedback ratings given"),
    Feature("v_top_affinity", "the highest category affinity, decayed to now"),
    Feature("v_affinity_total", "the sum of category affinities, decayed to now"),
    Feature("v_affinity_entropy", "entropy of the category affinities (spread of tastes)"),
    Feature("v_n_categories", "categories with any affinity"),
    Feature("v_avg_price_band", "average price band (0-3) of the pages viewed", NAN),
)

CONTEXT: tuple[Feature, ...] = (
    Feature("c_hour", "the visitor's local hour (0-23)"),
    Feature("c_dow", "day of the week (0 = Monday)"),
    Feature("c_weekend", "1 on Saturday and Sunday"),
    Feature("c_mobile", "1 on a phone"),
    Feature("c_tablet", "1 on a tablet"),
    Feature("c_desktop", "1 on a desktop"),
    Feature("c_page_home", "1 on the home page"),
    Feature("c_page_category", "1 on a category page"),
    Feature("c_page_product", "1 on a product page"),
    Feature("c_page_cart", "1 on the cart"),
    Feature("c_page_search", "1 on search results"),
    Feature("c_ref_search", "1 when the visitor came from a search engine"),
    Feature("c_ref_social", "1 when the visitor came from social media"),
    Feature("c_ref_direct", "1 for direct traffic"),
    Feature("c_ref_email", "1 when the visitor came from an email"),
)

VARIANT: tuple[Feature, ...] = (
    Feature("a_price_band", "the variant's price band (0-3)"),
    Feature("a_is_default", "1 for the placement's default variant"),
    Feature("a_priority", "the marketer's priority (-100..100)"),
    Feature("a_n_tags", "how many tags the variant has"),
    Feature("a_discount", "the variant's discount (0-1)"),
)

CROSS: tuple[Feature, ...] = (
    Feature("x_cat_affinity", "the visitor's affinity to the variant's category, decayed"),
    Feature("x_cat_affinity_share", "that affinity as a share of all category affinity"),
    Feature("x_cat_affinity_rank", "the category's rank among the visitor's (0: none)"),
    Feature("x_tag_affinity_max", "the highest affinity to one of the variant's tags"),
    Feature("x_tag_affinity_sum", "the summed affinity to the variant's tags"),
    Feature("x_cat_recent_views", "recent page views of the variant's category (of 10)"),
    Feature("x_last_cat_match", "1 when the last category viewed is the variant's"),
    Feature("x_page_cat_match", "1 when the page's category is the variant's"),
    Feature("x_variant_impressions", "times the visitor saw this variant"),
    Feature("x_variant_clicks", "times the visitor clicked this variant"),
    Feature("x_variant_hours_since_impression", "hours since it last saw this variant"),
    Feature("x_cat_clicks", "the visitor's clicks on variants of this category"),
    Feature("x_price_gap", "the variant's price band minus the visitor's average"),
)


def names(group: tuple[Feature, ...]) -> tuple[str, ...]:
    """The names of a group, in order."""
    return tuple(f.name for f in group)


VISITOR_FEATURES = names(VISITOR)
CONTEXT_FEATURES = names(CONTEXT)
VARIANT_FEATURES = names(VARIANT)
CROSS_FEATURES = names(CROSS)
FEATURES: tuple[Feature, ...] = VISITOR + CONTEXT + VARIANT + CROSS
FEATURE_NAMES: tuple[str, ...] = names(FEATURES)
N_FEATURES = len(FEATURE_NAMES)
COLUMN: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
"""Each feature's column in a row."""

V0 = 0
C0 = V0 + len(VISITOR)
A0 = C0 + len(CONTEXT)
X0 = A0 + len(VARIANT)
assert len(COLUMN) == N_FEATURES, "feature names must be unique"


def schema_hash(names: tuple[str, ...] | list[str] = FEATURE_NAMES) -> str:
    """A stable hash of feature names in order (what a model was trained on)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def describe_difference(expected: tuple[str, ...], actual: tuple[str, ...] | list[str]) -> str:
    """Explain how ``actual`` differs from ``expected`` in one human sentence."""
    actual = tuple(actual)
    missing = [n for n in expected if n not in actual]
    extra = [n for n in actual if n not in expected]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(extra))
    if not parts:
        for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
            if a != b:
                parts.append(f"order differs at column {i}: expected {a!r}, got {b!r}")
                break
    return "; ".join(parts) or "identical"
