"""What works: impressions, clicks, CTR and conversions per variant, read from the event log.

The log's 64 partitions are scanned from ``since`` (stream ids are
millisecond timestamps, so the scan starts at the right entry), in pages of
``page`` entries; what Redis no longer holds (older than ``PERSONA_LOG_WINDOW_S``)
comes from the archive when one is given (:mod:`service.events.history`). A
conversion counts for the variant whose impression carried the same decision
id inside the window (last impression wins).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis

from service.events.archive_store import ArchiveStore
from service.events.history import log_entries

COUNTED = ("impression", "click", "conversion")


async def variant_counts(
    client: aioredis.Redis, since: float, page: int = 2000, archive: ArchiveStore | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Counts since ``since``: ``{placement: {variant: {impressions, clicks, ctr, ...}}}``."""
    counts: dict[tuple[str, str], dict[str, float]] = defaultdict(
        lambda: {"impressions": 0, "clicks": 0, "conversions": 0, "value": 0.0}
    )
    shown: dict[str, tuple[str, str]] = {}
    conversions: list[dict[str, Any]] = []
    async for event in log_entries(client, since, archive, COUNTED, page):
        kind = event.get("type")
        if kind in ("impression", "click"):
            key = (str(event.get("placement")), str(event.get("variant_id")))
            counts[key]["impressions" if kind == "impression" else "clicks"] += 1
            if kind == "impression" and event.get("decision_id"):
                shown[str(event["decision_id"])] = key
        elif kind == "conversion" and event.get("decision_id"):
            conversions.append(event)
    for event in conversions:
        attributed = shown.get(str(event["decision_id"]))
        if attributed is not None:
            counts[attributed]["conversions"] += 1
            counts[attributed]["value"] += float(event.get("value") or 0.0)
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (placement, variant), c in sorted(counts.items()):
        ctr = c["clicks"] / c["impressions"] if c["impressions"] else 0.0
        out[placement][variant] = {**c, "ctr": round(ctr, 4)}
    return dict(out)
