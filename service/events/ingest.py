"""The event ingestor: a batch in, a verdict per event out, transport-free.

``ingest(raws, caller, now)`` validates the batch (``validate.py``: the trust
rules, consent, formats), then writes in this order: identity links (a login
token bound to the caller's own cookie, or the site's server naming the
visitor), the events of each person (one script per person, one round trip),
and consent withdrawals (the caller's own identity, always). One Redis error
policy: anything Redis could not do raises :class:`EventsUnavailable` and the
whole batch is to be sent again (event ids make that safe).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from redis.exceptions import RedisError

from service.catalog.model import Catalog
from service.events.schemas import Consent, Identify
from service.events.store import UNRESOLVED, EventWriter
from service.events.validate import Caller, Verdict, validate_batch
from service.identity.customer import CustomerKeys
from service.metrics import Metrics
from service.store.errors import StoreError

EVENT_TYPES = ("view", "impression", "click", "conversion", "feedback", "identify", "consent")


class EventsUnavailable(Exception):
    """Redis could not store the batch; nothing may be acknowledged."""


@dataclass(slots=True)
class Ingested:
    """What became of a batch, and what the caller's cookie should become."""

    verdicts: list[Verdict]
    relinked_to: str | None = None
    """The customer profile id the caller's own cookie now names (after its login)."""
    withdrew: bool = False
    """The caller's own identity withdrew consent: its cookie is to be deleted."""

    def count(self, status: str) -> int:
        """How many events ended with ``status``."""
        return sum(v.status == status for v in self.verdicts)


class Ingestor:
    """Validates and stores event batches."""

    def __init__(self, writer: EventWriter, keys: CustomerKeys, metrics: Metrics) -> None:
        self.writer = writer
        self.keys = keys
        self.metrics = metrics

    async def ingest(
        self, raws: list[msgspec.Raw], caller: Caller, now: float, catalog: Catalog | None
    ) -> Ingested:
        """Validate and store a batch; raises :class:`EventsUnavailable`."""
        batch = validate_batch(raws, now, caller, catalog)
        result = Ingested(batch.verdicts)
        try:
            await self._links(batch.links, caller, result, now)
            if batch.by_person:
                # bounded by PERSONA_EVENTS_TIMEOUT_MS inside the writer; a batch that
                # timed out may still land, and its replay is de-duplicated
                applied = await self.writer.apply(batch.by_person, now)
                for visitor, flags in applied.items():
                    for index, flag in zip(batch.slots[visitor], flags, strict=True):
                        if flag == UNRESOLVED:
                            batch.verdicts[index].status = "rejected"
                            batch.verdicts[index].reason = "the visitor's profile links too far"
                        elif not flag:
                            batch.verdicts[index].status = "duplicate"
            await self._withdrawals(batch.withdrawals, caller, result, now)
        except (RedisError, StoreError, OSError, TimeoutError) as exc:
            raise EventsUnavailable(str(exc)) from None
        self._count(result)
        return result

    async def _links(
        self, links: list[tuple[int, str, Identify]], caller: Caller, result: Ingested, now: float
    ) -> None:
        for index, visitor, event in links:
            verdict = result.verdicts[index]
            customer_id, token = event.customer_id, event.signature
            if not caller.trust.server or token is not None:
                why = self.keys.check_login(token, customer_id, visitor, now)
                if why:
                    verdict.status, verdict.reason = "rejected", why
                    continue
            profile_id = self.keys.profile_id(customer_id)
            merged = await self.writer.link(
                visitor, profile_id, f"{verdict.event_id}:{visitor}", now
            )
            self.metrics.merges.labels("merged" if merged else "already_linked").inc()
            if visitor == caller.visitor_id:
                result.relinked_to = profile_id

    async def _withdrawals(
        self,
        withdrawals: list[tuple[int, str, Consent]],
        caller: Caller,
        result: Ingested,
        now: float,
    ) -> None:
        own = caller.withdrawing or caller.visitor_id
        done = False
        for _, target, event in withdrawals:
            await self.writer.withdraw(
                target,
                now,
                analytics=event.analytics,
                policy_version=event.policy_version,
                source=event.source,
                ts=event.timestamp,
            )
            self.metrics.withdrawals.labels("event").inc()
            if target == own:
                done = True
        if caller.withdrawing is not None and not done:
            # an explicit refusal in X-Persona-Consent withdraws as a consent event would
            await self.writer.withdraw(caller.withdrawing, now)
            self.metrics.withdrawals.labels("header").inc()
            done = True
        result.withdrew = done and own is not None

    def _count(self, result: Ingested) -> None:
        by_label: dict[tuple[str, str], int] = {}
        for v in result.verdicts:
            label = (v.type if v.type in EVENT_TYPES else "unknown", v.status)
            by_label[label] = by_label.get(label, 0) + 1
        for (kind, status), n in by_label.items():
            self.metrics.events.labels(kind, status).inc(n)
