"""Request bodies, validated at the edge with msgspec (clear messages, ~µs decode)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from service.catalog.loader import ID_STRICT
from service.identity.visitor import VISITOR_ID_STRICT

PlacementName = Annotated[str, msgspec.Meta(pattern=ID_STRICT)]
VisitorId = Annotated[str, msgspec.Meta(pattern=VISITOR_ID_STRICT)]
Device = Literal["mobile", "tablet", "desktop"]
PageType = Literal["home", "category", "product", "cart", "search", "other"]


class ContextBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What the page knows about the moment of the request."""

    device: Device | None = None
    page_type: PageType | None = None
    category: Annotated[str, msgspec.Meta(pattern=ID_STRICT)] | None = None
    referrer: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    local_hour: Annotated[int, msgspec.Meta(ge=0, le=23)] | None = None
    day_of_week: Annotated[int, msgspec.Meta(ge=0, le=6)] | None = None


class DecideBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/decide``."""

    placements: Annotated[list[PlacementName], msgspec.Meta(min_length=1)]
    context: ContextBody = msgspec.field(default_factory=ContextBody)
    visitor_id: VisitorId | None = None
    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    include_scores: bool = False


DECIDE_DECODER = msgspec.json.Decoder(DecideBody)
