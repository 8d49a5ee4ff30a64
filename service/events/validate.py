"""Turning a raw batch into per-event verdicts and per-person normalized events.

Pure: the clock, the caller (its visitor, consent and trust) and the catalog
come in as arguments, so every rule is tested from tables of cases. The trust
rules live here: only the site's server (API key) may name a ``visitor_id``;
a browser acts on the visitor its cookie names, and a consent withdrawal is
always carried out for the caller's own identity and only for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from service.catalog.model import Catalog
from service.events.schemas import (
    EVENT_DECODER,
    Click,
    Consent,
    Conversion,
    Event,
    Feedback,
    Identify,
    Impression,
    View,
)
from service.identity.trust import Trust
from service.identity.visitor import weak_visitor_id

MAX_FUTURE_S = 300.0
MAX_AGE_S = 7 * 86400.0


@dataclass(slots=True)
class Verdict:
    """What happened to one event of the batch."""

    index: int
    event_id: str | None
    type: str | None
    status: str  # accepted | duplicate | rejected | ignored
    reason: str | None = None
    clamped: bool = False

    def to_json(self) -> dict[str, Any]:
        """The verdict as the API returns it."""
        out: dict[str, Any] = {
            "index": self.index,
            "event_id": self.event_id,
            "status": self.status,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.clamped:
            out["clamped"] = True
        return out


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a batch: the visitor its cookie names (``None`` without consent or
    cookie), what the call's consent allows, whether it is the site's server, and
    the identity whose consent the call withdraws (an explicit refusal with a cookie)."""

    visitor_id: str | None
    personalization: bool
    trust: Trust
    withdrawing: str | None = None


@dataclass(slots=True)
class Batch:
    """A validated batch: verdicts for all, normalized events grouped by person."""

    verdicts: list[Verdict]
    by_person: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    slots: dict[str, list[int]] = field(default_factory=dict)
    links: list[tuple[int, str, Identify]] = field(default_factory=list)
    withdrawals: list[tuple[int, str, Consent]] = field(default_factory=list)


def _peek(raw: bytes) -> tuple[str | None, str | None]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    eid, kind = doc.get("event_id"), doc.get("type")
    return (
        eid if isinstance(eid, str) and len(eid) <= 64 else None,
        kind if isinstance(kind, str) and len(kind) <= 32 else None,
    )


def clamp(ts: float | None, now: float) -> tuple[float, bool]:
    """The event time: now when absent, pulled back into [now - 7 d, now + 5 min]."""
    if ts is None:
        return now, False
    if ts > now + MAX_FUTURE_S:
        return now, True
    if ts < now - MAX_AGE_S:
        return now - MAX_AGE_S, True
    return ts, False


def _variant_category(catalog: Catalog | None, variant_id: str) -> str | None:
    if catalog is None:
        return None
    for placement in catalog.placements.values():
        for v in placement.variants:
            if v.id == variant_id:
                return v.category
    return None


def normalize(event: Event, ts: float, catalog: Catalog | None) -> dict[str, Any] | str:
    """The event as the update script takes it, or a rejection reason."""
    base: dict[str, Any] = {"type": type(event).__name__.lower(), "id": event.event_id, "ts": ts}
    log: dict[str, Any] = msgspec.to_builtins(event)
    log["timestamp"] = ts
    log.pop("visitor_id", None)
    if isinstance(event, View):
        base.update(category=event.category, tags=event.tags, price_band=event.price_band)
    elif isinstance(event, Impression | Click):
        category = _variant_category(catalog, event.variant_id)
        if category is None:
            return f"unknown variant {event.variant_id!r}"
        base.update(variant_id=event.variant_id, category=category)
    elif isinstance(event, Conversion):
        base.update(value=event.value)
    elif isinstance(event, Feedback):
        base.update(rating=event.rating)
    elif isinstance(event, Consent):
        base.update(
            personalization=event.personalization,
            analytics=event.analytics,
            policy_version=event.policy_version,
            source=event.source,
        )
    # fields left null are not logged: readers take a missing field for null
    base["raw"] = orjson.dumps({k: v for k, v in log.items() if v is not None}).decode()
    return {k: v for k, v in base.items() if v is not None}


NAMED_BY_BROWSER = (
    "visitor_id is for the site's server (Authorization: Bearer <API key>); "
    "a browser is identified by its cookie"
)


def _person(event: Event, caller: Caller) -> tuple[str | None, str | None]:
    """The person an event is about, or why it may not name one."""
    if event.visitor_id is None:
        return caller.visitor_id, None
    if not caller.trust.server:
        return None, NAMED_BY_BROWSER
    weak = weak_visitor_id(event.visitor_id)
    return (None, weak) if weak else (event.visitor_id, None)


def validate_batch(
    raws: list[msgspec.Raw], now: float, caller: Caller, catalog: Catalog | None
) -> Batch:
    """Validate every event on its own and group the valid ones by person."""
    batch = Batch(verdicts=[])
    seen_ids: set[str] = set()
    for index, raw in enumerate(raws):
        try:
            event = EVENT_DECODER.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            eid, kind = _peek(bytes(raw))
            batch.verdicts.append(Verdict(index, eid, kind, "rejected", str(exc)))
            continue
        kind = type(event).__name__.lower()
        verdict = Verdict(index, event.event_id, kind, "accepted")
        batch.verdicts.append(verdict)
        person, refused = _person(event, caller)
        if refused is not None:
            verdict.status, verdict.reason = "rejected", refused
            continue
        if isinstance(event, Consent) and not event.personalization:
            # a withdrawal: the caller's own identity (the server's named one), always
            target = person if event.visitor_id is not None else caller.withdrawing or person
            if target is None:
                verdict.status = "ignored"
                verdict.reason = "no visitor cookie: nothing is stored for this browser"
            elif event.event_id in seen_ids:
                verdict.status, verdict.reason = "duplicate", "event_id repeated in this batch"
            else:
                seen_ids.add(event.event_id)
                batch.withdrawals.append((index, target, event))
            continue
        if not caller.personalization:
            if isinstance(event, Consent):
                verdict.status = "rejected"
                verdict.reason = (
                    "send a consent grant with the consent it grants in X-Persona-Consent"
                )
            else:
                verdict.status, verdict.reason = "ignored", "no consent to personalization"
            continue
        if person is None:
            verdict.status, verdict.reason = "rejected", "no visitor: send the cookie or visitor_id"
            continue
        if event.event_id in seen_ids:
            verdict.status, verdict.reason = "duplicate", "event_id repeated in this batch"
            continue
        seen_ids.add(event.event_id)
        ts, verdict.clamped = clamp(event.timestamp, now)
        if isinstance(event, Identify):
            batch.links.append((index, person, event))
            continue
        normalized = normalize(event, ts, catalog)
        if isinstance(normalized, str):
            verdict.status, verdict.reason = "rejected", normalized
            continue
        batch.by_person.setdefault(person, []).append(normalized)
        batch.slots.setdefault(person, []).append(index)
    return batch
