"""Sending events: ids, batches of 100, retries with the same ids, and typed verdicts.

A batch answered ``503`` (Redis could not store it), ``429`` (a rate limit),
another 5xx, or not at all, is sent again unchanged: the event ids make the
retry safe, and an event the first attempt did store comes back ``duplicate``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from persona_client.wire import (
    Config,
    Failure,
    Outcome,
    Request,
    Response,
    check_consent,
    post,
    request_headers,
)

log = logging.getLogger("persona_client")

MAX_BATCH = 100
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0)
Status = Literal["accepted", "duplicate", "rejected", "ignored", "unsent"]
_SERVICE_STATUSES = frozenset({"accepted", "duplicate", "rejected", "ignored"})


@dataclass(frozen=True, slots=True)
class EventVerdict:
    """What became of one event, by its position in the events passed to ``send_events``.

    ``status``: ``accepted`` (stored), ``duplicate`` (its id was already
    stored, e.g. by an attempt whose answer was lost), ``rejected`` (invalid;
    ``reason`` names the field), ``ignored`` (no consent to personalization;
    nothing stored) or ``unsent`` (the service did not take it; ``reason`` is
    the client's, e.g. ``client_http_503`` or ``client_timeout``).
    """

    index: int
    event_id: str | None
    status: Status
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class EventResult:
    """The verdicts of a ``send_events`` call, counted.

    ``unsent_events`` are the events the service did not take, with the ids
    they were sent with: send them again later and an event that was stored
    after all is counted once.
    """

    accepted: int
    duplicate: int
    rejected: int
    ignored: int
    unsent: int
    verdicts: tuple[EventVerdict, ...]
    unsent_events: tuple[Mapping[str, Any], ...]

    @property
    def ok(self) -> bool:
        """Whether every event was stored or ignored for lack of consent."""
        return self.rejected == 0 and self.unsent == 0

    @classmethod
    def of(cls, events: list[dict[str, Any]], verdicts: list[EventVerdict]) -> EventResult:
        """Count ``verdicts`` of ``events``."""
        counts = dict.fromkeys(("accepted", "duplicate", "rejected", "ignored", "unsent"), 0)
        for v in verdicts:
            counts[v.status] += 1
        unsent = tuple(events[v.index] for v in verdicts if v.status == "unsent")
        return cls(**counts, verdicts=tuple(verdicts), unsent_events=unsent)


def prepare_events(
    events: Iterable[Mapping[str, Any]], visitor_id: str | None
) -> list[dict[str, Any]]:
    """Copies of ``events`` with an ``event_id`` each and ``visitor_id`` where they have none."""
    out = []
    for event in events:
        if not isinstance(event, Mapping):
            raise TypeError(f"an event is a mapping with a 'type', got {type(event).__name__}")
        copy = dict(event)
        if copy.get("event_id") is None:
            copy["event_id"] = uuid.uuid4().hex
        if visitor_id is not None and copy.get("visitor_id") is None:
            copy["visitor_id"] = visitor_id
        out.append(copy)
    return out


def batches(events: list[dict[str, Any]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """``(offset, batch)`` pairs of at most ``MAX_BATCH`` events."""
    for offset in range(0, len(events), MAX_BATCH):
        yield offset, events[offset : offset + MAX_BATCH]


def events_request(config: Config, batch: list[dict[str, Any]], consent: str | None) -> Request:
    """``POST /v1/events`` of one batch (raises ``ValueError`` for a malformed consent)."""
    body = json.dumps({"events": batch}, separators=(",", ":")).encode()
    return post(config, "/v1/events", body, request_headers(config, check_consent(consent)))


class Retry:
    """When to send a batch again: bounded attempts and time, ``Retry-After`` honoured."""

    def __init__(self, config: Config) -> None:
        self._max_attempts = config.events_max_attempts
        self._give_up_at = time.monotonic() + config.events_max_wait_s
        self._attempts = 0

    def wait_after(self, outcome: Outcome) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to stop with ``outcome``."""
        self._attempts += 1
        if isinstance(outcome, Response) and outcome.status not in RETRY_STATUSES:
            return None
        if isinstance(outcome, Failure) and outcome.reason == "client_bad_answer":
            return None
        if self._attempts >= self._max_attempts:
            return None
        backoff = _BACKOFF_S[min(self._attempts, len(_BACKOFF_S)) - 1]
        asked = _retry_after(outcome.retry_after) if isinstance(outcome, Response) else None
        # jitter, so that the processes of a site that all saw a 503 do not come back at once
        wait = asked if asked is not None else backoff * random.uniform(0.5, 1.0)
        if time.monotonic() + wait > self._give_up_at:
            return None
        return wait


def read_batch(batch: list[dict[str, Any]], offset: int, outcome: Outcome) -> list[EventVerdict]:
    """A verdict for each event of ``batch`` (at ``offset`` among the call's events)."""
    if isinstance(outcome, Failure):
        return _unsent(batch, offset, outcome.reason, outcome.detail)
    doc = _json(outcome.body)
    results = doc.get("results") if isinstance(doc, dict) else None
    if outcome.status not in (202, 400, 403) or not isinstance(results, list):
        reason = "client_bad_answer" if outcome.status == 202 else f"client_http_{outcome.status}"
        message = doc.get("message") if isinstance(doc, dict) else None
        return _unsent(batch, offset, reason, message if isinstance(message, str) else reason)
    verdicts: dict[int, EventVerdict] = {}
    for item in results:
        verdict = _verdict(item, len(batch), offset)
        if verdict is not None:
            verdicts[verdict.index] = verdict
    missing = [i for i in range(offset, offset + len(batch)) if i not in verdicts]
    if missing:
        log.warning("persona events: the answer has no verdict for %d events", len(missing))
    for i in missing:
        verdicts[i] = EventVerdict(
            i, batch[i - offset].get("event_id"), "unsent", "client_bad_answer"
        )
    return [verdicts[i] for i in sorted(verdicts)]


def _verdict(item: object, size: int, offset: int) -> EventVerdict | None:
    if not isinstance(item, dict):
        return None
    index, event_id, status = item.get("index"), item.get("event_id"), item.get("status")
    reason = item.get("reason")
    if not (
        isinstance(index, int)
        and 0 <= index < size
        and status in _SERVICE_STATUSES
        and (event_id is None or isinstance(event_id, str))
    ):
        return None
    return EventVerdict(
        offset + index,
        event_id,
        cast(Status, status),
        reason if isinstance(reason, str) else None,
    )


def _unsent(
    batch: list[dict[str, Any]], offset: int, reason: str, detail: str
) -> list[EventVerdict]:
    log.warning("persona events: %d events not sent (%s: %s)", len(batch), reason, detail)
    return [
        EventVerdict(offset + i, event.get("event_id"), "unsent", reason)
        for i, event in enumerate(batch)
    ]


def _json(body: bytes) -> object:
    try:
        doc: object = json.loads(body)
    except ValueError:
        return None
    return doc


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
