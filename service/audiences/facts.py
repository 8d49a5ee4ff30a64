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


def facts_for(view: VisitorView, ctx: Context) -> dict[str, Any]:
    """The facts of one request (visitor features decayed to now, and the context)."""
    v = view.vector
    facts: dict[str, Any] = {
        "known": v[0] > 0,
        "device": ctx.device,
        "page_type": ctx.page_type,
        "referrer": ctx.referrer,
        "hour": ctx.hour,
        "dow": ctx.dow,
    }
    if ctx.category is not None:
        facts["page_category"] = ctx.category
    if v[0] > 0:
        for name, value in (
            ("visits", v[1]),
            ("views", v[2]),
            ("days_since_first", v[3]),
            ("hours_since_last", v[4]),
            ("clicks", v[5]),
            ("impressions", v[6]),
            ("ctr", v[5] / v[6] if v[6] > 0 else math.nan),
            ("conversions", v[8]),
            ("revenue", v[9]),
            ("feedback_avg", v[10]),
            ("feedback_count", v[11]),
            ("avg_price_band", v[16]),
        ):
            if not math.isnan(value):
                facts[name] = value
        facts["recent_categories"] = list(view.recent)
        if view.cat_total > 0:
            facts["top_category"] = min(view.cat_rank, key=view.cat_rank.__getitem__)
            for cat, score in view.cat.items():
                facts[f"affinity.{cat}"] = score / view.cat_total
        for tag, score in view.tag.items():
            facts[f"tag.{tag}"] = score
    return facts
