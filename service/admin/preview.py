"""Preview: what a visitor would see in a slot, and why — on the draft or any version.

The marketer's preview is the decision itself, explained: the same
:func:`~service.decide.decider.decide_placement` the decision path runs, with
the live model, on the configuration version asked for. It reports every
variant with its score, whether it is eligible and why not, and the chance
the policy shows it; whether the visitor is in the slot's holdout (for a
stored visitor; a described one is nobody in particular); and the choice.
Given a decision's id it replays that decision's exploration draw exactly.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from service.audiences.facts import facts_for
from service.catalog.model import Catalog
from service.decide.decider import Inputs, decide_placement
from service.decide.snapshot import LoadedModel, snapshot_of
from service.features.builder import visitor_view
from service.features.context import Context
from service.features.profile import Profile
from service.http.schemas import ContextBody, VisitorId


class PreviewBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/admin/preview``."""

    placement: Annotated[str, msgspec.Meta(max_length=64)]
    visitor_id: VisitorId | None = None
    profile: dict[str, Any] | None = None
    context: ContextBody = msgspec.field(default_factory=ContextBody)
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    decision_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{27}\Z")] | None = None


PREVIEW_DECODER = msgspec.json.Decoder(PreviewBody)


def preview(
    catalog: Catalog,
    name: str,
    profile: Profile | None,
    visitor_id: str | None,
    ctx: Context,
    model: LoadedModel | None,
    now: float,
    half_life_s: float,
    holdout_seed: str,
    decision_id: str,
) -> dict[str, Any]:
    """The preview of placement ``name``; ``KeyError`` when the catalog has no such slot."""
    placement = catalog.placements[name]
    view = visitor_view(profile, now, half_life_s)
    facts = facts_for(view, ctx)
    inputs = Inputs(
        view=view,
        facts=lambda: facts,
        context=ctx,
        visitor_id=visitor_id,
        now=now,
        holdout_seed=holdout_seed,
        include_scores=True,
        explain=True,
    )
    snapshot = snapshot_of(catalog, model)
    decision = decide_placement(snapshot, placement, inputs, decision_id).decision
    why = decision.explanation
    assert why is not None
    contents = {v.id: v.content for v in placement.variants}
    return {
        "placement": name,
        "catalog_version": catalog.version,
        "known_visitor": profile is not None,
        "facts": facts,
        "variants": [
            {
                "variant_id": c.variant_id,
                "default": c.default,
                "eligible": c.excluded_because is None,
                "excluded_because": c.excluded_because,
                "score": c.score,
                "probability": c.probability,
                "content": contents[c.variant_id],
            }
            for c in why.candidates
        ],
        "choice": {
            "variant_id": decision.variant_id,
            "policy": decision.policy,
            "fallback": decision.fallback,
            "decision_id": decision.decision_id,
        },
        "in_holdout": why.in_holdout,
        "paused": placement.paused,
        "explore_share": placement.explore_share,
        "holdout_share": placement.holdout_share,
        "model_version": None if model is None else model.manifest.version,
    }
