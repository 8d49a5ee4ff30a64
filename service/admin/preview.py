"""Preview: what a visitor would see in a slot, and why — on the draft or any version.

The same steps as a decision (facts, eligibility, features, the loaded model),
reported instead of served: every variant with its score or the reason it is
excluded, and the variant the model policy would pick. Exploration and the
holdout are random per request, so the preview reports them as shares rather
than rolling the dice.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from service.audiences.facts import facts_for
from service.catalog.model import Catalog
from service.decide.eligibility import exclusion
from service.decide.engine import LoadedModel
from service.features.builder import rows_for_view, visitor_view
from service.features.context import Context
from service.features.profile import Profile
from service.http.schemas import ContextBody, VisitorId


class PreviewBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/admin/preview``."""

    placement: str
    visitor_id: VisitorId | None = None
    profile: dict[str, Any] | None = None
    context: ContextBody = msgspec.field(default_factory=ContextBody)
    version: int | None = None


PREVIEW_DECODER = msgspec.json.Decoder(PreviewBody)


def preview(
    catalog: Catalog,
    name: str,
    profile: Profile | None,
    ctx: Context,
    model: LoadedModel | None,
    now: float,
    half_life_s: float,
) -> dict[str, Any]:
    """The preview of placement ``name``; ``KeyError`` when the catalog has no such slot."""
    placement = catalog.placements[name]
    view = visitor_view(profile, now, half_life_s)
    facts = facts_for(view, ctx)
    scores: list[float] | None = None
    if model is not None:
        rows = rows_for_view(view, ctx, placement, now)
        scores = [float(s) for s in np.asarray(model.predictor.predict(rows), dtype=np.float64)]
    default_id = placement.default_variant.id
    variants = []
    for i, v in enumerate(placement.variants):
        why = None if v.id == default_id else exclusion(v, placement, view.var, lambda: facts, now)
        variants.append(
            {
                "variant_id": v.id,
                "default": v.id == default_id,
                "eligible": why is None,
                "excluded_because": why,
                "score": None if scores is None else scores[i],
                "content": v.content,
            }
        )
    if placement.paused or scores is None:
        chosen, policy = default_id, "fallback"
    else:
        eligible = [i for i, v in enumerate(variants) if v["eligible"]]
        chosen = placement.variants[max(eligible, key=scores.__getitem__)].id
        policy = "model"
    return {
        "placement": name,
        "catalog_version": catalog.version,
        "known_visitor": profile is not None,
        "facts": facts,
        "variants": variants,
        "choice": {"variant_id": chosen, "policy": policy},
        "paused": placement.paused,
        "explore_share": placement.explore_share,
        "holdout_share": placement.holdout_share,
        "model_version": None if model is None else model.manifest.version,
    }
