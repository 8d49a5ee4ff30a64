"""Decisions: the typed results of ``decide``, and the call that makes them.

Whatever happens to the call, every slot asked for gets a ``Decision``: the
service's, or the slot's default content with ``fallback`` saying why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from persona_client.wire import (
    Config,
    Content,
    Failure,
    Outcome,
    Request,
    check_consent,
    post,
    request_headers,
)

log = logging.getLogger("persona_client")


class Context(TypedDict, total=False):
    """What the page knows about the moment of the request (every key optional).

    ``device`` defaults to what the User-Agent says (pass ``user_agent`` to
    ``decide``), ``local_hour``/``day_of_week`` (0 = Monday) to UTC now.
    """

    device: Literal["mobile", "tablet", "desktop"]
    page_type: Literal["home", "category", "product", "cart", "search", "other"]
    category: str
    referrer: str
    url: str
    local_hour: int
    day_of_week: int


@dataclass(frozen=True, slots=True)
class Variant:
    """A further variant of a slot configured to show several (its ``count`` > 1)."""

    variant_id: str
    content: Content


@dataclass(frozen=True, slots=True)
class Decision:
    """What to show in one slot.

    ``content`` is the chosen variant's content, or the slot's default (an
    empty mapping if it has none) when the service had no variant to give
    (``variant_id`` is ``None``). ``fallback`` is
    ``None`` when nothing failed; else the service's reason (``redis_timeout``,
    ``unknown_placement``, ...) or the client's: ``client_timeout``,
    ``client_unavailable``, ``client_http_<status>`` or ``client_bad_answer``.
    ``decision_id`` is ``None`` when the service made no decision (a client
    fallback): there is nothing to report an impression or a click for.
    """

    slot: str
    decision_id: str | None
    variant_id: str | None
    content: Content
    policy: str
    fallback: str | None
    model_version: str | None
    error: str | None = None
    more: tuple[Variant, ...] = ()


class Decisions(Mapping[str, Decision]):
    """The decisions of one call by slot, in the order asked, and whom they are for.

    ``visitor_id`` is the service's answer: the visitor the decisions are for
    (the pseudonymous profile for a ``customer_id``; an id the service minted
    when none was named), ``None`` without consent to personalization. When
    the service could not answer it is the ``visitor_id`` passed to ``decide``.
    """

    __slots__ = ("_by_slot", "_visitor_id")

    def __init__(self, decisions: Iterable[Decision], visitor_id: str | None) -> None:
        self._by_slot = {d.slot: d for d in decisions}
        self._visitor_id = visitor_id

    @property
    def visitor_id(self) -> str | None:
        """Whom the decisions are for (see the class)."""
        return self._visitor_id

    def __getitem__(self, slot: str) -> Decision:
        return self._by_slot[slot]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_slot)

    def __len__(self) -> int:
        return len(self._by_slot)

    def __repr__(self) -> str:
        return f"Decisions({list(self._by_slot.values())!r}, visitor_id={self._visitor_id!r})"


@dataclass(frozen=True, slots=True)
class DecideCall:
    """One ``POST /v1/decide``: its request, and how to read whatever comes back."""

    request: Request
    slots: tuple[str, ...]
    defaults: Mapping[str, Content]
    visitor_id: str | None

    @classmethod
    def prepare(
        cls,
        config: Config,
        placements: Sequence[str] | Mapping[str, Content],
        *,
        visitor_id: str | None,
        customer_id: str | None,
        consent: str | None,
        context: Mapping[str, object] | None,
        defaults: Mapping[str, Content] | None,
        user_agent: str | None,
    ) -> DecideCall:
        """Check the caller's arguments (``ValueError``/``TypeError``) and build the request."""
        if isinstance(placements, str):
            raise TypeError("placements is a list of slot names, or a mapping slot -> default")
        slots = tuple(placements)
        if not slots:
            raise ValueError("name at least one placement")
        if len(set(slots)) != len(slots):
            raise ValueError(f"a placement is listed twice: {list(slots)}")
        if visitor_id is not None and customer_id is not None:
            raise ValueError("name the visitor by visitor_id or customer_id, not both")
        header = check_consent(consent)
        merged: dict[str, Content] = {**config.defaults, **(defaults or {})}
        if isinstance(placements, Mapping):
            merged.update(placements)
        doc: dict[str, object] = {"placements": list(slots)}
        if context:
            doc["context"] = dict(context)
        if visitor_id is not None:
            doc["visitor_id"] = visitor_id
        if customer_id is not None:
            doc["customer_id"] = customer_id
        body = json.dumps(doc, separators=(",", ":")).encode()
        request = post(config, "/v1/decide", body, request_headers(config, header, user_agent))
        return cls(request, slots, merged, visitor_id)

    def read(self, outcome: Outcome) -> Decisions:
        """The decisions in ``outcome``; a default with a reason for every slot it lacks."""
        if isinstance(outcome, Failure):
            return self._fallback(outcome.reason, outcome.detail)
        if outcome.status != 200:
            reason = f"client_http_{outcome.status}"
            return self._fallback(reason, _message(outcome.body) or reason)
        try:
            doc = json.loads(outcome.body)
        except ValueError:
            return self._fallback("client_bad_answer", "the answer is not JSON")
        answers = doc.get("decisions") if isinstance(doc, dict) else None
        if not isinstance(answers, dict):
            return self._fallback("client_bad_answer", "the answer has no decisions")
        visitor_id = doc.get("visitor_id")
        decisions = [self._read_slot(slot, answers.get(slot)) for slot in self.slots]
        return Decisions(decisions, visitor_id if isinstance(visitor_id, str) else None)

    def _read_slot(self, slot: str, raw: object) -> Decision:
        decision = _decision(slot, raw)
        if decision is None:
            detail = f"the answer has no valid decision for {slot!r}"
            log.warning("persona decide: %s; serving the default", detail)
            return self._default(slot, "client_bad_answer", detail)
        if decision.variant_id is None:
            return Decision(
                slot=slot,
                decision_id=decision.decision_id,
                variant_id=None,
                content=self.defaults.get(slot, {}),
                policy="fallback",
                fallback=decision.fallback or "client_bad_answer",
                model_version=decision.model_version,
                error=decision.error,
            )
        return decision

    def _fallback(self, reason: str, detail: str) -> Decisions:
        log.warning("persona decide failed (%s: %s); serving defaults", reason, detail)
        return Decisions((self._default(s, reason, detail) for s in self.slots), self.visitor_id)

    def _default(self, slot: str, reason: str, detail: str) -> Decision:
        return Decision(
            slot=slot,
            decision_id=None,
            variant_id=None,
            content=self.defaults.get(slot, {}),
            policy="fallback",
            fallback=reason,
            model_version=None,
            error=detail,
        )


