"""Builders of the common events, for ``send_events`` (fields as in docs/events.md).

Each returns a plain dict; ``send_events`` adds the ``event_id`` (unless one
is given) and the ``visitor_id``. Fields left ``None`` are not sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from persona_client.decisions import Decision

Event = dict[str, Any]
"""One event: ``type``, ``event_id`` and the type's fields."""


def view(
    *,
    url: str | None = None,
    path: str | None = None,
    page_type: str | None = None,
    category: str | None = None,
    tags: Sequence[str] | None = None,
    price_band: int | None = None,
    item_id: str | None = None,
    referrer: str | None = None,
    timestamp: float | None = None,
    event_id: str | None = None,
) -> Event:
    """A page view (it counts sessions and the visitor's category and tag affinities)."""
    return _event(
        "view",
        url=url,
        path=path,
        page_type=page_type,
        category=category,
        tags=list(tags) if tags is not None else None,
        price_band=price_band,
        item_id=item_id,
        referrer=referrer,
        timestamp=timestamp,
        event_id=event_id,
    )


def impressions(decisions: Iterable[Decision], *, timestamp: float | None = None) -> list[Event]:
    """An ``impression`` for each decision the page showed a variant of.

    Decisions without a variant chosen by the service (client fallbacks,
    unknown slots) are skipped: there is nothing to report for them.
    """
    return [
        impression(d.decision_id, d.slot, d.variant_id, timestamp=timestamp)
        for d in decisions
        if d.decision_id is not None and d.variant_id is not None
    ]


def impression(
    decision_id: str,
    placement: str,
    variant_id: str,
    *,
    timestamp: float | None = None,
    event_id: str | None = None,
) -> Event:
    """A variant was shown (counts toward the placement's frequency cap)."""
    return _event(
        "impression",
        decision_id=decision_id,
        placement=placement,
        variant_id=variant_id,
        timestamp=timestamp,
        event_id=event_id,
    )


def click(
    decision_id: str,
    placement: str,
    variant_id: str,
    *,
    timestamp: float | None = None,
    event_id: str | None = None,
) -> Event:
    """A shown variant was clicked (e.g. the site's redirect of a tracked link)."""
    return _event(
        "click",
        decision_id=decision_id,
        placement=placement,
        variant_id=variant_id,
        timestamp=timestamp,
        event_id=event_id,
    )


def conversion(
    value: float = 0.0,
    currency: str = "USD",
    *,
    order_id: str | None = None,
    decision_id: str | None = None,
    timestamp: float | None = None,
    event_id: str | None = None,
) -> Event:
    """A purchase or goal worth ``value`` (ISO 4217 ``currency``).

    A reload of the order's confirmation page counts once if each send names
    the same ``event_id`` (8-64 characters of ``A-Z a-z 0-9 _ . : -``), e.g.
    ``f"order:{order_id}"``.
    """
    return _event(
        "conversion",
        value=value,
        currency=currency,
        order_id=order_id,
        decision_id=decision_id,
        timestamp=timestamp,
        event_id=event_id,
    )


def identify(
    customer_id: str, *, timestamp: float | None = None, event_id: str | None = None
) -> Event:
    """The visitor is the site's customer ``customer_id`` (e.g. at login).

    Sent by the site's server with its API key and a ``visitor_id``, it needs
    no login token.
    """
    return _event("identify", customer_id=customer_id, timestamp=timestamp, event_id=event_id)


def _event(kind: str, **fields: Any) -> Event:
    return {"type": kind, **{k: v for k, v in fields.items() if v is not None}}
