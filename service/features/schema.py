"""The feature schema: names and order of the model's input columns.

Serving (``service.features.builder``) and training (``models/``) both import
this list; the model manifest records it and its hash, and the service refuses
a model whose schema differs.
"""

from __future__ import annotations

import hashlib

VISITOR_FEATURES: tuple[str, ...] = (
    "v_known",
    "v_sessions",
    "v_views",
    "v_days_since_first",
    "v_hours_since_last",
    "v_clicks",
    "v_impressions",
    "v_ctr",
    "v_conversions",
    "v_revenue",
    "v_feedback_avg",
    "v_feedback_n",
    "v_top_affinity",
    "v_affinity_total",
    "v_affinity_entropy",
    "v_n_categories",
    "v_avg_price_band",
)

CONTEXT_FEATURES: tuple[str, ...] = (
    "c_hour",
    "c_dow",
    "c_weekend",
    "c_mobile",
    "c_tablet",
    "c_desktop",
    "c_page_home",
    "c_page_category",
    "c_page_product",
    "c_page_cart",
    "c_page_search",
    "c_ref_search",
    "c_ref_social",
    "c_ref_direct",
    "c_ref_email",
)

VARIANT_FEATURES: tuple[str, ...] = (
    "a_price_band",
    "a_is_default",
    "a_priority",
    "a_n_tags",
    "a_discount",
)

CROSS_FEATURES: tuple[str, ...] = (
    "x_cat_affinity",
    "x_cat_affinity_share",
    "x_cat_affinity_rank",
    "x_tag_affinity_max",
    "x_tag_affinity_sum",
    "x_cat_recent_views",
    "x_last_cat_match",
    "x_page_cat_match",
    "x_variant_impressions",
    "x_variant_clicks",
    "x_variant_hours_since_impression",
    "x_cat_clicks",
    "x_price_gap",
)

FEATURE_NAMES: tuple[str, ...] = (
    VISITOR_FEATURES + CONTEXT_FEATURES + VARIANT_FEATURES + CROSS_FEATURES
)
N_FEATURES = len(FEATURE_NAMES)

V0 = 0
C0 = V0 + len(VISITOR_FEATURES)
A0 = C0 + len(CONTEXT_FEATURES)
X0 = A0 + len(VARIANT_FEATURES)


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
