"""The event types the page reports, validated one by one at the edge.

A batch is decoded in two steps: the envelope (``{"events": [...]}``) first,
then each event on its own, so one invalid event is rejected with its reason
while the valid events of the same batch are kept.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from service.catalog.loader import ID_STRICT
from service.identity.visitor import VISITOR_ID_STRICT

MAX_BATCH = 100
EVENT_ID_STRICT = r"^[A-Za-z0-9_.:-]{8,64}\Z"

EventId = Annotated[str, msgspec.Meta(pattern=EVENT_ID_STRICT)]
VisitorId = Annotated[str, msgspec.Meta(pattern=VISITOR_ID_STRICT)]
Name = Annotated[str, msgspec.Meta(pattern=ID_STRICT)]
DecisionId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{27}\Z")]
Timestamp = Annotated[float, msgspec.Meta(ge=0)]
Url = Annotated[str, msgspec.Meta(max_length=2048)]
Text = Annotated[str, msgspec.Meta(max_length=256)]


class _Base(msgspec.Struct, forbid_unknown_fields=True, tag_field="type", kw_only=True):
    event_id: EventId
    timestamp: Timestamp | None = None
    visitor_id: VisitorId | None = None


class View(_Base, tag="view", kw_only=True):
    """A page view."""

    url: Url | None = None
    path: Url | None = None
    page_type: Literal["home", "category", "product", "cart", "search", "other"] = "other"
    category: Name | None = None
    tags: Annotated[list[Name], msgspec.Meta(max_length=20)] = []
    price_band: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
    item_id: Text | None = None
    referrer: Url | None = None


class Impression(_Base, tag="impression", kw_only=True):
    """A variant was shown."""

    decision_id: DecisionId
    placement: Name
    variant_id: Name


class Click(_Base, tag="click", kw_only=True):
    """A shown variant was clicked."""

    decision_id: DecisionId
    placement: Name
    variant_id: Name


class Conversion(_Base, tag="conversion", kw_only=True):
    """A purchase or goal, with its value."""

    value: Annotated[float, msgspec.Meta(ge=0, le=1e9)] = 0.0
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")] = "USD"
    decision_id: DecisionId | None = None
    order_id: Text | None = None


class Feedback(_Base, tag="feedback", kw_only=True):
    """A one-question rating, 1 to 7."""

    question_id: Name
    rating: Annotated[int, msgspec.Meta(ge=1, le=7)]
    decision_id: DecisionId | None = None
    url: Url | None = None


class Identify(_Base, tag="identify", kw_only=True):
    """The visitor logged in as the site's customer ``customer_id``."""

    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    signature: Annotated[str, msgspec.Meta(max_length=128)] | None = None


class Consent(_Base, tag="consent", kw_only=True):
    """The visitor's consent choices."""

    personalization: bool
    analytics: bool = False
    policy_version: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    source: Literal["banner", "settings", "api", "import"] = "banner"


Event = View | Impression | Click | Conversion | Feedback | Identify | Consent


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/events``: the batch, undecoded events kept raw."""

    events: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)
EVENT_DECODER = msgspec.json.Decoder(Event)