def _decision(slot: str, raw: object) -> Decision | None:
    """A slot's decision as the service answered it; ``None`` if it is malformed."""
    if not isinstance(raw, dict):
        return None
    decision_id, variant_id, content = (
        raw.get("decision_id"),
        raw.get("variant_id"),
        raw.get("content"),
    )
    policy, fallback, error = raw.get("policy"), raw.get("fallback"), raw.get("error")
    model_version = raw.get("model_version")
    if not (
        isinstance(decision_id, str)
        and isinstance(policy, str)
        and _optional_str(variant_id)
        and _optional_str(fallback)
        and _optional_str(model_version)
        and _optional_str(error)
        and (content is None or isinstance(content, dict))
    ):
        return None
    if variant_id is not None and content is None:
        return None
    return Decision(
        slot=slot,
        decision_id=decision_id,
        variant_id=variant_id,
        content=content if content is not None else {},
        policy=policy,
        fallback=fallback,
        model_version=model_version,
        error=error,
        more=_more(raw.get("more")),
    )


def _more(raw: object) -> tuple[Variant, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        Variant(item["variant_id"], item["content"])
        for item in raw
        if isinstance(item, dict)
        and isinstance(item.get("variant_id"), str)
        and isinstance(item.get("content"), dict)
    )


def _optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _message(body: bytes) -> str:
    """The service's error message in a non-200 answer (it names a field, never a value)."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return ""
    message = doc.get("message") if isinstance(doc, dict) else None
    return message if isinstance(message, str) else ""
