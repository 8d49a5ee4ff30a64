"""The facts audience conditions see: the visitor's profile and the request context.

Names are documented in docs/conditions.md; ``FACTS`` is the schema conditions
are validated against, ``facts_for`` builds the values for one request from
the same :class:`~service.features.builder.VisitorView` the model reads.
A fact the visitor does not have (an unknown visitor's ``days_since_first``,
an average of nothing) is absent, so only ``$exists: false``, ``$ne`` and
``$nin`` match it.
"""

from __future__ import annotations

import math
from typing import Any

from service.audiences.conditions import FactSchema
from service.features.builder import VisitorView
from service.features.context import Context

FACTS = FactSchema(
    names={
        "known": "bool",
        "visits": "number",
        "views": "number",
        "clicks": "number",
        "impressions": "number",
        "ctr": "number",
        "conversions": "number",
        "revenue": "number",
        "days_since_first": "number",
        "hours_since_last": "number",
        "feedback_avg": "number",
        "feedback_count": "number",
        "avg_price_band": "number",
        "top_category": "string",
        "recent_categories": "list",
        "device": "string",
        "page_type": "string",
        "page_category": "string",
        "referrer": "string",
        "hour": "number",
        "dow": "number",
    },
    prefixes={"affinity.": "number", "tag.": "number"},
)


VISITOR_FACTS: tuple[tuple[str, str], ...] = (
    ("visits", "v_sessions"),
    ("views", "v_views"),
    ("days_since_first", "v_days_since_first"),
    ("hours_since_last", "v_hours_since_last"),
    ("clicks", "v_clicks"),
    ("impressions", "v_impressions"),
    ("conversions", "v_conversions"),
    ("revenue", "v_revenue"),
    ("feedback_avg", "v_feedback_avg"),
    ("feedback_count", "v_feedback_n"),
    ("avg_price_band", "v_avg_price_band"),
)
"""The facts that are visitor features as they are: (fact, feature)."""


def facts_for(view: VisitorView, ctx: Context) -> dict[str, Any]:
    """The facts of one request (visitor features decayed to now, and the context)."""
    known = view.value("v_known") > 0
    facts: dict[str, Any] = {
        "known": known,
        "device": ctx.device,
        "page_type": ctx.page_type,
        "referrer": ctx.referrer,
        "hour": ctx.hour,
        "dow": ctx.dow,
    }
    if ctx.category is not None:
        facts["page_category"] = ctx.category
    if known:
        for fact, feature in VISITOR_FACTS:
            value = view.value(feature)
            if not math.isnan(value):
                facts[fact] = value
        impressions = view.value("v_impressions")
        if impressions > 0:
            facts["ctr"] = view.value("v_clicks") / impressions
        facts["recent_categories"] = list(view.recent)
        if view.cat_total > 0:
            facts["top_category"] = min(view.cat_rank, key=view.cat_rank.__getitem__)
            for cat, score in view.cat.items():
                facts[f"affinity.{cat}"] = score / view.cat_total
        for tag, score in view.tag.items():
            facts[f"tag.{tag}"] = score
    return facts
